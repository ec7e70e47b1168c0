"""Gather sources: images, audio and video with good and corrupt files, CAS storage, balance."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image, ImageOps
from pydantic import TypeAdapter

from sources import content_id, discover, read_items
from sources.config import AnySource

SOURCE = TypeAdapter(AnySource)


def run(cfg: dict, base):
    source = SOURCE.validate_python(cfg)
    items = list(discover(source, base))
    media_root = base / "lake" / "media"
    result = read_items(source, items, media_root)
    t = result.tables
    assert result.rows_in == len(items) == t["documents"].height + t["rejects"].height + t["quarantine"].height
    assert t["files"]["rows"].to_list() == [1] * len(items)
    return result, media_root


def reasons(result) -> dict[str, tuple[str, ...]]:
    q = result.tables["quarantine"].sort("uri")
    out: dict[str, list[str]] = {}
    for uri, reason in q.select("uri", "reason").iter_rows():
        out.setdefault(reason, []).append(os.path.basename(uri))
    return {k: tuple(v) for k, v in out.items()}


def _png(size=(8, 6), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 0).save(buf, "PNG")
    return buf.getvalue()


def test_images_good_corrupt_exif_and_bomb(tmp_path):
    d = tmp_path / "img"
    d.mkdir()
    (d / "a.png").write_bytes(_png())
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: a 20x10 sensor image is shown 10 wide, 20 high
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 10, 10)).save(buf, "JPEG", exif=exif.tobytes())
    (d / "b_exif.jpg").write_bytes(buf.getvalue())
    buf = io.BytesIO()
    Image.new("RGB", (5, 5)).save(buf, "GIF")
    (d / "c.gif").write_bytes(buf.getvalue())
    # A bomb: 3000x3000 one-bit image compresses to ~1 KB; the limit is set to 1 Mpx.
    (d / "d_bomb.png").write_bytes(_png((3000, 3000), "1"))
    (d / "e_zero.png").write_bytes(b"")
    good = _png((64, 64))
    (d / "f_truncated.png").write_bytes(good[: len(good) // 2])
    (d / "g_jpeg_named.png").write_bytes((d / "b_exif.jpg").read_bytes())
    (d / "h_text.png").write_bytes(b"just some text, not an image at all\n")
    result, media_root = run(
        {"name": "im", "kind": "images", "paths": ["img/*"], "max_image_pixels": 1_000_000}, tmp_path
    )
    docs = result.tables["documents"]
    assert [os.path.basename(u) for u in docs["uri"]] == ["a.png", "b_exif.jpg", "c.gif"]
    assert reasons(result) == {
        "decompression_bomb": ("d_bomb.png",),
        "zero_byte": ("e_zero.png",),
        "truncated": ("f_truncated.png",),
        "wrong_extension": ("g_jpeg_named.png",),
        "unreadable": ("h_text.png",),
    }
    meta = {os.path.basename(u): json.loads(m) for u, m in zip(docs["uri"], docs["meta"])}
    assert (meta["a.png"]["width"], meta["a.png"]["height"], meta["a.png"]["format"]) == (8, 6, "PNG")
    assert (meta["b_exif.jpg"]["width"], meta["b_exif.jpg"]["height"]) == (10, 20)
    assert meta["b_exif.jpg"]["exif_orientation"] == 6
    # The store holds a metadata-free PNG of the pixels as a viewer sees them (EXIF rotation
    # applied), not the source bytes (issue 14): the id and the reference name those PNG bytes.
    for row in docs.iter_rows(named=True):
        stored = (media_root / row["media"].removeprefix("media/")).read_bytes()
        sha = hashlib.sha256(stored).hexdigest()
        assert row["media"] == f"media/{sha[:2]}/{sha}" and row["text"] is None
        assert row["id"] == content_id("image", stored) and row["modality"] == "image"
        with Image.open(row["uri"]) as src, Image.open(io.BytesIO(stored)) as out:
            assert out.format == "PNG" and out.size == (
                meta[os.path.basename(row["uri"])]["width"],
                meta[os.path.basename(row["uri"])]["height"],
            )
            assert out.convert("RGB").tobytes() == ImageOps.exif_transpose(src).convert("RGB").tobytes()
    # Determinism: the same items read again give identical frames (CAS objects reused).
    source = SOURCE.validate_python({"name": "im", "kind": "images", "paths": ["img/*"], "max_image_pixels": 1_000_000})
    again = read_items(source, list(discover(source, tmp_path)), media_root)
    for name in ("documents", "rejects", "quarantine", "files"):
        assert again.tables[name].equals(result.tables[name])


def test_image_bomb_limit_is_configurable(tmp_path):
    (tmp_path / "big.png").write_bytes(_png((3000, 3000), "1"))
    result, _ = run({"name": "im", "kind": "images", "paths": ["*.png"], "max_image_pixels": 10_000_000}, tmp_path)
    assert result.tables["documents"].height == 1


def _wav(path, frames=8000, rate=8000, channels=1, fmt="WAV"):
    data = (np.sin(np.arange(frames) / 10.0) * 0.3).astype("float32")
    if channels > 1:
        data = np.stack([data] * channels, axis=1)
    sf.write(path, data, rate, format=fmt)


def test_audio_good_and_corrupt(tmp_path):
    d = tmp_path / "au"
    d.mkdir()
    _wav(d / "a.wav", frames=8000, rate=8000)
    _wav(d / "b.flac", frames=16000, rate=16000, channels=2, fmt="FLAC")
    _wav(d / "c.ogg", frames=8000, rate=8000, fmt="OGG")
    full = (d / "a.wav").read_bytes()
    (d / "d_truncated.wav").write_bytes(full[: len(full) // 2])
    flac = (d / "b.flac").read_bytes()
    (d / "e_truncated.flac").write_bytes(flac[: len(flac) // 2])
    (d / "f_zero.wav").write_bytes(b"")
    (d / "g_garbage.wav").write_bytes(os.urandom(0) + b"not audio at all " * 20)
    (d / "h_png.wav").write_bytes(_png())
    (d / "i_flac_named.wav").write_bytes(flac)
    result, media_root = run({"name": "au", "kind": "audio", "paths": ["au/*"]}, tmp_path)
    docs = result.tables["documents"]
    assert [os.path.basename(u) for u in docs["uri"]] == ["a.wav", "b.flac", "c.ogg"]
    q = reasons(result)
    assert q["zero_byte"] == ("f_zero.wav",) and q["wrong_extension"] == ("h_png.wav", "i_flac_named.wav")
    assert q["truncated"][0] == "d_truncated.wav"
    assert "e_truncated.flac" in q.get("truncated", ()) + q.get("unreadable", ())
    assert "g_garbage.wav" in q["unreadable"]
    meta = {os.path.basename(u): json.loads(m) for u, m in zip(docs["uri"], docs["meta"])}
    assert meta["a.wav"]["sample_rate"] == 8000 and meta["a.wav"]["frames"] == 8000
    assert meta["a.wav"]["duration"] == 1.0 and meta["a.wav"]["channels"] == 1
    assert meta["b.flac"]["channels"] == 2 and meta["b.flac"]["format"] == "FLAC"
    # The store holds the decoded samples re-encoded without metadata (issue 14), not the
    # source bytes: same samples, WAV stays WAV, FLAC stays FLAC, lossy OGG becomes FLAC.
    stored_fmt = {"a.wav": "WAV", "b.flac": "FLAC", "c.ogg": "FLAC"}
    for row in docs.iter_rows(named=True):
        sha = row["media"].rsplit("/", 1)[1]
        stored = media_root / sha[:2] / sha
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
        assert row["id"] == content_id("audio", stored.read_bytes())
        name = os.path.basename(row["uri"])
        assert sf.info(str(stored)).format == stored_fmt[name] == meta[name]["stored_format"]
        got, want = sf.read(str(stored), dtype="float32")[0], sf.read(row["uri"], dtype="float32")[0]
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= (1 / 32768 if name == "c.ogg" else 0)


def _video(path, vcodec, acodec=None, seconds=2, fps=10):
    import av

    with av.open(str(path), "w") as c:
        vs = c.add_stream(vcodec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = 32, 24, "yuv420p"
        if acodec:
            a = c.add_stream(acodec, rate=16000)
            a.layout = "mono"
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), i * 10, dtype=np.uint8), format="rgb24")
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if acodec:
            pcm = (np.sin(np.arange(16000 * seconds) / 5.0) * 8000).astype(np.int16).reshape(1, -1)
            af = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            af.sample_rate = 16000
            for p in a.encode(af):
                c.mux(p)
            for p in a.encode():
                c.mux(p)


def test_video_sampling_audio_and_corrupt(tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    _video(d / "a.mp4", "libx264", "aac")
    _video(d / "b.webm", "libvpx", "libopus")
    _video(d / "c.mkv", "mpeg4")
    for name in ("a.mp4", "b.webm"):
        data = (d / name).read_bytes()
        (d / f"cut_{name}").write_bytes(data[: len(data) // 2])
    (d / "zero.mp4").write_bytes(b"")
    (d / "noise.mp4").write_bytes(b"\x00" * 64 + b"garbage" * 100)
    _wav(d / "sound.mkv", fmt="WAV")  # a WAV named .mkv
    result, media_root = run({"name": "v", "kind": "video", "paths": ["v/*"], "frame_rate": 1.0}, tmp_path)
    docs = result.tables["documents"]
    assert [os.path.basename(u) for u in docs["uri"]] == ["a.mp4", "b.webm", "c.mkv"]
    assert reasons(result) == {
        "truncated": ("cut_a.mp4", "cut_b.webm"),
        "unreadable": ("noise.mp4",),
        "wrong_extension": ("sound.mkv",),
        "zero_byte": ("zero.mp4",),
    }
    meta = {os.path.basename(u): json.loads(m) for u, m in zip(docs["uri"], docs["meta"])}
    a = meta["a.mp4"]
    assert (a["codec"], a["width"], a["height"], a["fps"]) == ("h264", 32, 24, 10.0)
    assert abs(a["duration"] - 2.0) < 0.2 and a["frames_decoded"] == 20
    assert [f["t"] for f in a["frames"]] == [0.0, 1.0]
    for f in a["frames"]:
        sha = f["media"].rsplit("/", 1)[1]
        with Image.open(media_root / sha[:2] / sha) as im:
            assert im.format == "PNG" and im.size == (32, 24)
    sha = a["audio"]["media"].rsplit("/", 1)[1]
    info = sf.info(str(media_root / sha[:2] / sha))
    assert info.samplerate == 16000 and info.channels == 1 and info.frames >= 32000
    assert meta["b.webm"]["codec"] == "vp8" and meta["b.webm"]["audio"]["frames"] > 0
    assert meta["c.mkv"]["audio"] is None
    assert not list((media_root / ".tmp").iterdir())  # no temporary audio left from the bad files
    # DOCUMENT.media is the tag-free Matroska remux of the source (issue 14); the id names it.
    for row in docs.iter_rows(named=True):
        stored = (media_root / row["media"].removeprefix("media/")).read_bytes()
        assert row["id"] == content_id("video", stored)
        with av.open(io.BytesIO(stored)) as c, av.open(row["uri"]) as src:
            assert c.format.name.startswith("matroska")
            assert sum(1 for _ in c.decode(video=0)) == sum(1 for _ in src.decode(video=0))


def test_image_limit_above_pillow_default(tmp_path):
    # 10000 x 9000 = 90 Mpx, above Pillow's default 89.5 Mpx guard: the configured limit rules.
    assert 10000 * 9000 > Image.MAX_IMAGE_PIXELS
    (tmp_path / "wide.png").write_bytes(_png((10000, 9000), "1"))
    before = Image.MAX_IMAGE_PIXELS
    result, _ = run({"name": "im", "kind": "images", "paths": ["*.png"], "max_image_pixels": 100_000_000}, tmp_path)
    assert result.tables["documents"].height == 1 and Image.MAX_IMAGE_PIXELS == before
    strict, _ = run({"name": "im", "kind": "images", "paths": ["*.png"], "max_image_pixels": 50_000_000}, tmp_path)
    assert strict.tables["quarantine"]["reason"].to_list() == ["decompression_bomb"]


_FULL_DISK_CHILD = """
import resource, signal, sys
from pydantic import TypeAdapter
from sources import discover, read_items
from sources.config import AnySource
from pathlib import Path
base = Path(sys.argv[1])
source = TypeAdapter(AnySource).validate_python({"name": "m", "kind": sys.argv[2], "paths": [sys.argv[3]]})
items = list(discover(source, base))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # every write past 4 KB fails with EFBIG
try:
    result = read_items(source, items, base / "lake" / "media")
