"""Reading tokens back: decode_text, and show (a human rendering of one sample).

Text runs decode through tiktoken; special tokens print as their names; an image block
(<|boi|> .. <|eoi|>) is rebuilt from its codebook into a PNG; audio units print as a count
and duration only, since units cannot be turned back into sound.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from distillery.encoding import get_encoding
from shards import image as image_mod
from shards.codebook_io import load_codebook
from shards.vocab import range_of


def _runs(tokens: np.ndarray, n_text: int) -> list[tuple[int, int]]:
    """Return [start, end) runs of consecutive text ids, and single positions of other ids."""
    is_text = tokens < n_text
    change = np.flatnonzero(np.diff(is_text.astype(np.int8)) != 0) + 1
    bounds = np.concatenate([[0], change, [len(tokens)]]).astype(np.int64)
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if is_text[a]:
            out.append((int(a), int(b)))
        else:
            out.extend((int(k), int(k) + 1) for k in range(a, b))
    return out


def _name_of(tid: int, spec: dict) -> str:
    names = {v: k for k, v in spec["vocab"]["special"].items()}
    if tid in names:
        return names[tid]
    for r in spec["vocab"]["ranges"]:
        if r["start"] <= tid < r["start"] + r["length"] and r["name"] not in ("text", "special"):
            return f"<|{r['name']}:{tid - r['start']}|>"
    return f"<|invalid:{tid}|>"


def _decode_run(enc, ids: list[int]) -> str:
    try:
        return enc.decode_bytes(ids).decode("utf-8", errors="replace")
    except KeyError:  # ids inside [0, n_text) that the encoding does not define
        return "".join(
            enc.decode_bytes([i]).decode("utf-8", errors="replace") if _valid(enc, i) else f"<|invalid:{i}|>"
            for i in ids
        )


def _valid(enc, i: int) -> bool:
    try:
        enc.decode_bytes([i])
        return True
    except KeyError:
        return False


def decode_text(tokens, spec: dict, *, specials: bool = True) -> str:
    """Return the text of `tokens`; other ids print as <|name|> (or are left out with specials=False)."""
    toks = np.asarray(tokens, dtype=np.int64)
    enc = get_encoding(spec["encoding"])
    out = []
    for a, b in _runs(toks, spec["n_text"]):
        if toks[a] < spec["n_text"]:
            out.append(_decode_run(enc, toks[a:b].tolist()))
        elif specials:
            out.append(_name_of(int(toks[a]), spec))
    return "".join(out)


def decode_image_block(block: np.ndarray, spec: dict, centroids: np.ndarray) -> np.ndarray:
    """Return the picture of one image block's codes (the ids between <|boi|> and <|eoi|>)."""
    start, length = range_of(spec["vocab"], "image")
    codes = block[(block >= start) & (block < start + length)] - start
    g = spec["image"]["grid"]
    if len(codes) != g * g:
        raise ValueError(f"image block has {len(codes)} codes, a {g}x{g} grid needs {g * g}")
    return image_mod.decode_codes(codes.reshape(g, g), centroids, spec["image"]["patch"])


def _find(shard_dir: Path, manifest: dict, sample_id: str) -> dict | None:
    for entry in manifest["shards"]:
        t = pq.read_table(shard_dir / entry["file"], filters=[("id", "=", sample_id)])
        if t.num_rows:
            return {**t.slice(0, 1).to_pylist()[0], "_file": entry["file"]}
    return None


def render(tokens: np.ndarray, spec: dict, centroids: np.ndarray | None, out_dir: Path, prefix: str) -> tuple[str, int]:
    """Return (the rendering of a token run, number of images written as PNG)."""
    sp = spec["vocab"]["special"]
    enc = get_encoding(spec["encoding"])
    parts, n_img = [], 0
    runs = _runs(tokens, spec["n_text"])
    k = 0
    while k < len(runs):
        a, b = runs[k]
        t = int(tokens[a])
        if t < spec["n_text"]:
            parts.append(_decode_run(enc, tokens[a:b].tolist()))
        elif t in (sp["<|boi|>"], sp["<|boa|>"]):
            close = sp["<|eoi|>"] if t == sp["<|boi|>"] else sp["<|eoa|>"]
            ends = np.flatnonzero(tokens[a:] == close)
            end = a + int(ends[0]) if len(ends) else len(tokens)
            block = tokens[a + 1 : end]
            if t == sp["<|boa|>"]:
                secs = len(block) * spec["audio"]["hop_ms"] / 1000 if spec.get("audio") else float("nan")
                parts.append(f"[audio: {len(block)} units, ~{secs:.2f} s; units are not decodable to sound]")
            elif centroids is None:
                parts.append(f"[image: {len(block)} tokens; no image codebook to decode]")
            else:
                try:
                    pic = decode_image_block(block, spec, centroids)
                    path = out_dir / f"{prefix}-{n_img}.png"
                    Image.fromarray(pic).save(path)
                    n_img += 1
                    parts.append(f"[image {pic.shape[1]}x{pic.shape[0]} px -> {path}]")
                except ValueError as exc:
                    parts.append(f"[malformed image: {exc}]")
            while k < len(runs) and runs[k][0] <= end:
                k += 1
            continue
        else:
            parts.append(_name_of(t, spec))
        k += 1
    return "".join(parts), n_img


class SampleNotFound(LookupError):
    """The sample id is not in the shard folder."""


def show(shard_dir: Path, sample_id: str, out_dir: Path) -> str:
    """Return a rendering of sample `sample_id` (header, then each span labelled, then where
    images were written); images go to `out_dir` as PNG. Raises SampleNotFound."""
    shard_dir, out_dir = Path(shard_dir), Path(out_dir)
    manifest = json.loads((shard_dir / "manifest.json").read_text())
    spec = manifest["tokenizer"]
    row = _find(shard_dir, manifest, sample_id)
    if row is None:
        raise SampleNotFound(f"sample {sample_id} is not in {shard_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    centroids = load_codebook(spec, "image", shard_dir) if spec.get("image") else None
    tokens = np.asarray(row["tokens"], dtype=np.int64)
    lines = [
        f"sample {row['id']}  ({row['_file']})",
        f"source {row['source']}  modality {row['modality']}  split {row['split']}  tokens {row['n_tokens']} "
        f"(text {row['n_text_tokens']}, image {row['n_image_tokens']}, audio {row['n_audio_tokens']}, video {row['n_video_tokens']})",
        f"parents {row['parents']}",
    ]
    images = 0
    for j, s in enumerate(row["spans"]):
        text, n = render(
            tokens[s["start"] : s["start"] + s["length"]], spec, centroids, out_dir, f"{sample_id}-span{j}"
        )
        images += n
        lines.append(
            f"--- {s['kind']} [{s['start']}, {s['start'] + s['length']}) loss={'yes' if s['loss'] else 'no'} ---"
        )
        lines.append(text)
    lines.append(f"{images} image(s) written to {out_dir.resolve()}" if images else "no images to write")
    return "\n".join(lines)
