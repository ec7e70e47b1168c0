"""Sampling from a checkpoint, and turning token ids back into readable pieces.

Ids go through the checkpoint's compact vocabulary (trainer/vocab.py) both ways. Decoding
uses the vocab layout saved in the checkpoint: text-range ids are decoded with the shards'
tiktoken encoding, special ids become their names, and codebook ids (image, audio, ...)
are summarised as `<image:N>` runs. Image blocks (<|boi|> codes and <|eor|> row ends
<|eoi|>, the shards stage's layout) are rendered back to pictures with the image codebook
the checkpoint carries, using the shards stage's decoder. Audio units cannot be rendered
back to sound (they are clusters of log-mel frames), so they stay summarised.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from distillery.encoding import get_encoding
from trainer.train import load_model
from trainer.vocab import remap_table


def _encoding_name(meta: dict) -> str:
    tok = meta.get("tokenizer") or {}
    return tok.get("encoding") or tok.get("name") or "cl100k_base"


def decode(ids: list[int], meta: dict) -> str:
    """Render original token ids as text: text runs decoded, specials named, media summarised."""
    vocab = meta["vocab"]
    names = {v: k for k, v in vocab["special"].items()}
    text_start, text_len = next(((r["start"], r["length"]) for r in vocab["ranges"] if r["name"] == "text"), (0, 0))
    out, run = [], []

    def flush() -> None:
        if run:
            out.append(get_encoding(_encoding_name(meta)).decode(run))
            run.clear()

    media_name, media_n = None, 0
    for t in ids:
        name = None
        if not text_start <= t < text_start + text_len and t not in names:
            name = next((r["name"] for r in vocab["ranges"] if r["start"] <= t < r["start"] + r["length"]), "?")
        if name != media_name and media_n:
            out.append(f"<{media_name}:{media_n}>")
            media_n = 0
        media_name = name
        if name is not None:
            flush()
            media_n += 1
        elif t in names:
            flush()
            out.append(names[t])
        else:
            run.append(t)
    flush()
    if media_n:
        out.append(f"<{media_name}:{media_n}>")
    return "".join(out)


def decode_images(ids: list[int], meta: dict, centroids: np.ndarray | None) -> tuple[list[np.ndarray], list[str]]:
    """Pictures (H, W, 3 uint8) of the complete <|boi|> .. <|eoi|> blocks in `ids`, and errors.

    A malformed block (wrong number of codes) is reported in the errors, never raised.
    """
    spec = meta.get("tokenizer") or {}
    sp = meta["vocab"]["special"]
    boi, eoi = sp.get("<|boi|>"), sp.get("<|eoi|>")
    if centroids is None or not spec.get("image") or boi is None or eoi is None:
        return [], []
    from shards.show import decode_image_block

    images, errors = [], []
    arr = np.asarray(ids, dtype=np.int64)
    for start in np.flatnonzero(arr == boi):
        ends = np.flatnonzero(arr[start:] == eoi)
        if not len(ends):
            errors.append(f"image block at {start} has no <|eoi|>")
            continue
        try:
            images.append(decode_image_block(arr[start + 1 : start + ends[0]], spec, centroids))
        except ValueError as exc:
            errors.append(f"image block at {start}: {exc}")
    return images, errors


def sample(
    checkpoint: Path,
    prompt: str | list[int] | None = None,
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_k: int | None = None,
    seed: int = 0,
    device: str = "auto",
    stop_at_eos: bool = True,
    image_dir: Path | None = None,
) -> dict:
    """Continue `prompt` (text, or original token ids; None starts after `<|eos|>`).

    Returns {"tokens": generated original ids, "text": their decoding, "prompt_tokens": the
    prompt's original ids, "images": pictures (H, W, 3 uint8) of the image blocks completed in
    the generation (empty without an image codebook), "image_errors": malformed blocks,
    "image_files": PNG paths when `image_dir` is given}. temperature 0 is greedy. Raises
    ValueError when the prompt holds ids outside the checkpoint's vocabulary.
    """
    model, ckpt = load_model(checkpoint, device)
    meta = json.loads(ckpt["manifest"])
    vocab = ckpt["vocab"].numpy()
    remap = remap_table(vocab, meta["vocab"]["size"])
    eos = meta["vocab"]["special"]["<|eos|>"]
    if prompt is None:
        ids = [eos]
    elif isinstance(prompt, str):
        ids = get_encoding(_encoding_name(meta)).encode(prompt, disallowed_special=())
    else:
        ids = [int(t) for t in prompt]
    ids_arr = np.asarray(ids, dtype=np.int64)
    inside = (ids_arr >= 0) & (ids_arr < len(remap))
    compact = np.where(inside, remap[np.clip(ids_arr, 0, len(remap) - 1)], -1)
    if (compact < 0).any():
        raise ValueError(f"prompt ids {ids_arr[compact < 0][:5].tolist()} are not in the model's vocabulary")
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(seed)
    x = torch.from_numpy(compact).to(dev)[None, :]
    y = model.generate(x, max_new_tokens, temperature, top_k, int(remap[eos]) if stop_at_eos else None, gen)
    new = vocab[y[0, len(ids) :].cpu().numpy()].tolist()
    codebook = ckpt.get("image_codebook")
    # a block may open in the prompt (e.g. a prompt ending in <|boi|>) and close in the output
    images, errors = decode_images(ids + new, meta, None if codebook is None else codebook.numpy())
    files = []
    if image_dir is not None and images:
        from PIL import Image

        Path(image_dir).mkdir(parents=True, exist_ok=True)
        for i, pic in enumerate(images):
            files.append(Path(image_dir) / f"sample-{seed}-{i}.png")
            Image.fromarray(pic).save(files[-1])
    return {
        "tokens": new,
        "text": decode(new, meta),
        "prompt_tokens": ids,
        "images": images,
        "image_errors": errors,
        "image_files": [str(f) for f in files],
    }
