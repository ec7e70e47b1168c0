"""Lossless metadata removal for still WebP images: a rewrite of the RIFF chunks, no re-encode.

A still WebP whose pixels need no change (no EXIF rotation, no ICC profile or an sRGB one)
keeps its compressed data. Its chunks are copied or dropped:
  kept:    VP8X (its ICC, EXIF and XMP flags cleared), ALPH, VP8, VP8L;
  dropped: ICCP, EXIF, XMP and any unknown chunk, and anything after the RIFF container.
Animations (ANIM/ANMF) and malformed files are refused: media_strip re-encodes those to PNG.
`clean_webp` also refuses a rewrite that Pillow does not decode to exactly the source's
pixels. `webp_is_clean` tells from the chunk headers whether bytes are such a rewrite.
"""

from __future__ import annotations

import io
import struct

from PIL import Image

from sources.icc_srgb import icc_is_srgb
from sources.jpeg_strip import decodes_to

_KEPT = {b"VP8X", b"ALPH", b"VP8 ", b"VP8L"}
_DROPPED = {b"ICCP", b"EXIF", b"XMP "}
_ANIMATION = {b"ANIM", b"ANMF"}
# VP8X flag bits (byte 0 of its payload): ICC profile, EXIF, XMP, animation.
_FLAG_ICC, _FLAG_EXIF, _FLAG_XMP, _FLAG_ANIMATION = 0x20, 0x08, 0x04, 0x02
_METADATA_FLAGS = _FLAG_ICC | _FLAG_EXIF | _FLAG_XMP
_MODES = {"RGB", "RGBA"}
_TURNING_ORIENTATIONS = range(2, 9)  # EXIF orientations whose pixels a viewer turns or flips


class WebpError(ValueError):
    """The bytes are not a WebP this module can walk."""


def webp_chunks(data: bytes) -> tuple[list[tuple[bytes, int, int]], int]:
    """([(fourcc, start, end)] of each chunk, padding included; the offset where the RIFF
    container ends). Raises WebpError on anything malformed."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise WebpError("not a RIFF/WEBP file")
    riff_end = 8 + struct.unpack_from("<I", data, 4)[0]
    if riff_end > len(data):
        raise WebpError("RIFF size beyond the end of the file")
    chunks, pos = [], 12
    while pos < riff_end:
        if pos + 8 > riff_end:
            raise WebpError(f"truncated chunk header at offset {pos}")
        fourcc, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        end = pos + 8 + size + (size & 1)
        if end > riff_end:
            raise WebpError(f"chunk {fourcc!r} runs past the RIFF container")
        chunks.append((fourcc, pos, end))
        pos = end
    return chunks, riff_end


def strip_webp(data: bytes) -> bytes | None:
    """`data` with only the kept chunks (see the module docstring), or None if refused."""
    try:
        chunks, _ = webp_chunks(data)
    except WebpError:
        return None
    if any(fourcc in _ANIMATION for fourcc, _, _ in chunks):
        return None
    parts: list[bytes] = []
    for fourcc, start, end in chunks:
        if fourcc == b"VP8X":
            if end - start < 18:
                return None
            vp8x = bytearray(data[start:end])
            vp8x[8] &= ~_METADATA_FLAGS & 0xFF
            parts.append(bytes(vp8x))
        elif fourcc in _KEPT:
            parts.append(data[start:end])
    body = b"".join(parts)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def webp_is_clean(data: bytes) -> bool:
    """True for a still WebP made only of kept chunks, no metadata flag set, nothing after
    the RIFF container. Reads chunk headers only."""
    try:
        chunks, riff_end = webp_chunks(data)
    except WebpError:
        return False
    if riff_end != len(data) or not all(fourcc in _KEPT for fourcc, _, _ in chunks):
        return False
    return all(
        data[start + 8] & (_METADATA_FLAGS | _FLAG_ANIMATION) == 0 for fourcc, start, end in chunks if fourcc == b"VP8X"
    )


def webp_icc_profile(data: bytes) -> bytes | None:
    """The ICCP chunk's profile, None if there is none. Raises WebpError if unwalkable."""
    chunks, _ = webp_chunks(data)
    for fourcc, start, _end in chunks:
        if fourcc == b"ICCP":
            size = struct.unpack_from("<I", data, start + 4)[0]
            return data[start + 8 : start + 8 + size]
    return None


def clean_webp(data: bytes, im: Image.Image, orientation: int) -> bytes | None:
    """`data` (a WebP file, `im` its loaded Pillow image) without metadata, when it is a
    still image whose pixels need no change and the rewrite decodes to exactly `im`'s
    pixels; None otherwise (the caller re-encodes to PNG)."""
    if (
        im.format != "WEBP"
        or getattr(im, "n_frames", 1) != 1
        or im.mode not in _MODES
        or orientation in _TURNING_ORIENTATIONS
    ):
        return None
    try:
        icc = webp_icc_profile(data)
    except WebpError:
        return None
    if icc is not None and not icc_is_srgb(icc):
        return None
    out = strip_webp(data)
    if out is None:
        return None
    return out if decodes_to(out, im, "WEBP") else None


def clean_webp_bytes(data: bytes) -> bytes | None:
    """clean_webp for bytes alone (the teacher's case): None when not a WebP it can rewrite."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "WEBP":
                return None
            orientation = int(im.getexif().get(0x0112, 1) or 1)
            im.load()
            return clean_webp(data, im, orientation)
    except (OSError, SyntaxError, ValueError, EOFError):
        return None
