"""Lossless metadata removal for JPEG photos: a rewrite of the segments, no decode, no re-encode.

A JPEG whose pixels need no change (no EXIF rotation to apply, no ICC profile or an sRGB
one) keeps its compressed data. Its segments are copied or dropped:
  kept:    SOI, the JFIF APP0 (thumbnail removed), DQT, SOF0/SOF1/SOF2 (baseline, extended,
           progressive Huffman), DHT, DRI, SOS with its entropy-coded data, EOI;
  dropped: every other APPn (EXIF, XMP, ICC, MPF, Photoshop IRB, Adobe, JFXX thumbnails ...),
           COM, and anything after EOI (trailing data, the other frames of an MPO).
Any other marker (arithmetic coding, lossless or hierarchical frames, DNL, ...) and any
malformed or truncated file is refused: the caller re-encodes those to PNG (media_strip).
`clean_jpeg` also refuses a rewrite that Pillow does not decode to exactly the source's
pixels (the dropped APP14 Adobe segment, for one, can change how colours are read), so a
stored JPEG always shows what the source showed.

`jpeg_is_clean` tells from the segments alone whether bytes are such a rewrite; the
teacher sends those as they are.
"""

from __future__ import annotations

import io
import re
import struct

from PIL import Image, ImageChops

from sources.icc_srgb import icc_is_srgb

_SOI, _EOI, _SOS, _APP0, _APP15, _COM = 0xD8, 0xD9, 0xDA, 0xE0, 0xEF, 0xFE
_DQT, _DHT, _DRI = 0xDB, 0xC4, 0xDD
_SOF_KEPT = {0xC0, 0xC1, 0xC2}  # Huffman baseline, extended sequential, progressive
_KEPT = {_DQT, _DHT, _DRI, _SOS, *_SOF_KEPT}
# The marker that ends a scan's entropy-coded data: 0xFF not followed by a stuffed 0x00, a
# restart marker (which belongs to the scan) or another 0xFF (a fill byte before a marker).
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JFIF_BODY = 14  # "JFIF\0", version 2, units 1, densities 2+2, thumbnail width and height 1+1
_ICC_TAG = b"ICC_PROFILE\0"
# The modes a YCbCr or greyscale JPEG decodes to; CMYK/YCCK files are left to the PNG path.
_MODES = {"L", "RGB"}
_TURNING_ORIENTATIONS = range(2, 9)  # EXIF orientations whose pixels a viewer turns or flips


class JpegError(ValueError):
    """The bytes are not a JPEG this module can walk."""


def jpeg_segments(data: bytes) -> tuple[list[tuple[int, int, int, int]], int]:
    """([(marker, start, body, end)] from SOI to EOI, offset just after EOI).

    `start` is where the segment's marker (and any fill bytes before it) begins, `body` where
    its payload begins (after the length field), `end` where it ends; a SOS segment's span
    includes its scan's entropy-coded data. Raises JpegError on anything malformed."""
    if not data.startswith(b"\xff\xd8"):
        raise JpegError("no SOI marker")
    segments = [(_SOI, 0, 2, 2)]
    pos, n = 2, len(data)
    while True:
        start = pos
        if pos >= n or data[pos] != 0xFF:
            raise JpegError(f"no marker at offset {pos}")
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise JpegError("truncated before EOI")
        marker = data[pos]
        pos += 1
        if marker == _EOI:
            segments.append((_EOI, start, pos, pos))
            return segments, pos
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            raise JpegError(f"marker 0x{marker:02X} outside a scan")
        if pos + 2 > n:
            raise JpegError("truncated segment header")
        length = struct.unpack_from(">H", data, pos)[0]
        if length < 2 or pos + length > n:
            raise JpegError(f"segment 0x{marker:02X} length {length} out of the file")
        body, end = pos + 2, pos + length
        if marker == _SOS:
            m = _SCAN_END.search(data, end)
            if m is None:
                raise JpegError("scan data runs to the end of the file")
            end = m.start()
        segments.append((marker, start, body, end))
        pos = end


def _is_jfif(data: bytes, body: int, end: int) -> bool:
    return end - body >= _JFIF_BODY and data[body : body + 5] == b"JFIF\0"


