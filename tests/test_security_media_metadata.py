"""Media metadata never reaches the lake's media store, its Parquet, a shard or a teacher (issue 14).

Files are built here with e-mail addresses and an AWS key planted in their metadata: a PNG
(tEXt, zTXt, iTXt), a rotated JPEG (EXIF Artist and UserComment, XMP), an unrotated JPEG
photo (EXIF UserComment, XMP, an sRGB ICC profile, a COM segment, bytes after EOI), a WAV
(LIST/INFO comment and an id3 chunk, written byte by byte), a still WebP (EXIF, XMP, sRGB
ICC, trailer) and an MP4 (container and stream tags). Gather must store copies without any
of it (the photo and the WebP as their own compressed data, the rest re-encoded) and record
in meta only which kinds of metadata it dropped and how many PII/secret findings they held.
One real CLI run of gather, curate, distill (image and audio prompts to a recording teacher
on loopback) and shard then checks every lake file, every request body (base64 payloads
decoded) and the shards.
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import polars as pl
import pytest
import soundfile as sf
from conftest import read_source
from PIL import Image, ImageCms, ImageOps, PngImagePlugin

from sources.icc_srgb import icc_is_srgb
from sources.jpeg_strip import clean_jpeg, jpeg_is_clean, strip_jpeg
from sources.media_strip import png_is_clean, wav_is_clean
from sources.webp_strip import webp_is_clean
from teacher.media import to_wire

REPO = Path(__file__).resolve().parents[1]
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
PLANTED = {
    "png_text": "png.text.owner@example.com",
    "png_ztxt": "png.ztxt.owner@example.com",
    "jpeg_artist": "jpeg.artist@example.com",
    "jpeg_comment": "jpeg.usercomment@example.com",
    "jpeg_xmp": "jpeg.xmp.creator@example.com",
    "wav_info": "wav.info.comment@example.com",
    "wav_id3": "wav.id3.title@example.com",
    "video_title": "video.title@example.com",
    "video_stream": "video.stream@example.com",
    "photo_comment": "photo.usercomment@example.com",
    "photo_xmp": "photo.xmp.creator@example.com",
    "photo_com": "photo.com.segment@example.com",
    "photo_trailer": "photo.trailer@example.com",
    "webp_artist": "webp.artist@example.com",
    "webp_xmp": "webp.xmp.creator@example.com",
}
ALL_PLANTED = [*PLANTED.values(), AWS_KEY]


def _noise(seed: int, size=(96, 80)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)


def make_png(path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", PLANTED["png_text"])
    info.add_text("Comment", PLANTED["png_ztxt"], zip=True)
    info.add_itxt("Description", f"deploy key {AWS_KEY}", lang="en", tkey="Description", zip=True)
    Image.fromarray(_noise(1)).save(path, "PNG", pnginfo=info)


def make_jpeg(path: Path) -> None:
    exif = Image.Exif()
    exif[0x013B] = PLANTED["jpeg_artist"]  # Artist
    exif[0x0112] = 6  # orientation: stored pixels must come out rotated
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + PLANTED["jpeg_comment"].encode("utf-16-be")  # UserComment
    Image.fromarray(_noise(2)).save(path, "JPEG", exif=exif.tobytes(), xmp=_xmp(PLANTED["jpeg_xmp"]), quality=95)


def _xmp(creator: str) -> bytes:
    return (
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="{creator}"/>'
        f"</rdf:RDF></x:xmpmeta>"
    ).encode()


SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def make_photo_jpeg(path: Path, progressive: bool = False, orientation: int = 1) -> None:
    """An unrotated (or `orientation`) JPEG with EXIF UserComment, XMP, an sRGB ICC profile,
    a COM segment and bytes after EOI, each holding a planted value."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + PLANTED["photo_comment"].encode("utf-16-be")  # UserComment
    buf = io.BytesIO()
    Image.fromarray(_noise(3, (128, 96))).save(
        buf,
        "JPEG",
        exif=exif.tobytes(),
        xmp=_xmp(PLANTED["photo_xmp"]),
        icc_profile=SRGB_ICC,
        comment=f"by {PLANTED['photo_com']}",
        quality=90,
        progressive=progressive,
    )
    path.write_bytes(buf.getvalue() + f"trailer {PLANTED['photo_trailer']} {AWS_KEY}".encode())


def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")


