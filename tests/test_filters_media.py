"""Media bounds with real files in a tmp lake: image size/aspect, audio duration/silence/clipping,
video duration/resolution, and quarantine of unreadable bytes."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import av
import numpy as np
import polars as pl
import soundfile as sf
from PIL import Image

from distillery.result import conform
from distillery.tables import DOCUMENT
from filters import CurateConfig, filter_partition


def put(lake: Path, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    p = lake / "media" / sha[:2] / sha
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return f"media/{sha[:2]}/{sha}"


def png(w: int, h: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def wav(samples: np.ndarray, rate: int = 16000, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def mp4(path: Path, w: int, h: int, frames: int, fps: int = 10) -> bytes:
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            img = np.full((h, w, 3), (i * 20) % 255, dtype=np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path.read_bytes()


def docs_frame(rows: list[dict]) -> pl.DataFrame:
    full = [
        {"id": f"id{i}", "source": "t", "uri": f"u{i}", "license": None, "text": None, "meta": None, "parents": [], **r}
        for i, r in enumerate(rows)
    ]
    return pl.from_arrow(conform(pl.DataFrame(full, schema_overrides={"parents": pl.List(pl.Utf8)}), DOCUMENT))


def verdicts(lake: Path, rows: list[dict]) -> list[str | None]:
    res = filter_partition(docs_frame(rows), CurateConfig(), lake)
    out = {i: None for i in res.tables["curated"]["id"]}
    out |= dict(zip(res.tables["rejects"]["id"], res.tables["rejects"]["rule"]))
    out |= {i: "quarantine:" + r for i, r in zip(res.tables["quarantine"]["id"], res.tables["quarantine"]["reason"])}
    assert len(out) == len(rows) == res.rows_in
    return [out[f"id{i}"] for i in range(len(rows))]


def test_image_bounds_from_bytes_and_meta(tmp_path):
    rows = [
        {"modality": "image", "media": put(tmp_path, png(63, 100, 1))},
        {"modality": "image", "media": put(tmp_path, png(64, 100, 2))},
        {"modality": "image", "media": put(tmp_path, png(310, 100, 3))},
        {"modality": "image", "media": put(tmp_path, png(300, 100, 4))},
        # meta wins over the bytes (gather already measured it)
        {
            "modality": "image",
            "media": put(tmp_path, png(80, 80, 5)),
            "meta": json.dumps({"width": 20000, "height": 9000}),
        },
    ]
    assert verdicts(tmp_path, rows) == ["image_too_small", None, "image_aspect_ratio", None, "image_too_large"]


def test_audio_duration_silence_clipping(tmp_path):
    rate = 16000
    t = np.arange(rate) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    rows = [
        {"modality": "audio", "media": put(tmp_path, wav(tone[: int(0.4 * rate)]))},
        {"modality": "audio", "media": put(tmp_path, wav(tone))},
        {"modality": "audio", "media": put(tmp_path, wav(np.r_[np.zeros(int(0.95 * rate)), tone[: int(0.05 * rate)]]))},
        {"modality": "audio", "media": put(tmp_path, wav(np.r_[np.zeros(int(0.85 * rate)), tone[: int(0.15 * rate)]]))},
        {"modality": "audio", "media": put(tmp_path, wav(np.clip(5 * tone, -1, 1)))},
    ]
    assert verdicts(tmp_path, rows) == ["audio_too_short", None, "audio_silence", None, "audio_clipping"]


def test_video_bounds(tmp_path):
    rows = [
        {"modality": "video", "media": put(tmp_path, mp4(tmp_path / "a.mp4", 64, 64, 20))},
        {"modality": "video", "media": put(tmp_path, mp4(tmp_path / "b.mp4", 64, 64, 3))},
        {"modality": "video", "media": put(tmp_path, mp4(tmp_path / "c.mp4", 48, 64, 20))},
    ]
    assert verdicts(tmp_path, rows) == [None, "video_too_short", "video_too_small"]


def test_unreadable_media_is_quarantined(tmp_path):
    rows = [
        {"modality": "audio", "media": put(tmp_path, b"not audio at all")},
        {"modality": "image", "media": put(tmp_path, b"\x89PNG broken")},
        {"modality": "video", "media": put(tmp_path, b"\x00\x00\x00 garbage")},
        {"modality": "image", "media": "../../etc/passwd"},
        {"modality": "image", "media": "media/00/" + "0" * 64},
    ]
    assert verdicts(tmp_path, rows) == [
        "quarantine:media_unreadable",
        "quarantine:media_unreadable",
        "quarantine:media_unreadable",
        "quarantine:bad_media_ref",
        "quarantine:media_missing",
    ]


def test_truncated_image_with_meta_is_still_quarantined(tmp_path):
    data = png(100, 100, 9)
    rows = [
        {
            "modality": "image",
            "media": put(tmp_path, data[: len(data) // 2]),
            "meta": json.dumps({"width": 100, "height": 100}),
        },
        {"modality": "image", "media": put(tmp_path, data), "meta": json.dumps({"width": 100, "height": 100})},
    ]
    assert verdicts(tmp_path, rows) == ["quarantine:media_unreadable", None]
