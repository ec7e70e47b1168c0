"""Fitting the media codebooks and the tokenizer spec that records them.

A codebook is a Parquet file (columns code, vector) named `<name>-<sha256[:16]>.parquet` by
the hash of its bytes (written and read by shards/codebook_io.py); its fit parameters are in
the file's key-value metadata under `distillery.codebook` and repeated in the spec. Fitting
is deterministic from cfg.seed: the items sampled are chosen by a hash of (seed, media ref),
not by file order.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import polars as pl

from shards import audio as audio_mod
from shards import image as image_mod
from shards import kmeans
from shards.codebook_io import load_codebook, save_codebook, sha256_file  # noqa: F401 (re-exported)
from shards.config import ShardConfig
from shards.media_refs import MediaError, read_media
from shards.media_rows import load_images
from shards.video import video_refs  # the video module owns the meta format
from shards.vocab import build_layout

SPEC_FORMAT = "distillery-tokenizer/1"
MAX_AUDIO_FILES = 512  # bounds the fit's decode time; frames are subsampled to sample_frames anyway


def _media_pools(curated_files: list[Path]) -> tuple[list[str], list[str]]:
    """Return (image refs, audio refs) found in curated rows, including video frames and tracks."""
    files = [str(p) for p in curated_files]
    if not files:
        return [], []
    df = pl.concat([pl.read_parquet(f, columns=["modality", "media", "meta"]) for f in files])
    images = df.filter(pl.col("modality") == "image")["media"].drop_nulls().to_list()
    audios = df.filter(pl.col("modality") == "audio")["media"].drop_nulls().to_list()
    for meta in df.filter(pl.col("modality") == "video")["meta"].to_list():
        try:
            frames, track, _ = video_refs(meta)
        except MediaError:
            continue
        images += frames
        if track:
            audios.append(track)
    return sorted(set(images)), sorted(set(audios))


def _hash_order(refs: list[str], seed: int) -> list[str]:
    return sorted(refs, key=lambda r: hashlib.sha256(f"{seed}:{r}".encode()).digest())


def _fit_image(refs: list[str], cfg: ShardConfig, lake_root: Path, out_dir: Path) -> dict | None:
    ic = cfg.image
    per_image = (ic.side // ic.patch) ** 2
    want = max(1, 2 * math.ceil(ic.sample_patches / per_image))  # 2x: patches are subsampled for variety
    ordered = _hash_order(refs, cfg.seed)
    stack, failed = np.zeros((0, ic.side, ic.side, 3), np.uint8), 0
    while len(stack) < want and ordered:  # unreadable images (quarantined later) are replaced by the next ones
        batch, ordered = ordered[: want - len(stack)], ordered[want - len(stack) :]
        got, _, bad = load_images(batch, lake_root, ic.side, cfg.threads)
        stack, failed = np.concatenate([stack, got]), failed + len(bad)
    if not len(stack):
        return None
    patches = image_mod.patchify(stack, ic.patch).reshape(-1, ic.patch * ic.patch * 3)
    rng = np.random.default_rng(cfg.seed)
    if len(patches) > ic.sample_patches:
        patches = patches[np.sort(rng.choice(len(patches), ic.sample_patches, replace=False))]
    centroids, facts = kmeans.fit(patches, ic.codebook_size, ic.kmeans_iters, cfg.seed)
    params = {
        "kind": "image_patches",
        "side": ic.side,
        "patch": ic.patch,
        "dim": int(patches.shape[1]),
        "size": ic.codebook_size,
        "seed": cfg.seed,
        "images": len(stack),
        "images_unreadable": failed,
        "psnr_db": round(image_mod.reconstruction_psnr(stack, centroids, ic.patch), 3),
        **facts,
    }
    params["mse"] = round(params["mse"], 4)
    return save_codebook(out_dir, "image", centroids, params)


def _fit_audio(refs: list[str], cfg: ShardConfig, lake_root: Path, out_dir: Path) -> dict | None:
    ac = cfg.audio
    feats, failed, n = [], 0, 0
    for ref in _hash_order(refs, cfg.seed)[:MAX_AUDIO_FILES]:
        if n >= 2 * ac.sample_frames:
            break
        try:
            wave, _ = audio_mod.load_audio(read_media(lake_root, ref), ac.sample_rate, ac.max_seconds)
        except MediaError:
            failed += 1
            continue
        f = audio_mod.log_mel(wave, ac.sample_rate, ac.n_mels, ac.frame_ms, ac.hop_ms)
        feats.append(f)
        n += len(f)
    if not feats:
        return None
    x = np.concatenate(feats)
    rng = np.random.default_rng(cfg.seed + 1)
    if len(x) > ac.sample_frames:
        x = x[np.sort(rng.choice(len(x), ac.sample_frames, replace=False))]
    centroids, facts = kmeans.fit(x, ac.codebook_size, ac.kmeans_iters, cfg.seed)
    params = {
        "kind": "audio_log_mel",
        "sample_rate": ac.sample_rate,
        "n_mels": ac.n_mels,
        "frame_ms": ac.frame_ms,
        "hop_ms": ac.hop_ms,
        "size": ac.codebook_size,
        "dim": ac.n_mels,
        "seed": cfg.seed,
        "files": len(feats),
        "files_unreadable": failed,
        **facts,
    }
    params["mse"] = round(params["mse"], 4)
    return save_codebook(out_dir, "audio", centroids, params)


def text_layout_size(encoding: str) -> int:
    """Return the number of text ids of tiktoken encoding `encoding` (max token id + 1)."""
    from distillery.encoding import get_encoding

    return get_encoding(encoding).max_token_value + 1


def fit_codebooks(curated_files: list[Path], cfg: ShardConfig, lake_root: Path, out_dir: Path) -> dict:
    """Fit the image and audio codebooks on media sampled from `curated_files`; return the spec.

    Codebooks are written to `out_dir` (named by content hash). The returned spec (JSON-able):
    {format, encoding, n_text, vocab: {size, ranges, special}, image: {...}|None,
    audio: {...}|None, video: {max_frames}, codebooks: [{name, file, sha256, params}],
    codebook_dir}. Without images (or audio) the spec has no such codebook and no such
    vocabulary range: a text-only spec.
    """
    out_dir = Path(out_dir)
    image_refs, audio_refs = _media_pools([Path(p) for p in curated_files])
    codebooks = []
    image_cb = _fit_image(image_refs, cfg, Path(lake_root), out_dir) if image_refs else None
    audio_cb = _fit_audio(audio_refs, cfg, Path(lake_root), out_dir) if audio_refs else None
    codebooks = [cb for cb in (image_cb, audio_cb) if cb]
    n_text = text_layout_size(cfg.encoding)
    layout = build_layout(n_text, {cb["name"]: cb["params"]["size"] for cb in codebooks})
    ic, ac = cfg.image, cfg.audio
    return {
        "format": SPEC_FORMAT,
        "encoding": cfg.encoding,
        "n_text": n_text,
        "vocab": layout,
        "image": {"side": ic.side, "patch": ic.patch, "grid": ic.side // ic.patch} if image_cb else None,
        "audio": {
            "sample_rate": ac.sample_rate,
            "n_mels": ac.n_mels,
            "frame_ms": ac.frame_ms,
            "hop_ms": ac.hop_ms,
            "max_seconds": ac.max_seconds,
        }
        if audio_cb
        else None,
        "video": {"max_frames": cfg.video.max_frames},
        "codebooks": codebooks,
        "codebook_dir": str(out_dir.resolve()),
    }