def _id3v2(title: str) -> bytes:
    frame = b"\x03" + title.encode()  # encoding 3 = UTF-8
    frames = b"TIT2" + struct.pack(">I", len(frame)) + b"\0\0" + frame
    size = len(frames)
    synchsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x04\x00\x00" + synchsafe + frames


def make_wav(path: Path) -> None:
    buf = io.BytesIO()
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    sf.write(buf, tone, 16000, format="WAV", subtype="PCM_16")
    body = buf.getvalue()[12:]  # fmt + data chunks
    info = (
        b"INFO" + _chunk(b"ICMT", f"mail {PLANTED['wav_info']} key {AWS_KEY}\0".encode()) + _chunk(b"ISFT", b"tests\0")
    )
    body += _chunk(b"LIST", info) + _chunk(b"id3 ", _id3v2(PLANTED["wav_id3"]))
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)


def make_video(path: Path) -> None:
    with av.open(str(path), "w") as c:
        c.metadata["title"] = PLANTED["video_title"]
        c.metadata["comment"] = f"key {AWS_KEY}"
        vs = c.add_stream("libx264", rate=8)
        vs.width, vs.height, vs.pix_fmt = 96, 80, "yuv420p"
        vs.metadata["title"] = PLANTED["video_stream"]
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        for i in range(16):
            for p in vs.encode(av.VideoFrame.from_ndarray(_noise(10 + i // 4), format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        pcm = (np.sin(np.arange(32000) / 5.0) * 8000).astype(np.int16).reshape(1, -1)
        af = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        af.sample_rate = 16000
        for p in a.encode(af):
            c.mux(p)
        for p in a.encode():
            c.mux(p)


def build_corpus(root: Path) -> None:
    for sub in ("img", "au", "vid"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    make_png(root / "img" / "tagged.png")
    make_jpeg(root / "img" / "tagged.jpg")
    make_photo_jpeg(root / "img" / "photo.jpg")
    make_webp(root / "img" / "sticker.webp")
    make_wav(root / "au" / "tagged.wav")
    make_video(root / "vid" / "tagged.mp4")


def leaks(data: bytes) -> list[str]:
    """Planted values found in `data`, as UTF-8 or UTF-16 (either byte order)."""
    return [v for v in ALL_PLANTED if any(v.encode(enc) in data for enc in ("utf-8", "utf-16-le", "utf-16-be"))]


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


def _meta(result) -> dict[str, dict]:
    docs = result.tables["documents"]
    return {os.path.basename(u): json.loads(m) for u, m in zip(docs["uri"], docs["meta"])}


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


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_unrotated_srgb_jpeg_is_stored_as_its_own_jpeg_data_without_metadata(tmp_path, progressive):
    """No decode-re-encode for a photo that needs no pixel change: the stored bytes are the
    source's JPEG segments minus EXIF, XMP, ICC, COM and the trailer; same pixels, fewer bytes."""
    make_photo_jpeg(tmp_path / "photo.jpg", progressive=progressive)
    source = (tmp_path / "photo.jpg").read_bytes()
    assert sorted(leaks(source)) == sorted([*(v for k, v in PLANTED.items() if k.startswith("photo_")), AWS_KEY])
    _, result = read_source({"name": "im", "kind": "images", "paths": ["*.jpg"]}, tmp_path)
    meta = _meta(result)["photo.jpg"]
    stored = (tmp_path / "lake" / result.tables["documents"]["media"][0]).read_bytes()

    assert stored[:2] == b"\xff\xd8" and jpeg_is_clean(stored) and not jpeg_is_clean(source)
    assert leaks(stored) == [] and b"Exif" not in stored and b"ICC_PROFILE" not in stored
    assert np.array_equal(_pixels(stored), _pixels(source))
    assert len(stored) <= len(source)
    assert (meta["stored_format"], meta["stored_bytes"], meta["icc_to_srgb"]) == ("JPEG", len(stored), True)
    assert meta["metadata_stripped"] == ["exif", "icc_profile", "jpeg_comment", "jpeg_trailer", "xmp"]
    assert meta["metadata_redactions"] == {"email": 4, "api_key": 1}
    # The entropy-coded data is the source's, byte for byte (nothing was re-encoded).
    sos = source.index(b"\xff\xda")
    assert source[sos : source.index(b"\xff\xd9", len(source) - 80) + 2] in stored


def test_rotated_jpeg_still_becomes_png_with_the_orientation_applied(tmp_path):
    make_photo_jpeg(tmp_path / "turned.jpg", orientation=6)
    _, result = read_source({"name": "im", "kind": "images", "paths": ["*.jpg"]}, tmp_path)
    meta = _meta(result)["turned.jpg"]
    stored = (tmp_path / "lake" / result.tables["documents"]["media"][0]).read_bytes()
    assert png_is_clean(stored) and leaks(stored) == [] and meta["stored_format"] == "PNG"
    with Image.open(tmp_path / "turned.jpg") as src:
        turned = ImageOps.exif_transpose(src)
        assert turned.size == (96, 128) == (meta["width"], meta["height"])
        # sRGB -> sRGB through LittleCMS may move a value by a step or two: the turn is what counts
        diff = np.abs(_pixels(stored).astype(int) - np.asarray(turned.convert("RGB")).astype(int))
        assert diff.max() <= 3


def test_same_jpeg_data_with_different_metadata_is_one_stored_item(tmp_path):
    make_photo_jpeg(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()
    for key in ("photo_xmp", "photo_trailer"):
        data = data.replace(PLANTED[key].encode(), b"x" * len(PLANTED[key]))
    (tmp_path / "b.jpg").write_bytes(data)
    _, result = read_source({"name": "im", "kind": "images", "paths": ["*.jpg"]}, tmp_path)
    docs = result.tables["documents"]
    assert docs.height == 2 and docs["id"].n_unique() == 1 and docs["media"].n_unique() == 1


def test_mpo_keeps_the_jpeg_data_of_its_first_frame_only(tmp_path):
    first, second = (Image.fromarray(_noise(seed)) for seed in (8, 9))
    first.save(tmp_path / "pair.jpg", "MPO", save_all=True, append_images=[second], quality=90)
    _, result = read_source({"name": "im", "kind": "images", "paths": ["*.jpg"]}, tmp_path)
    meta = _meta(result)["pair.jpg"]
    stored = (tmp_path / "lake" / result.tables["documents"]["media"][0]).read_bytes()
    assert (meta["format"], meta["stored_format"], meta["frames_dropped"]) == ("MPO", "JPEG", 1)
    assert meta["metadata_stripped"] == ["jpeg_trailer", "mpf"]
    assert jpeg_is_clean(stored) and stored.count(b"\xff\xd8") == 1
    with Image.open(tmp_path / "pair.jpg") as src:
        assert np.array_equal(_pixels(stored), np.asarray(src.convert("RGB")))  # frame 0


def make_webp(path: Path) -> None:
    """A lossless still WebP with real transparency, EXIF Artist, XMP, an sRGB profile and
    bytes after the RIFF container."""
    rgba = np.dstack([_noise(6), np.tile(np.arange(96, dtype=np.uint8) * 2, (80, 1))])
    exif = Image.Exif()
    exif[0x013B] = PLANTED["webp_artist"]
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(
        buf, "WEBP", lossless=True, exif=exif.tobytes(), xmp=_xmp(PLANTED["webp_xmp"]), icc_profile=SRGB_ICC
    )
    path.write_bytes(buf.getvalue() + f"trailer {AWS_KEY}".encode())


def test_still_webp_keeps_its_own_data_without_metadata_in_the_lake_and_on_the_wire(tmp_path):
    make_webp(tmp_path / "sticker.webp")
    source = (tmp_path / "sticker.webp").read_bytes()
    assert sorted(leaks(source)) == sorted([PLANTED["webp_artist"], PLANTED["webp_xmp"], AWS_KEY])
    _, result = read_source({"name": "im", "kind": "images", "paths": ["*.webp"]}, tmp_path)
    meta = _meta(result)["sticker.webp"]
    ref = result.tables["documents"]["media"][0]
    stored = (tmp_path / "lake" / ref).read_bytes()
    assert webp_is_clean(stored) and not webp_is_clean(source) and leaks(stored) == []
    assert (meta["stored_format"], meta["mode"]) == ("WEBP", "RGBA") and len(stored) < len(source)
    assert meta["metadata_stripped"] == ["exif", "icc_profile", "xmp"] and meta["metadata_redactions"] == {"email": 2}
    with Image.open(io.BytesIO(stored)) as a, Image.open(io.BytesIO(source)) as b:
        assert a.mode == b.mode == "RGBA" and np.array_equal(np.asarray(a), np.asarray(b))
    url = to_wire([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": ref}}]}], tmp_path / "lake")[
        0
    ]["content"][0]["image_url"]["url"]
    assert url == "data:image/webp;base64," + base64.b64encode(stored).decode()


def test_only_an_srgb_profile_lets_a_jpeg_keep_its_data(tmp_path):
    assert icc_is_srgb(SRGB_ICC)
    # The same profile with a red primary moved (a wide-gamut display) or a linear tone curve.
    tags = {
        SRGB_ICC[132 + 12 * i : 136 + 12 * i]: struct.unpack_from(">II", SRGB_ICC, 136 + 12 * i)
        for i in range(struct.unpack_from(">I", SRGB_ICC, 128)[0])
    }
    wide = bytearray(SRGB_ICC)
    wide[tags[b"rXYZ"][0] + 8 : tags[b"rXYZ"][0] + 12] = struct.pack(">i", int(0.5151 * 65536))
    linear = bytearray(SRGB_ICC)
    linear[tags[b"rTRC"][0] : tags[b"rTRC"][0] + 16] = b"para\0\0\0\0\0\0\0\0" + struct.pack(">i", 65536)
    assert not icc_is_srgb(bytes(wide)) and not icc_is_srgb(bytes(linear))

    Image.fromarray(_noise(4)).save(tmp_path / "wide.jpg", "JPEG", icc_profile=bytes(wide), quality=90)
    _, result = read_source({"name": "im", "kind": "images", "paths": ["*.jpg"]}, tmp_path)
    meta = _meta(result)["wide.jpg"]
    assert meta["stored_format"] == "PNG" and meta["metadata_stripped"] == ["icc_profile"]


def test_jpeg_whose_colours_depend_on_a_dropped_segment_takes_the_png_path(tmp_path):
    """An RGB-coded JPEG whose only sign of being RGB is its APP14 Adobe segment (components
    numbered 1-3, not 'R','G','B'): without that segment it decodes as YCbCr, to other
    colours, so the pixel check must send it to the PNG path, pixels intact."""
    buf = io.BytesIO()
    Image.fromarray(_noise(11)).save(buf, "JPEG", quality=90, keep_rgb=True)
    data = bytearray(buf.getvalue())
    ids = {ord("R"): 1, ord("G"): 2, ord("B"): 3}
    sof = data.index(b"\xff\xc0") + 4  # payload: precision, height, width, count, then 3 bytes per component
    for i in range(data[sof + 5]):
        data[sof + 6 + 3 * i] = ids[data[sof + 6 + 3 * i]]
    sos = data.index(b"\xff\xda") + 4  # payload: count, then 2 bytes per component
    for i in range(data[sos]):
        data[sos + 1 + 2 * i] = ids[data[sos + 1 + 2 * i]]
    (tmp_path / "rgb.jpg").write_bytes(bytes(data))
    # Guard: the rewrite really would change the colours.
    assert not np.array_equal(_pixels(strip_jpeg(bytes(data))), _pixels(bytes(data)))
    _, result = read_source({"name": "im", "kind": "images", "paths": ["*.jpg"]}, tmp_path)
    stored = (tmp_path / "lake" / result.tables["documents"]["media"][0]).read_bytes()
    assert _meta(result)["rgb.jpg"]["stored_format"] == "PNG" and png_is_clean(stored)
    assert np.array_equal(_pixels(stored), _pixels(bytes(data)))


def test_clean_jpeg_refuses_a_rewrite_that_would_show_other_pixels(tmp_path):
    make_photo_jpeg(tmp_path / "photo.jpg")
    data = (tmp_path / "photo.jpg").read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert clean_jpeg(data, im, 1) is not None
        other = Image.fromarray(np.asarray(im) ^ np.uint8(1))  # one bit off in every value
        other.format = "JPEG"
        assert clean_jpeg(data, other, 1) is None
        assert clean_jpeg(data, im, 6) is None  # a turn to apply: the pixels must change


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


class RecordingTeacher:
    """The reference teacher, keeping every request body it reads (teacher.reference.server has no
    recording hook, so its handler is subclassed; the server's own code answers)."""

    def __init__(self) -> None:
        from teacher.reference.server import _Handler, _State

        bodies = self.bodies = []

        class Handler(_Handler):
            def _body(self) -> bytes:
                raw = super()._body()
                bodies.append(raw)
                return raw

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = _State(None, 0.0)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


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
