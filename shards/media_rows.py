"""Image and audio rows of a curated partition as token sequences.

    image:  <|boi|> c c .. c <|eor|> c .. c <|eor|> ... <|eoi|> <|eos|>   (g rows of g codes)
    audio:  <|boa|> u u u ... <|eoa|> <|eos|>                              (50 units/s by default)

Decoding each file is a per-row loop (one Pillow/soundfile call per file: there is no
batch decoder); everything after decoding (patching, nearest-centroid search, layout) runs
once over the whole partition.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shards import audio as audio_mod
from shards import image as image_mod
from shards.codebooks import load_codebook
from shards.encoded import Encoded, spans_from_pieces
from shards.media_refs import MediaError, read_media
from shards.ragged import concat_rows
from shards.vocab import range_of


def image_blocks(codes: np.ndarray, spec: dict) -> np.ndarray:
    """Return (N, g*(g+1)+2) token ids: <|boi|>, each patch row + <|eor|>, <|eoi|>."""
    sp = spec["vocab"]["special"]
    start, _ = range_of(spec["vocab"], "image")
    n, g = codes.shape[0], codes.shape[1]
    grid = np.empty((n, g, g + 1), dtype=np.uint32)
    grid[:, :, :g] = codes + start
    grid[:, :, g] = sp["<|eor|>"]
    return np.concatenate(
        [np.full((n, 1), sp["<|boi|>"], np.uint32), grid.reshape(n, -1), np.full((n, 1), sp["<|eoi|>"], np.uint32)], axis=1
    )


def load_images(refs: list, lake_root: Path, side: int) -> tuple[np.ndarray, list[int], list[tuple[int, str, str]]]:
    """Return (stacked images of the readable refs, their positions, [(position, reason, message)])."""
    images, ok, bad = [], [], []
    for i, ref in enumerate(refs):
        try:
            images.append(image_mod.load_image(read_media(lake_root, ref), side))
            ok.append(i)
        except MediaError as exc:
            bad.append((i, exc.reason, str(exc)))
    stack = np.stack(images) if images else np.zeros((0, side, side, 3), np.uint8)
    return stack, ok, bad


def tokenize_images(rows: np.ndarray, refs: list, spec: dict, lake_root: Path) -> Encoded:
    """Tokenize image rows (`refs[i]` is the media ref of input row `rows[i]`)."""
    centroids = load_codebook(spec, "image")
    if centroids is None:
        enc = Encoded.empty()
        enc.quarantine = [(int(r), "no_image_codebook", "the tokenizer spec has no image codebook (fit_codebooks saw no images)") for r in rows]
        return enc
    ic = spec["image"]
    stack, ok, bad = load_images(refs, lake_root, ic["side"])
    codes = image_mod.encode_images(stack, centroids, ic["patch"])
    blocks = image_blocks(codes, spec)
    n, width = blocks.shape
    eos = spec["vocab"]["special"]["<|eos|>"]
    tokens = np.concatenate([blocks, np.full((n, 1), eos, np.uint32)], axis=1).reshape(-1)
    lengths = np.full(n, width + 1, np.int64)
    kinds, starts, lens, loss, counts = spans_from_pieces(n, ["image"], [True], [lengths])
    enc = Encoded(rows[ok], tokens, lengths, kinds, starts, lens, loss, counts)
    enc.quarantine = [(int(rows[i]), reason, msg) for i, reason, msg in bad]
    if n:
        enc.stats = {"image_psnr_centi_db": int(round(100 * image_mod.psnr(stack, image_mod.decode_codes(codes, centroids, ic["patch"]))))}
    return enc


def audio_units(refs: list, spec: dict, lake_root: Path) -> tuple[np.ndarray, np.ndarray, list[int], list[tuple[int, str, str]], int]:
    """Return (flat unit token ids, units per readable ref, their positions, failures, truncated count)."""
    ac = spec["audio"]
    centroids = load_codebook(spec, "audio")
    start, _ = range_of(spec["vocab"], "audio")
    feats, ok, bad, truncated = [], [], [], 0
    for i, ref in enumerate(refs):
        try:
            wave, cut = audio_mod.load_audio(read_media(lake_root, ref), ac["sample_rate"], ac["max_seconds"])
        except MediaError as exc:
            bad.append((i, exc.reason, str(exc)))
            continue
        feats.append(audio_mod.log_mel(wave, ac["sample_rate"], ac["n_mels"], ac["frame_ms"], ac["hop_ms"]))
        ok.append(i)
        truncated += int(cut)
    lengths = np.array([len(f) for f in feats], dtype=np.int64)
    if not feats:
        return np.zeros(0, np.uint32), lengths, ok, bad, truncated
    from shards.kmeans import assign

    labels, _ = assign(np.concatenate(feats), centroids)
    return (labels + start).astype(np.uint32), lengths, ok, bad, truncated


def tokenize_audio(rows: np.ndarray, refs: list, spec: dict, lake_root: Path) -> Encoded:
    """Tokenize audio rows (`refs[i]` is the media ref of input row `rows[i]`)."""
    if load_codebook(spec, "audio") is None:
        enc = Encoded.empty()
        enc.quarantine = [(int(r), "no_audio_codebook", "the tokenizer spec has no audio codebook (fit_codebooks saw no audio)") for r in rows]
        return enc
    units, lengths, ok, bad, truncated = audio_units(refs, spec, lake_root)
    sp = spec["vocab"]["special"]
    n = len(ok)
    tokens, total = concat_rows([sp["<|boa|>"], (units, lengths), sp["<|eoa|>"], sp["<|eos|>"]], n)
    kinds, starts, lens, loss, counts = spans_from_pieces(n, ["audio"], [True], [total])
    enc = Encoded(rows[ok], tokens, total, kinds, starts, lens, loss, counts)
    enc.quarantine = [(int(rows[i]), reason, msg) for i, reason, msg in bad]
    enc.stats = {"audio_truncated": truncated}
    return enc
