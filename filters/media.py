"""Media filters: image size and aspect ratio, audio duration / silence / clipping, video
duration and resolution.

Bounds:
- images: shorter side >= 64 px, longer side <= 16384 px, aspect ratio <= 3 (LAION-5B /
  DataComp practice: tiny thumbnails and banner strips carry little content).
- audio: 0.5 s .. 1 h; silence fraction (|x| < 1e-3 full scale) <= 0.9; clipped samples
  (|x| >= 0.999) <= 1%; no NaN or infinite sample (rule audio_non_finite, value: the share
  of samples, all channels, that are not finite), checked first: such audio is not sound.
- video: 0.5 s .. 2 h; shorter side >= 64 px, longer side <= 8192 px.

Facts come from the row's meta (width/height/duration) when present; otherwise from the
bytes at lake_root/<media> (image header via Pillow, audio decoded with soundfile, video
container via PyAV). The bytes are opened in every case, so unreadable media is caught
here. Opening files is per item I/O through the decoders' own calls, so it is one library
call per media row; everything after (the rules) is vectorized.
Unreadable bytes are not a reject but a quarantine with a reason code:
bad_media_ref (no or malformed "media/ab/<sha256>", distillery/media_ref.py), media_missing (no such file),
media_unreadable (the decoder failed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from distillery import media_ref
from filters.config import MediaConfig
from filters.meta import get_number
from filters.rules import Rule, rule_if

_COLUMNS = ["width", "height", "duration", "silence_frac", "clip_frac", "non_finite_frac"]
_MEASURED = ("silence_frac", "clip_frac", "non_finite_frac")  # from the bytes, never from meta


def media_path(lake_root: Path, ref: str | None) -> Path | None:
    """The file behind a CAS reference, or None when the reference is not one."""
    return media_ref.path_or_none(lake_root, ref)


def _probe_image(path: Path) -> dict:
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        im.verify()  # parses the whole file (e.g. PNG chunk CRCs) without decoding pixels
    return {"width": w, "height": h}


def _probe_audio(path: Path, cfg: MediaConfig) -> dict:
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    amp = np.abs(data).max(axis=1) if data.size else np.zeros(0, np.float32)
    n = max(len(amp), 1)
    return {
        "duration": len(data) / rate,
        "silence_frac": float((amp < cfg.audio_silence_threshold).sum()) / n,
        "clip_frac": float((amp >= cfg.audio_clip_level).sum()) / n,
        "non_finite_frac": float((~np.isfinite(data)).sum()) / max(data.size, 1),
    }


def _probe_video(path: Path) -> dict:
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        dur = (
            float(c.duration) / 1e6
            if c.duration
            else (float(vs.duration * vs.time_base) if vs.duration and vs.time_base else None)
        )
        return {"width": vs.codec_context.width, "height": vs.codec_context.height, "duration": dur}


def probe(docs: pl.DataFrame, cfg: MediaConfig, lake_root: Path) -> pl.DataFrame:
    """Per row: width, height, duration, silence_frac, clip_frac (null where not applicable)
    and quarantine reason/error for media rows whose bytes cannot be used."""
    n = docs.height
    meta = docs.select(
        get_number(pl.col("meta"), "width").alias("width"),
        get_number(pl.col("meta"), "height").alias("height"),
        get_number(pl.col("meta"), "duration").alias("duration"),
    )
    cols = {c: np.full(n, np.nan) for c in _COLUMNS}
    for c in ("width", "height", "duration"):
        cols[c] = meta[c].fill_null(np.nan).to_numpy().astype(np.float64)
    reason: list[str | None] = [None] * n
    error: list[str | None] = [None] * n
    modality = docs["modality"].to_list()
    refs = docs["media"].to_list()
    for i, mod in enumerate(modality):
        if mod not in ("image", "audio", "video"):
            continue
        path = media_path(lake_root, refs[i])
        if path is None:
            reason[i], error[i] = media_ref.BAD_REF, str(media_ref.BadMediaRef.of(refs[i]))
            continue
        if not path.is_file():
            reason[i], error[i] = "media_missing", f"{refs[i]} is not in the lake"
            continue
        try:  # always opened: unreadable bytes are caught here, not later in dedup or shard
            facts = (
                _probe_image(path)
                if mod == "image"
                else _probe_audio(path, cfg)
                if mod == "audio"
                else _probe_video(path)
            )
        except Exception as exc:  # any decoder error means the bytes are unusable
            reason[i], error[i] = "media_unreadable", f"{mod} decode failed: {type(exc).__name__}: {str(exc)[:200]}"
            continue
        for k, v in facts.items():  # meta wins where it has the fact (gather measured it)
            if v is not None and (k in _MEASURED or np.isnan(cols[k][i])):
                cols[k][i] = float(v)
    out = pl.DataFrame(cols)
    mod = docs["modality"]
    short = np.fmin(cols["width"], cols["height"])
    long = np.fmax(cols["width"], cols["height"])
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = long / short
    is_img = (mod == "image").to_numpy()
    is_vid = (mod == "video").to_numpy()
    is_aud = (mod == "audio").to_numpy()
    return out.with_columns(
        pl.Series("image_short_side", np.where(is_img, short, np.nan)),
        pl.Series("image_long_side", np.where(is_img, long, np.nan)),
        pl.Series("image_aspect", np.where(is_img, aspect, np.nan)),
        pl.Series("audio_duration", np.where(is_aud, cols["duration"], np.nan)),
        pl.Series("audio_silence", np.where(is_aud, cols["silence_frac"], np.nan)),
        pl.Series("audio_clipping", np.where(is_aud, cols["clip_frac"], np.nan)),
        pl.Series("audio_non_finite", np.where(is_aud, cols["non_finite_frac"], np.nan)),
        pl.Series("video_duration", np.where(is_vid, cols["duration"], np.nan)),
        pl.Series("video_short_side", np.where(is_vid, short, np.nan)),
        pl.Series("video_long_side", np.where(is_vid, long, np.nan)),
        pl.Series("media_reason", reason, dtype=pl.Utf8),
        pl.Series("media_error", error, dtype=pl.Utf8),
    )


def rules(cfg: MediaConfig) -> list[Rule]:
    if not cfg.enabled:
        return []
    return (
        rule_if("image_too_small", "image_short_side", "<", cfg.image_min_side)
        + rule_if("image_too_large", "image_long_side", ">", cfg.image_max_side)
        + rule_if("image_aspect_ratio", "image_aspect", ">", cfg.image_max_aspect_ratio)
        + rule_if("audio_non_finite", "audio_non_finite", ">", cfg.audio_max_non_finite_fraction)
        + rule_if("audio_too_short", "audio_duration", "<", cfg.audio_min_seconds)
        + rule_if("audio_too_long", "audio_duration", ">", cfg.audio_max_seconds)
        + rule_if("audio_silence", "audio_silence", ">", cfg.audio_max_silence_fraction)
        + rule_if("audio_clipping", "audio_clipping", ">", cfg.audio_max_clipping_fraction)
        + rule_if("video_too_short", "video_duration", "<", cfg.video_min_seconds)
        + rule_if("video_too_long", "video_duration", ">", cfg.video_max_seconds)
        + rule_if("video_too_small", "video_short_side", "<", cfg.video_min_side)
        + rule_if("video_too_large", "video_long_side", ">", cfg.video_max_side)
    )
