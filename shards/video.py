"""Video rows: sampled frames through the image tokenizer, the audio track through the audio
tokenizer, interleaved in time order.

    <|bov|> F0 A0 <|eof|> F1 A1 <|eof|> ... <|eov|> <|eos|>

Fi is frame i as an image block (<|boi|> .. <|eoi|>); Ai is <|boa|> units <|eoa|> for the
audio that plays from frame i's time until the next frame's (A0 also takes any audio
before the first frame, the last A takes the rest); Ai is left out when there is none.

The curated row's meta names the frames and the audio track (both lake media refs):
    meta.frames: ["media/ab/..", ..] or [{"media": "media/ab/..", "t": seconds}, ..]
    meta.frame_times: [seconds, ..]     (optional, when frames are plain refs)
    meta.duration: seconds              (optional; plain frames are then evenly spaced)
    meta.audio: {"media": "media/ab/..", ...} | "media/ab/.." | null
At most video.max_frames frames are used, evenly sampled. Without times, the audio units
are split evenly between the frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shards import image as image_mod
from shards.codebook_io import load_codebook
from shards.encoded import Encoded, spans_from_pieces
from shards.media_refs import MediaError
from shards.media_rows import audio_units, image_blocks, load_images


def video_refs(meta: object) -> tuple[list[str], str | None, list[float] | None]:
    """Return (frame refs, audio ref or None, frame times or None) from a video row's meta JSON."""
    try:
        m = json.loads(meta) if isinstance(meta, str) else None
    except ValueError:
        m = None
    if not isinstance(m, dict) or not isinstance(m.get("frames"), list) or not m["frames"]:
        raise MediaError("video_no_frames", "video meta has no 'frames' list of media refs")
    frames, times = [], []
    for f in m["frames"]:
        if isinstance(f, dict):
            frames.append(f.get("media") or f.get("ref"))
            times.append(f.get("t", f.get("time")))
        else:
            frames.append(f)
            times.append(None)
    if any(t is None for t in times):
        ft = m.get("frame_times")
        if isinstance(ft, list) and len(ft) == len(frames):
            times = ft
        elif isinstance(m.get("duration"), (int, float)) and m["duration"] > 0:
            times = [i * float(m["duration"]) / len(frames) for i in range(len(frames))]
        else:
            times = None
    if times is not None:
        try:
            times = [float(t) for t in times]
        except (TypeError, ValueError):
            times = None
    if times is not None:  # time order, stable for equal times
        order = sorted(range(len(frames)), key=lambda i: times[i])
        frames, times = [frames[i] for i in order], [times[i] for i in order]
    audio = m.get("audio")
    if isinstance(audio, dict):  # sources/video.py: {"media", "sample_rate", "channels", "frames"}
        audio = audio.get("media")
    return frames, audio if isinstance(audio, str) else None, times


def sample_frames(n: int, max_frames: int) -> np.ndarray:
    """Return the indices of at most `max_frames` of `n` frames, evenly spaced, first and last kept."""
    if n <= max_frames:
        return np.arange(n)
    return np.unique(np.rint(np.linspace(0, n - 1, max_frames)).astype(np.int64))


def _audio_bounds(n_units: int, times: list[float] | None, n_frames: int, units_per_s: float) -> np.ndarray:
    """Return n_frames+1 unit boundaries: frame i's audio is units[b[i]:b[i+1]]."""
    if times is None:
        b = np.rint(np.linspace(0, n_units, n_frames + 1)).astype(np.int64)
    else:
        b = np.concatenate([[0], np.rint(np.array(times[1:]) * units_per_s).astype(np.int64), [n_units]])
    return np.clip(np.maximum.accumulate(b), 0, n_units)


def tokenize_videos(rows: np.ndarray, metas: list, spec: dict, lake_root: Path, threads: int = 1) -> Encoded:
    """Tokenize video rows (`metas[i]` is the meta JSON of input row `rows[i]`)."""
    quarantine: list[tuple[int, str, str]] = []
    if load_codebook(spec, "image") is None:
        enc = Encoded.empty()
        enc.quarantine = [
            (int(r), "no_image_codebook", "the tokenizer spec has no image codebook for video frames") for r in rows
        ]
        return enc
    plans = []  # (row, frame refs, audio ref, times)
    for r, meta in zip(rows, metas):
        try:
            frames, audio, times = video_refs(meta)
        except MediaError as exc:
            quarantine.append((int(r), exc.reason, str(exc)))
            continue
        pick = sample_frames(len(frames), spec["video"]["max_frames"])
        plans.append((int(r), [frames[i] for i in pick], audio, None if times is None else [times[i] for i in pick]))
    # every frame of every video in one decode pass and one nearest-centroid search
    all_refs = [f for p in plans for f in p[1]]
    owner = np.repeat(np.arange(len(plans)), [len(p[1]) for p in plans]).astype(np.int64)
    stack, ok, bad = load_images(all_refs, lake_root, spec["image"]["side"], threads)
    broken = {int(owner[i]): (reason, msg) for i, reason, msg in bad}
    codes = image_mod.encode_images(stack, load_codebook(spec, "image"), spec["image"]["patch"])
    blocks_all = image_blocks(codes, spec)
    block_of = {pos: k for k, pos in enumerate(ok)}
    has_audio = [j for j, p in enumerate(plans) if p[2] and j not in broken]
    audio_ok: dict[int, np.ndarray] = {}
    truncated = 0
    if has_audio and spec.get("audio") and load_codebook(spec, "audio") is not None:
        units, lengths, aok, abad, truncated = audio_units([plans[j][2] for j in has_audio], spec, lake_root, threads)
        offs = np.concatenate([[0], np.cumsum(lengths)])
        for k, pos in enumerate(aok):
            audio_ok[has_audio[pos]] = units[offs[k] : offs[k + 1]]
        for pos, reason, msg in abad:
            broken[has_audio[pos]] = (reason, f"audio track: {msg}")
    sp = spec["vocab"]["special"]
    ups = 1000.0 / spec["audio"]["hop_ms"] if spec.get("audio") else 50.0
    seqs, kept_rows, frame_pos = [], [], 0
    for j, (r, frames, _audio, times) in enumerate(plans):  # <= max_frames pieces per video: assembly only
        first = frame_pos
        frame_pos += len(frames)
        if j in broken:
            quarantine.append((r, *broken[j]))
            continue
        units = audio_ok.get(j, np.zeros(0, np.uint32))
        bounds = _audio_bounds(len(units), times, len(frames), ups)
        parts = [np.array([sp["<|bov|>"]], np.uint32)]
        for i in range(len(frames)):
            parts.append(blocks_all[block_of[first + i]])
            chunk = units[bounds[i] : bounds[i + 1]]
            if len(chunk):
                parts += [np.array([sp["<|boa|>"]], np.uint32), chunk, np.array([sp["<|eoa|>"]], np.uint32)]
            parts.append(np.array([sp["<|eof|>"]], np.uint32))
        parts.append(np.array([sp["<|eov|>"], sp["<|eos|>"]], np.uint32))
        seqs.append(np.concatenate(parts))
        kept_rows.append(r)
    n = len(seqs)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    tokens = np.concatenate(seqs) if seqs else np.zeros(0, np.uint32)
    kinds, starts, lens, loss, counts = spans_from_pieces(n, ["video"], [True], [lengths])
    enc = Encoded(np.array(kept_rows, dtype=np.int64), tokens, lengths, kinds, starts, lens, loss, counts)
    enc.quarantine = quarantine
    enc.stats = {"audio_truncated": truncated, "video_frames": int(frame_pos)}
    return enc