except OSError as exc:
    print("raised", exc.errno)
else:
    print("returned", result.tables["quarantine"].to_dicts())
"""


def test_full_disk_while_reencoding_audio_or_video_fails_the_read_not_the_item(tmp_path):
    """The re-encodings are written through libsndfile and FFmpeg, which hide a failed write
    (an errno-less error, or a silently cut FLAC): a full disk must still reach read_items
    as the OSError it is, so the stage fails and re-runs instead of quarantining the file."""
    import errno
    import subprocess
    import sys

    (tmp_path / "au").mkdir()
    _wav(tmp_path / "au" / "a.flac", frames=64000, rate=16000, fmt="FLAC")
    _wav(tmp_path / "au" / "b.wav", frames=64000, rate=16000)
    (tmp_path / "v").mkdir()
    _video(tmp_path / "v" / "a.mkv", "mpeg4", "aac", seconds=2)
    for kind, pattern in (("audio", "au/a.flac"), ("audio", "au/b.wav"), ("video", "v/*")):
        out = subprocess.run(
            [sys.executable, "-c", _FULL_DISK_CHILD, str(tmp_path), kind, pattern],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        assert out.stdout.strip() == f"raised {errno.EFBIG}", (pattern, out.stdout, out.stderr[-2000:])


def test_image_pixel_limit_is_per_call_across_threads(tmp_path):
    # gather reads sources on threads: two sources with different limits read the same
    # 2000x2000 image at the same time. The strict one must refuse it every time, the
    # lenient one accept it every time, and nothing process-wide may change while they
    # run (Pillow's global limit, the warning filters): a third thread watches both. A
    # limit set in Pillow's global for the call (or a catch_warnings filter) fails this.
    import sys
    import threading
    import warnings
    from collections import Counter

    from sources.image import read_image
    from sources.record import RowSink

    (tmp_path / "mid.png").write_bytes(_png((2000, 2000), "1"))
    item = next(iter(discover(SOURCE.validate_python({"name": "x", "kind": "images", "paths": ["*.png"]}), tmp_path)))
    strict = SOURCE.validate_python({"name": "s", "kind": "images", "paths": ["*.png"], "max_image_pixels": 1_000_000})
    lenient = SOURCE.validate_python(
        {"name": "l", "kind": "images", "paths": ["*.png"], "max_image_pixels": 10_000_000}
    )
    process_wide = lambda: (Image.MAX_IMAGE_PIXELS, tuple(warnings.filters))  # noqa: E731
    before, seen = process_wide(), set()
    rounds, start, done = 40, threading.Barrier(3), threading.Event()
    outcomes: dict[str, Counter] = {"s": Counter(), "l": Counter()}

    def read_many(source):
        start.wait()
        for _ in range(rounds):
            sink = RowSink(source.name)
            read_image(sink, source, item, tmp_path / "media")
            tables = sink.result().tables
            outcomes[source.name]["document" if tables["documents"].height else tables["quarantine"]["reason"][0]] += 1

    def watch():
        start.wait()
        while not done.is_set():
            seen.add(process_wide())

    readers = [threading.Thread(target=read_many, args=(s,)) for s in (strict, lenient)]
    watcher = threading.Thread(target=watch)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads take turns often, as under load, so the watcher sees each call
    try:
        for t in (*readers, watcher):
            t.start()
        for t in readers:
            t.join(timeout=120)
    finally:
        done.set()
        watcher.join(timeout=10)
        sys.setswitchinterval(switch)
    assert outcomes == {"s": {"decompression_bomb": rounds}, "l": {"document": rounds}}
    assert seen == {before} and process_wide() == before
