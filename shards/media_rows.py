"""Image and audio rows of a curated partition as token sequences.

    image:  <|boi|> c c .. c <|eor|> c .. c <|eor|> ... <|eoi|> <|eos|>   (g rows of g codes)
    audio:  <|boa|> u u u ... <|eoa|> <|eos|>                              (50 units/s by default)

Decoding is one Pillow/soundfile call per file (there is no batch decoder), spread over
`threads` threads since the decoders release the GIL; everything after decoding (patching, nearest-centroid search, layout) runs
once over the whole partition.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from shards import audio as audio_mod
from shards import image as image_mod
from shards.codebook_io import load_codebook
from shards.encoded import Encoded, concat_encoded, spans_from_pieces
from shards.media_refs import MediaError, read_media
from shards.ragged import concat_rows
from shards.vocab import range_of

IMAGE_CHUNK = 4096  # images decoded at once: bounds memory (~16 KB each as float patches)


def image_blocks(codes: np.ndarray, spec: dict) -> np.ndarray:
    """Return (N, g*(g+1)+2) token ids: <|boi|>, each patch row + <|eor|>, <|eoi|>."""
    sp = spec["vocab"]["special"]
    start, _ = range_of(spec["vocab"], "image")
    n, g = codes.shape[0], codes.shape[1]
    grid = np.empty((n, g, g + 1), dtype=np.uint32)
    grid[:, :, :g] = codes + start
    grid[:, :, g] = sp["<|eor|>"]
    return np.concatenate(
        [np.full((n, 1), sp["<|boi|>"], np.uint32), grid.reshape(n, -1), np.full((n, 1), sp["<|eoi|>"], np.uint32)],
        axis=1,
    )


def _decode_all(load, refs: list, threads: int) -> list:
    """Return load(ref) or the MediaError it raised, per ref, in order; decoders release the GIL."""

    def safe(ref):
        try:
            return load(ref)
        except MediaError as exc:
            return exc

    if threads <= 1 or len(refs) < 2:
        return [safe(r) for r in refs]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(safe, refs))


def load_images(
    refs: list, lake_root: Path, side: int, threads: int = 1
) -> tuple[np.ndarray, list[int], list[tuple[int, str, str]]]:
    """Return (stacked images of the readable refs, their positions, [(position, reason, message)])."""
    images, ok, bad = [], [], []
    loaded = _decode_all(lambda ref: image_mod.load_image(read_media(lake_root, ref), side), refs, threads)
    for i, got in enumerate(loaded):
        if isinstance(got, MediaError):
            bad.append((i, got.reason, str(got)))
        else:
            images.append(got)
            ok.append(i)
    stack = np.stack(images) if images else np.zeros((0, side, side, 3), np.uint8)
    return stack, ok, bad


def tokenize_images(rows: np.ndarray, refs: list, spec: dict, lake_root: Path, threads: int = 1) -> Encoded:
    """Tokenize image rows (`refs[i]` is the media ref of input row `rows[i]`), IMAGE_CHUNK at a time."""
    centroids = load_codebook(spec, "image")
    if centroids is None:
        enc = Encoded.empty()
        enc.quarantine = [
            (int(r), "no_image_codebook", "the tokenizer spec has no image codebook (fit_codebooks saw no images)")
            for r in rows
        ]
        return enc
    parts = [
        _image_chunk(rows[lo : lo + IMAGE_CHUNK], refs[lo : lo + IMAGE_CHUNK], spec, centroids, lake_root, threads)
        for lo in range(0, len(refs), IMAGE_CHUNK)
    ]
    enc = concat_encoded(parts)
    # the partition's PSNR: mean squared error averaged over chunks, weighted by images
    sq = sum(p.stats.pop("_sq_err", 0.0) * len(p.rows) for p in parts)
    enc.stats.pop("_sq_err", None)
    if len(enc.rows):
        enc.stats["image_psnr_centi_db"] = int(round(100 * 10 * np.log10(255.0**2 / max(sq / len(enc.rows), 1e-12))))
    return enc


def _image_chunk(
    rows: np.ndarray, refs: list, spec: dict, centroids: np.ndarray, lake_root: Path, threads: int
) -> Encoded:
    ic = spec["image"]
    stack, ok, bad = load_images(refs, lake_root, ic["side"], threads)
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
        rec = image_mod.decode_codes(codes, centroids, ic["patch"]).astype(np.float64)
        enc.stats = {"_sq_err": float(np.mean((stack.astype(np.float64) - rec) ** 2))}
    return enc


def audio_units(
    refs: list, spec: dict, lake_root: Path, threads: int = 1
) -> tuple[np.ndarray, np.ndarray, list[int], list[tuple[int, str, str]], int]:
    """Return (flat unit token ids, units per readable ref, their positions, failures, truncated count)."""
    ac = spec["audio"]
    centroids = load_codebook(spec, "audio")
    start, _ = range_of(spec["vocab"], "audio")
    feats, ok, bad, truncated = [], [], [], 0

    def load(ref):
        wave, cut = audio_mod.load_audio(read_media(lake_root, ref), ac["sample_rate"], ac["max_seconds"])
        return audio_mod.log_mel(wave, ac["sample_rate"], ac["n_mels"], ac["frame_ms"], ac["hop_ms"]), cut

    for i, got in enumerate(_decode_all(load, refs, threads)):
        if isinstance(got, MediaError):
            bad.append((i, got.reason, str(got)))
            continue
        feats.append(got[0])
        ok.append(i)
        truncated += int(got[1])
    lengths = np.array([len(f) for f in feats], dtype=np.int64)
    if not feats:
        return np.zeros(0, np.uint32), lengths, ok, bad, truncated
    from shards.kmeans import assign

    labels, _ = assign(np.concatenate(feats), centroids)
    return (labels + start).astype(np.uint32), lengths, ok, bad, truncated


def tokenize_audio(rows: np.ndarray, refs: list, spec: dict, lake_root: Path, threads: int = 1) -> Encoded:
    """Tokenize audio rows (`refs[i]` is the media ref of input row `rows[i]`)."""
    if load_codebook(spec, "audio") is None:
        enc = Encoded.empty()
        enc.quarantine = [
            (int(r), "no_audio_codebook", "the tokenizer spec has no audio codebook (fit_codebooks saw no audio)")
            for r in rows
        ]
        return enc
    units, lengths, ok, bad, truncated = audio_units(refs, spec, lake_root, threads)
    sp = spec["vocab"]["special"]
    n = len(ok)
    tokens, total = concat_rows([sp["<|boa|>"], (units, lengths), sp["<|eoa|>"], sp["<|eos|>"]], n)
    kinds, starts, lens, loss, counts = spans_from_pieces(n, ["audio"], [True], [total])
    enc = Encoded(rows[ok], tokens, total, kinds, starts, lens, loss, counts)
    enc.quarantine = [(int(rows[i]), reason, msg) for i, reason, msg in bad]
    enc.stats = {"audio_truncated": truncated}
    return enc
