"""Photos and still WebPs are stored as their own compressed data, without metadata (issue 14).

An unrotated sRGB JPEG (baseline or progressive), the first frame of an MPO and a still WebP
keep their compressed data minus EXIF, XMP, ICC, COM segments and trailers: same pixels, fewer
bytes, one stored item whatever the metadata. A rotated JPEG, a non-sRGB profile or a JPEG whose
colours depend on a dropped segment takes the PNG path with its pixels intact.
"""

from __future__ import annotations

import base64
import io
import struct

import numpy as np
import pytest
from conftest import read_source
from PIL import Image, ImageOps

from sources.icc_srgb import icc_is_srgb
from sources.jpeg_strip import clean_jpeg, jpeg_is_clean, strip_jpeg
from sources.media_strip import png_is_clean
from sources.webp_strip import webp_is_clean
from teacher.media import to_wire
from tests.media_builders import (
    AWS_KEY,
    PLANTED,
    SRGB_ICC,
    _meta,
    _noise,
    _pixels,
    leaks,
    make_photo_jpeg,
    make_webp,
)


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