def strip_jpeg(data: bytes) -> bytes | None:
    """`data` with only the kept segments (see the module docstring), or None if refused."""
    try:
        segments, _ = jpeg_segments(data)
    except JpegError:
        return None
    view = memoryview(data)
    parts: list = []
    jfif = False
    for marker, start, body, end in segments:
        if marker in _KEPT or marker in (_SOI, _EOI):
            parts.append(view[start:end])
        elif marker == _APP0 and not jfif and _is_jfif(data, body, end):
            jfif = True  # the JFIF header describes the encoding; its thumbnail goes
            parts.append(b"\xff\xe0" + struct.pack(">H", _JFIF_BODY + 2) + data[body : body + _JFIF_BODY - 2] + b"\0\0")
        elif not (_APP0 <= marker <= _APP15 or marker == _COM):
            return None
    return b"".join(parts)


def jpeg_is_clean(data: bytes) -> bool:
    """True for a JPEG made only of kept segments: no APPn but one bare JFIF APP0 (no
    thumbnail), no COM, nothing after EOI. Walks segment headers and scans for markers only."""
    try:
        segments, end_of_image = jpeg_segments(data)
    except JpegError:
        return False
    if end_of_image != len(data):
        return False
    app0 = [(body, end) for marker, _, body, end in segments if marker == _APP0]
    if len(app0) > 1 or any(
        end - body != _JFIF_BODY or not _is_jfif(data, body, end) or data[end - 2 : end] != b"\0\0"
        for body, end in app0
    ):
        return False
    return all(marker in _KEPT or marker in (_SOI, _EOI, _APP0) for marker, *_ in segments)


def jpeg_icc_profile(data: bytes) -> bytes | None:
    """The ICC profile of a JPEG, its APP2 chunks joined in sequence order; None if it has none.
    Raises JpegError if the file cannot be walked."""
    segments, _ = jpeg_segments(data)
    chunks = sorted(
        (data[body + 12], data[body + 14 : end])
        for marker, _, body, end in segments
        if marker == 0xE2 and data[body : body + 12] == _ICC_TAG and end - body > 14
    )
    return b"".join(c for _, c in chunks) or None


def clean_jpeg(data: bytes, im: Image.Image, orientation: int) -> bytes | None:
    """`data` (a JPEG file, `im` its loaded Pillow image) without metadata, when its pixels
    need no change and the rewrite decodes to exactly `im`'s pixels; None otherwise (the
    caller re-encodes to PNG): EXIF rotation to apply, an ICC profile that is not sRGB, a
    CMYK file, a segment this module does not copy, or different pixels after the rewrite."""
    if im.format not in ("JPEG", "MPO") or im.mode not in _MODES or orientation in _TURNING_ORIENTATIONS:
        return None
    try:
        icc = jpeg_icc_profile(data)
    except JpegError:
        return None
    if icc is not None and not icc_is_srgb(icc):
        return None
    out = strip_jpeg(data)
    if out is None:
        return None
    return out if decodes_to(out, im, "JPEG") else None


def decodes_to(out: bytes, im: Image.Image, fmt: str) -> bool:
    """Whether the rewritten file `out` is a `fmt` image that decodes to exactly `im`'s pixels."""
    try:
        with Image.open(io.BytesIO(out)) as check:
            check.load()
            # difference() is zero in every band exactly where the pixels are equal, and
            # getbbox() finds any non-zero band: 10x faster than comparing tobytes()
            return (
                check.format == fmt
                and check.mode == im.mode
                and check.size == im.size
                and ImageChops.difference(check, im).getbbox(alpha_only=False) is None
            )
    except (OSError, SyntaxError, ValueError, EOFError):
        return False


def clean_jpeg_bytes(data: bytes) -> bytes | None:
    """clean_jpeg for bytes alone (the teacher's case): None when not a JPEG it can rewrite."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in ("JPEG", "MPO"):
                return None
            orientation = int(im.getexif().get(0x0112, 1) or 1)
            im.load()
            return clean_jpeg(data, im, orientation)
    except (OSError, SyntaxError, ValueError, EOFError):
        return None
