"""Media files with e-mail addresses and an AWS key planted in their metadata, and the checks
that read them back (issue 14). Shared by the media-metadata tests and the secrets end-to-end test.

The builders write a PNG (tEXt, zTXt, iTXt), a rotated JPEG (EXIF Artist and UserComment, XMP),
an unrotated JPEG photo (EXIF UserComment, XMP, an sRGB ICC profile, a COM segment, bytes after
EOI), a WAV (LIST/INFO comment and an id3 chunk, written byte by byte), a still WebP (EXIF, XMP,
sRGB ICC, trailer) and an MP4 (container and stream tags); `leaks` finds any planted value in bytes.
"""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image, ImageCms, PngImagePlugin

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


def _meta(result) -> dict[str, dict]:
    docs = result.tables["documents"]
    return {os.path.basename(u): json.loads(m) for u, m in zip(docs["uri"], docs["meta"])}


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))
