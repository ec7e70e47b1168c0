"""Media dedup: pHash of a slightly changed image matches, a different image does not; audio
with the same decoded samples in WAV and FLAC is one item; videos by sampled frame hashes."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import av
import numpy as np
import polars as pl
import soundfile as sf
from PIL import Image, ImageDraw, ImageEnhance

from filters import CurateConfig, dedup_keys, find_duplicates


def put(lake: Path, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    p = lake / "media" / sha[:2] / sha
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return f"media/{sha[:2]}/{sha}"


def picture(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (160, 120), tuple(int(x) for x in rng.integers(0, 255, 3)))
    d = ImageDraw.Draw(im)
    for _ in range(12):
        x, y = rng.integers(0, 140), rng.integers(0, 100)
        d.ellipse(
            [x, y, x + rng.integers(10, 60), y + rng.integers(10, 60)],
            fill=tuple(int(v) for v in rng.integers(0, 255, 3)),
        )
    return im


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def keys(lake: Path, rows: list[tuple[str, str]], start: int = 0) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "id": [f"m{start + i}" for i in range(len(rows))],
            "modality": [m for m, _ in rows],
            "text": [None] * len(rows),
            "media": [r for _, r in rows],
        },
        schema_overrides={"text": pl.Utf8},
    )
    return dedup_keys(frame, CurateConfig(), lake).with_columns(
        (pl.int_range(pl.len()) + start).cast(pl.Int64).alias("order")
    )


def test_image_phash_near_duplicates(tmp_path):
    a = picture(1)
    changed = ImageEnhance.Brightness(a.resize((320, 240))).enhance(1.1)
    rows = [
        ("image", put(tmp_path, encode(a, "PNG"))),
        ("image", put(tmp_path, encode(changed, "JPEG", quality=70))),
        ("image", put(tmp_path, encode(picture(2), "PNG"))),
        ("image", put(tmp_path, encode(a, "PNG"))),
    ]
    k = keys(tmp_path, rows)
    assert k["exact"][0] == k["exact"][3] != k["exact"][1]
    ham = lambda x, y: bin(x ^ y).count("1")  # noqa: E731
    assert ham(k["phash"][0], k["phash"][1]) <= 10 < ham(k["phash"][0], k["phash"][2])
    dups = find_duplicates(k, None, CurateConfig())
    got = {r[0]: r[1:] for r in dups.select("id", "duplicate_of", "method").rows()}
    assert got == {"m1": ("m0", "phash"), "m3": ("m0", "exact")}
    assert dups.filter(pl.col("id") == "m1")["similarity"][0] >= 1 - 10 / 64


def test_image_existing_wins(tmp_path):
    a = picture(3)
    existing = keys(tmp_path, [("image", put(tmp_path, encode(a.rotate(1), "PNG")))])
    new = keys(tmp_path, [("image", put(tmp_path, encode(a, "PNG")))], start=7)
    dups = find_duplicates(new, existing, CurateConfig())
    assert dups.select("id", "duplicate_of").rows() == [("m7", "m0")]


def test_audio_same_samples_in_wav_and_flac(tmp_path):
    rate = 16000
    # int16 samples, so both encoders store exactly these (float input is rounded differently)
    tone = (9000 * np.sin(2 * np.pi * 330 * np.arange(rate) / rate)).astype(np.int16)

    def enc(x, fmt):
        buf = io.BytesIO()
        sf.write(buf, x, rate, format=fmt, subtype="PCM_16")
        return buf.getvalue()

    w, f, other = enc(tone, "WAV"), enc(tone, "FLAC"), enc(tone // 2, "WAV")
    assert w != f
    k = keys(tmp_path, [("audio", put(tmp_path, w)), ("audio", put(tmp_path, f)), ("audio", put(tmp_path, other))])
    dups = find_duplicates(k, None, CurateConfig())
    assert dups.select("id", "duplicate_of", "method", "similarity").rows() == [("m1", "m0", "audio", 1.0)]


def video(path: Path, seed: int, noise: int = 0, w: int = 64, h: int = 48, n: int = 24) -> bytes:
    rng = np.random.default_rng(seed)
    base = [np.kron(rng.integers(0, 255, (6, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8) for _ in range(4)]
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=8)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            img = base[i * 4 // n].astype(np.int16)
            if noise:
                img = img + np.random.default_rng(i).integers(-noise, noise + 1, img.shape)
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path.read_bytes()


def test_video_near_identical_by_sampled_frames(tmp_path):
    rows = [
        ("video", put(tmp_path, video(tmp_path / "a.mp4", 1))),
        ("video", put(tmp_path, video(tmp_path / "b.mp4", 1, noise=6))),
        ("video", put(tmp_path, video(tmp_path / "c.mp4", 2))),
    ]
    k = keys(tmp_path, rows)
    assert all(len(f) == 8 for f in k["frame_phashes"])
    dups = find_duplicates(k, None, CurateConfig())
    assert dups.select("id", "duplicate_of", "method").rows() == [("m1", "m0", "video")]


def test_video_from_frame_hashes_directly():
    cfg = CurateConfig()
    f = [np.uint64(0x0F0F0F0F0F0F0F0F) * np.uint64(i + 1) for i in range(8)]
    near = list(f)
    near[3] = near[3] ^ np.uint64(0b111)  # 3 bits off in one frame
    far = [x ^ np.uint64(0xFFFF) for x in f]  # 16 bits off in every frame
    frame = pl.DataFrame(
        {
            "id": ["v0", "v1", "v2"],
            "modality": ["video"] * 3,
            "exact": ["a", "b", "c"],
            "signature": [None] * 3,
            "bands": [None] * 3,
            "phash": [None] * 3,
            "frame_phashes": [[int(x) for x in f], [int(x) for x in near], [int(x) for x in far]],
            "order": [0, 1, 2],
        },
        schema_overrides={
            "signature": pl.List(pl.UInt64),
            "bands": pl.List(pl.UInt64),
            "phash": pl.UInt64,
            "frame_phashes": pl.List(pl.UInt64),
            "order": pl.Int64,
        },
    )
    dups = find_duplicates(frame, None, cfg)
    assert dups.select("id", "duplicate_of").rows() == [("v1", "v0")]
    assert abs(dups["similarity"][0] - (1 - 3 / 8 / 64)) < 1e-9
