"""Media metadata never reaches the lake's media store, its Parquet, a shard or a teacher (issue 14).

Files built by tests/media_builders.py carry e-mail addresses and an AWS key in their metadata.
Gather must store copies without any of it and record in meta only which kinds of metadata it
dropped and how many PII/secret findings they held; to_wire strips media that still has some.
One real CLI run of gather, curate, distill (image and audio prompts to a recording teacher
on loopback) and shard then checks every lake file, every request body (base64 payloads
decoded) and the shards. How photos and still WebPs keep their own compressed data is in
test_security_media_passthrough.py.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import polars as pl
from conftest import read_source
from PIL import Image, PngImagePlugin

from sources.jpeg_strip import jpeg_is_clean
from sources.media_strip import png_is_clean, wav_is_clean
from sources.webp_strip import webp_is_clean
from teacher.media import to_wire
from tests.media_builders import ALL_PLANTED, PLANTED, _meta, _noise, _pixels, build_corpus, leaks
from tests.recording_teacher import RecordingTeacher

REPO = Path(__file__).resolve().parents[1]


def test_planted_values_are_really_in_the_source_files(tmp_path):
    """Guards the other tests: the builders do put every planted value into the files."""
    build_corpus(tmp_path)
    found = set()
    for p in tmp_path.rglob("*.*"):
        found |= set(leaks(p.read_bytes()))
    # zTXt/iTXt are compressed: Pillow must read them back
    with Image.open(tmp_path / "img" / "tagged.png") as im:
        found |= {v for v in ALL_PLANTED if any(v in str(t) for t in im.text.values())}
    assert found == set(ALL_PLANTED)


def test_gather_stores_no_metadata_and_records_kinds_and_counts(tmp_path):
    build_corpus(tmp_path)
    _, images = read_source({"name": "im", "kind": "images", "paths": ["img/*"]}, tmp_path)
    _, audio = read_source({"name": "au", "kind": "audio", "paths": ["au/*"]}, tmp_path)
    _, video = read_source({"name": "v", "kind": "video", "paths": ["vid/*"], "frame_rate": 1.0}, tmp_path)
    for result in (images, audio, video):
        assert result.tables["quarantine"].height == 0, result.tables["quarantine"].to_dicts()
    meta = {**_meta(images), **_meta(audio), **_meta(video)}

    png, jpg, wav, mp4 = meta["tagged.png"], meta["tagged.jpg"], meta["tagged.wav"], meta["tagged.mp4"]
    assert png["metadata_stripped"] == ["png_text"]
    assert png["metadata_redactions"] == {"email": 2, "api_key": 1}
    assert jpg["metadata_stripped"] == ["exif", "xmp"]
    assert jpg["metadata_redactions"] == {"email": 3}
    assert wav["metadata_stripped"] == ["id3", "wav_info"]
    assert wav["metadata_redactions"] == {"email": 2, "api_key": 1}
    assert mp4["metadata_stripped"] == ["container_tags", "stream_tags"]
    assert mp4["metadata_redactions"] == {"email": 2, "api_key": 1}
    assert (jpg["width"], jpg["height"], jpg["exif_orientation"]) == (80, 96, 6)

    # Nothing planted anywhere in the store, and every stored file is of the clean kind.
    stored = [p for p in (tmp_path / "lake" / "media").rglob("*") if p.is_file()]
    assert len(stored) >= 9  # 4 images, 1 audio, the video, its frames and its audio track
    for p in stored:
        data = p.read_bytes()
        assert leaks(data) == [], p
        if data.startswith(b"\x89PNG"):
            assert png_is_clean(data), p
        elif data.startswith(b"\xff\xd8"):
            assert jpeg_is_clean(data), p
        elif data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            assert webp_is_clean(data), p
        elif data.startswith(b"RIFF"):
            assert wav_is_clean(data), p
        else:
            with av.open(str(p)) as c:
                assert c.format.name.startswith("matroska")
                tags = [c.metadata] + [s.metadata for s in c.streams]
                assert all(k.upper() in ("ENCODER", "DURATION") for t in tags for k in t), tags
    # The stored JPEG is a PNG of its pixels turned as EXIF orientation 6 says.
    ref = images.tables["documents"].filter(pl.col("uri").str.ends_with("tagged.jpg"))["media"][0]
    with Image.open(tmp_path / "lake" / ref) as im:
        assert im.format == "PNG" and im.size == (80, 96) and not im.info.get("exif")
    # The documents' text columns hold no planted value either (meta has counts only).
    for result in (images, audio, video):
        for row in result.tables["documents"].iter_rows():
            assert leaks(json.dumps(row, default=str).encode()) == []


def test_same_pixels_with_different_metadata_are_one_stored_item(tmp_path):
    """Stripping also makes dedup see through metadata: one id, one stored object."""
    pixels = Image.fromarray(_noise(5))
    pixels.save(tmp_path / "a.png", "PNG")
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", PLANTED["png_text"])
    pixels.save(tmp_path / "b.png", "PNG", pnginfo=info)
    _, result = read_source({"name": "im", "kind": "images", "paths": ["*.png"]}, tmp_path)
    docs = result.tables["documents"]
    assert docs["id"].n_unique() == 1 and docs["media"].n_unique() == 1 and docs.height == 2


def test_teacher_wire_reencodes_media_that_still_has_metadata(tmp_path):
    """A lake written before this change (or by hand) may hold tagged bytes: to_wire strips them."""
    build_corpus(tmp_path)
    media = tmp_path / "lake" / "media" / "ab"
    media.mkdir(parents=True)
    (media / "img").write_bytes((tmp_path / "img" / "tagged.png").read_bytes())
    (media / "jpg").write_bytes((tmp_path / "img" / "tagged.jpg").read_bytes())
    (media / "wav").write_bytes((tmp_path / "au" / "tagged.wav").read_bytes())
    photo = (tmp_path / "img" / "photo.jpg").read_bytes()
    (media / "photo").write_bytes(photo)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "media/ab/img"}},
                {"type": "image_url", "image_url": {"url": "media/ab/jpg"}},
                {"type": "input_audio", "input_audio": {"data": "media/ab/wav", "format": "auto"}},
                {"type": "image_url", "image_url": {"url": "media/ab/photo"}},
            ],
        }
    ]
    parts = to_wire(messages, tmp_path / "lake")[0]["content"]
    sent = [
        base64.b64decode(parts[0]["image_url"]["url"].split(",", 1)[1]),
        base64.b64decode(parts[1]["image_url"]["url"].split(",", 1)[1]),
        base64.b64decode(parts[2]["input_audio"]["data"]),
        base64.b64decode(parts[3]["image_url"]["url"].split(",", 1)[1]),
    ]
    assert all(png_is_clean(d) for d in sent[:2]) and wav_is_clean(sent[2])
    assert [leaks(d) for d in sent] == [[], [], [], []]
    # The unrotated sRGB photo goes as JPEG, its metadata segments and trailer removed.
    assert parts[3]["image_url"]["url"].startswith("data:image/jpeg;base64,") and jpeg_is_clean(sent[3])
    assert np.array_equal(_pixels(sent[3]), _pixels(photo))
    (media / "clean_jpeg").write_bytes(sent[3])
    again = to_wire(
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "media/ab/clean_jpeg"}}]}],
        tmp_path / "lake",
    )
    again = again[0]["content"][0]["image_url"]["url"]
    assert again == parts[3]["image_url"]["url"]  # a clean JPEG goes out byte for byte
    with Image.open(io.BytesIO(sent[1])) as im:
        assert im.size == (80, 96)  # EXIF orientation applied before the tag was dropped
    # An already clean file goes out byte for byte (the check costs a header walk, no re-encode).
    clean = io.BytesIO()
    Image.fromarray(_noise(7)).save(clean, "PNG")
    (media / "clean").write_bytes(clean.getvalue())
    out = to_wire(
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "media/ab/clean"}}]}],
        tmp_path / "lake",
    )
    assert base64.b64decode(out[0]["content"][0]["image_url"]["url"].split(",", 1)[1]) == clean.getvalue()


def test_cli_run_keeps_metadata_out_of_lake_requests_and_shards(prefect_api, tmp_path):
    from prefect.settings import PREFECT_API_URL

    build_corpus(tmp_path)
    teacher = RecordingTeacher()
    lake = tmp_path / "lake"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
lake: {lake}
base_dir: {tmp_path}
sources:
  - {{name: pictures, kind: images, paths: ["img/*"]}}
  - {{name: sounds, kind: audio, paths: ["au/*"]}}
  - {{name: clips, kind: video, paths: ["vid/*"], frame_rate: 1.0}}
distill:
  base_url: {teacher.url}
  timeout_s: 10
  max_retries: 1
  tasks:
    - {{name: describe, template: describe_image, selector: {{modalities: [image]}}, verify: none}}
    - {{name: listen, template: transcribe_audio, selector: {{modalities: [audio]}}, verify: none}}
run: {{partition_rows: 8, workers: 1}}
""")
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        PREFECT_API_URL=PREFECT_API_URL.value(),
        DISTILLERY_RUN_DIR=str(tmp_path / "run"),
    )
    try:
        out = subprocess.run(
            [sys.executable, "-m", "distillery.cli", "run", str(cfg), "--stages", "gather,curate,distill,shard"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    finally:
        teacher.stop()
    assert out.returncode == 0, out.stderr[-4000:]

    # The teacher got both images and the audio, and no request body held a planted value,
    # neither as text nor inside a base64 payload.
    chats = [json.loads(b) for b in teacher.bodies if b"messages" in b]
    payloads = {"image": [], "audio": []}
    for body in chats:
        assert leaks(json.dumps(body).encode()) == []
        for message in body["messages"]:
            for part in message["content"] if isinstance(message["content"], list) else []:
                if part["type"] == "image_url":
                    payloads["image"].append(base64.b64decode(part["image_url"]["url"].split("base64,", 1)[1]))
                elif part["type"] == "input_audio":
                    payloads["audio"].append(base64.b64decode(part["input_audio"]["data"]))
    assert len(payloads["audio"]) >= 1
    assert len(payloads["image"]) >= 4
    assert all((png_is_clean(d) or jpeg_is_clean(d) or webp_is_clean(d)) and leaks(d) == [] for d in payloads["image"])
    # the photo and the still WebP went as the JPEG and WebP data gather stored
    assert sum(jpeg_is_clean(d) for d in payloads["image"]) == 1 == sum(webp_is_clean(d) for d in payloads["image"])
    assert all(wav_is_clean(d) and leaks(d) == [] for d in payloads["audio"])

    # No lake file holds a planted value: raw bytes, and every string cell of every Parquet
    # file (Parquet pages are compressed, so raw bytes alone would prove nothing).
    files = [p for p in lake.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for p in files:
        assert leaks(p.read_bytes()) == [], p
        if p.suffix == ".parquet":
            frame = pl.read_parquet(p)
            assert leaks(json.dumps(frame.to_dicts(), default=str).encode()) == [], p

    # Shards were built from the stored media: image, audio and video rows are in them.
    shard_sql = subprocess.run(
        [
            sys.executable,
            "-m",
            "distillery.cli",
            "sql",
            "select modality, count(*) n from shards group by all order by 1",
            "--lake",
            str(lake),
            "--format",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert shard_sql.returncode == 0, shard_sql.stderr
    by_modality = {r["modality"]: r["n"] for r in map(json.loads, shard_sql.stdout.splitlines())}
    assert by_modality.get("image", 0) >= 4 and by_modality.get("audio", 0) >= 1 and by_modality.get("video", 0) >= 1
