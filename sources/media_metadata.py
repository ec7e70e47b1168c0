"""Finding the metadata a media file carries, so gather can say what it stripped.

Gather never stores a media file's metadata (see media_strip: the lake holds re-encoded
pixels and samples). Before it is dropped, the metadata is found here and its text is
scanned with the curate stage's PII/secret patterns (filters.pii), so that meta can record
WHAT was there without keeping any of it:

    meta.metadata_stripped   sorted kinds found and dropped, e.g. ["exif", "png_text", "xmp"]
    meta.metadata_redactions {pii kind: findings} over that text, e.g. {"email": 2, "api_key": 1}

Where metadata is looked for:
- PNG: every chunk outside the image structure (tEXt/zTXt/iTXt text, decompressed; eXIf;
  iCCP; tIME; iTXt XML:com.adobe.xmp; any private chunk).
- JPEG: every APPn and COM segment, also between progressive scans (EXIF, XMP, ICC,
  Photoshop/IPTC, ...), except the JFIF and Adobe segments that only describe the encoding
  (a JFIF thumbnail counts as jfif_thumbnail); bytes after EOI count as jpeg_trailer.
- Other images (GIF, WebP, TIFF, ...): what Pillow exposes (EXIF and TIFF text tags, XMP,
  ICC profile, comments).
- WAV: every RIFF chunk except fmt/fact/data (LIST/INFO, id3, bext, iXML, ...); FLAC:
  every metadata block except STREAMINFO/PADDING/SEEKTABLE (Vorbis comments, pictures,
  application blocks, cue sheets); an ID3v2 tag at the start or ID3v1 at the end of any
  audio file; for other audio, the tags libsndfile reads.
- Video: container and stream tags (FFmpeg's structural ones excepted), and streams that are
  neither the first video nor the first audio stream (subtitles, data, attachments).
Binary blobs are scanned as the text they contain: UTF-8 runs plus UTF-16 (LE and BE) runs,
which is how EXIF UserComment, ICC descriptions and ID3 frames store text.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import polars as pl

from filters.pii import KINDS, redact
from sources.jpeg_strip import JpegError, jpeg_segments

# A metadata blob bigger than this is scanned only up to here (a 100 MB "comment" is not text
# worth the time; what is beyond is dropped all the same).
MAX_SCAN_BYTES = 4 * 2**20

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]+")
# ASCII text as UTF-16 in either byte order (a big-endian run is a little-endian one shifted by
# a byte: one pattern takes both, so no run is counted twice).
_UTF16 = re.compile(rb"\x00?(?:[\x20-\x7e]\x00){4,}[\x20-\x7e]?")


@dataclass
class Found:
    """Metadata kinds found in one file and the text they held (never stored)."""

    kinds: set[str] = field(default_factory=set)
    texts: list[str] = field(default_factory=list)

    def add(self, kind: str, *values: Any) -> None:
        self.kinds.add(kind)
        for v in values:
            if isinstance(v, (bytes, bytearray, memoryview)):
                self.texts.append(printable_text(bytes(v)))
            elif isinstance(v, str):
                self.texts.append(v[:MAX_SCAN_BYTES])
            elif isinstance(v, (tuple, list)):
                self.add(kind, *v)
            elif v is not None:
                self.texts.append(str(v))

    def meta(self) -> dict:
        """The meta keys: kinds stripped and PII/secret findings per kind in their text."""
        return {"metadata_stripped": sorted(self.kinds), "metadata_redactions": redaction_counts(self.texts)}


def printable_text(data: bytes) -> str:
    """The text inside a binary blob: its UTF-8 reading with control bytes as line breaks,
    then every UTF-16 run of 4+ ASCII characters (either byte order), one per line."""
    data = data[:MAX_SCAN_BYTES]
    parts = [_CONTROL.sub("\n", data.decode("utf-8", "replace"))]
    parts += [m.group().replace(b"\0", b"").decode("ascii") for m in _UTF16.finditer(data)]
    return "\n".join(parts)


def redaction_counts(texts: list[str]) -> dict[str, int]:
    """Findings per PII/secret kind (filters.pii's patterns, all kinds) over `texts`; zeros left out."""
    texts = [t for t in texts if t]
    if not texts:
        return {}
    _, counts = redact(pl.Series("t", texts, dtype=pl.Utf8), list(KINDS))
    return {k: int(counts[k].sum()) for k in counts.columns if counts[k].sum()}


# -- images ---------------------------------------------------------------------------------
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that describe the image itself; everything else in a PNG is metadata.
_PNG_STRUCTURE = {
    b"IHDR",
    b"PLTE",
    b"IDAT",
    b"IEND",
    b"tRNS",
    b"gAMA",
    b"cHRM",
    b"sRGB",
    b"sBIT",
    b"bKGD",
    b"pHYs",
    b"hIST",
    b"acTL",
    b"fcTL",
    b"fdAT",
    b"cICP",
}
_PNG_KIND = {
    b"tEXt": "png_text",
    b"zTXt": "png_text",
    b"iTXt": "png_text",
    b"eXIf": "exif",
    b"zxIf": "exif",
    b"iCCP": "icc_profile",
    b"tIME": "png_time",
}


PIXEL_CHUNKS = frozenset({b"IDAT", b"fdAT"})


def png_chunks(fh: BinaryIO, skip_data: frozenset[bytes] = PIXEL_CHUNKS):
    """Yield (type, data) for each chunk of a PNG file positioned after the signature; the
    data of chunk types in `skip_data` is not read (None)."""
    while True:
        head = fh.read(8)
        if len(head) < 8:
            return
        length, ctype = struct.unpack(">I4s", head)
        if ctype in skip_data:
            data = None
            fh.seek(length + 4, 1)
        else:
            data = fh.read(min(length, MAX_SCAN_BYTES))
            fh.seek(length - len(data) + 4, 1)
        yield ctype, data
        if ctype == b"IEND":
            return


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompressobj().decompress(data, MAX_SCAN_BYTES)  # bounded: a zip bomb stops here
    except zlib.error:
        return data


def _png_text(ctype: bytes, data: bytes) -> tuple[str, bytes]:
    """(keyword, text bytes) of a tEXt/zTXt/iTXt chunk, decompressed."""
    key, _, rest = data.partition(b"\0")
    if ctype == b"zTXt":
        return key.decode("latin-1"), _inflate(rest[1:])
    if ctype == b"iTXt":
        compressed, rest = rest[:1] == b"\1", rest[2:]
        _lang, _, rest = rest.partition(b"\0")
        _tkey, _, text = rest.partition(b"\0")
        return key.decode("latin-1"), _inflate(text) if compressed else text
    return key.decode("latin-1"), rest


def png_metadata(fh: BinaryIO, found: Found) -> None:
    fh.seek(len(PNG_SIGNATURE))
    for ctype, data in png_chunks(fh):
        if ctype in _PNG_STRUCTURE:
            continue
        data = data or b""
        if ctype in (b"tEXt", b"zTXt", b"iTXt"):
            key, text = _png_text(ctype, data)
            found.add("xmp" if key == "XML:com.adobe.xmp" else "png_text", key, text)
        elif ctype == b"iCCP":
            found.add("icc_profile", _inflate(data.partition(b"\0")[2][1:]))
        else:
            found.add(_PNG_KIND.get(ctype, "png_chunk"), ctype, data)


_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}


def jpeg_metadata(fh: BinaryIO, found: Found) -> None:
    """APPn and COM segments (also those between progressive scans) and any non-zero bytes
    after EOI (trailing data, the other frames of an MPO); the segments up to the first scan
    only, when the file cannot be walked to its EOI."""
    fh.seek(0)
    data = fh.read()
    try:
        segments, end = jpeg_segments(data)
    except JpegError:
        _jpeg_header_metadata(fh, found)
        return
    for marker, _, body, seg_end in segments:
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            _jpeg_segment(marker, data[body:seg_end], found)
    if data[end:].strip(b"\0"):
        found.add("jpeg_trailer", data[end : end + MAX_SCAN_BYTES])


def _jpeg_header_metadata(fh: BinaryIO, found: Found) -> None:
    """APPn and COM segments up to the first scan (SOS)."""
    fh.seek(2)
    while True:
        b = fh.read(1)
        while b == b"\xff":  # fill bytes
            b = fh.read(1)
        if not b:
            return
        marker = b[0]
        if marker in _JPEG_NO_LENGTH:
            continue
        raw = fh.read(2)
        if len(raw) < 2 or marker == 0xDA:  # start of scan: the metadata segments are behind us
            return
        length = struct.unpack(">H", raw)[0] - 2
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            fh.seek(length, 1)
            continue
        _jpeg_segment(marker, fh.read(length), found)


def _jpeg_segment(marker: int, data: bytes, found: Found) -> None:
    """Record an APPn or COM segment's payload (the JFIF and Adobe ones only describe the encoding)."""
    if marker == 0xFE:
        found.add("jpeg_comment", data)
    elif marker == 0xE0 and data.startswith(b"JFIF\0"):
        if len(data) > 14:  # a thumbnail follows the 14-byte header: pixels, no text
            found.kinds.add("jfif_thumbnail")
    elif marker == 0xEE and data.startswith(b"Adobe"):
        pass
    elif marker == 0xE1 and data.startswith(b"Exif\0"):
        found.add("exif", data)
    elif marker == 0xE1 and data.startswith(b"http://ns.adobe.com/"):
        found.add("xmp", data)
    elif marker == 0xE2 and data.startswith(b"ICC_PROFILE\0"):
        found.add("icc_profile", data)
    elif marker == 0xE2 and data.startswith(b"MPF\0"):
        found.add("mpf", data)  # the index of an MPO's other frames (which follow EOI)
    elif marker == 0xED:
        found.add("iptc", data)
    else:
        found.add(f"jpeg_app{marker - 0xE0}", data)


_EXIF_TEXT_IFDS = (0x8769, 0x8825)  # Exif and GPS sub-IFDs


def pillow_metadata(im: Any, found: Found) -> None:
    """What Pillow exposes for formats without a walker here (GIF, WebP, TIFF, ...)."""
    info = im.info
    if info.get("exif"):
        found.add("exif", info["exif"])
    else:  # TIFF keeps its text tags (Artist, ImageDescription, XMP, ...) as the image's own tags
        exif = im.getexif()
        values = [v for v in exif.values() if isinstance(v, (str, bytes))]
        for ifd in _EXIF_TEXT_IFDS:
            values += [v for v in exif.get_ifd(ifd).values() if isinstance(v, (str, bytes))]
        if values:
            found.add("exif", *values)
    for key, kind in (
        ("xmp", "xmp"),
        ("XML:com.adobe.xmp", "xmp"),
        ("icc_profile", "icc_profile"),
        ("comment", "comment"),
    ):
        if info.get(key):
            found.add(kind, info[key])


def image_metadata(path: str, im: Any) -> Found:
    """Metadata of the image file at `path`, already opened by Pillow as `im`."""
    found = Found()
    with open(path, "rb") as fh:
        head = fh.read(8)
        if head == PNG_SIGNATURE:
            png_metadata(fh, found)
        elif head[:3] == b"\xff\xd8\xff":
            jpeg_metadata(fh, found)
        else:
            pillow_metadata(im, found)
    return found


# -- audio ----------------------------------------------------------------------------------
_RIFF_STRUCTURE = {b"fmt ", b"fact", b"data"}
_RIFF_KIND = {b"id3 ": "id3", b"ID3 ": "id3", b"PEAK": "wav_peak", b"bext": "bwf", b"iXML": "ixml", b"_PMX": "xmp"}
_FLAC_STRUCTURE = {0, 1, 3}  # STREAMINFO, PADDING, SEEKTABLE
_FLAC_KIND = {2: "flac_application", 4: "vorbis_comment", 5: "cuesheet", 6: "picture"}


def riff_metadata(fh: BinaryIO, found: Found) -> None:
    fh.seek(0, 2)
    size = fh.tell()
    pos = 12
    while pos + 8 <= size:
        fh.seek(pos)
        cid, csize = struct.unpack("<4sI", fh.read(8))
        if cid == b"data" or cid in _RIFF_STRUCTURE:
            pass
        elif cid == b"LIST":
            data = fh.read(min(csize, MAX_SCAN_BYTES))
            found.add("wav_info" if data[:4] == b"INFO" else "wav_list", data)
        else:
            found.add(_RIFF_KIND.get(cid, "wav_chunk"), cid, fh.read(min(csize, MAX_SCAN_BYTES)))
        pos += 8 + csize + (csize & 1)


def flac_metadata(fh: BinaryIO, found: Found) -> None:
    fh.seek(4)
    while True:
        head = fh.read(4)
        if len(head) < 4:
            return
        last, btype, length = head[0] >> 7, head[0] & 0x7F, int.from_bytes(head[1:], "big")
        if btype in _FLAC_STRUCTURE:
            fh.seek(length, 1)
        else:
            data = fh.read(min(length, MAX_SCAN_BYTES))
            fh.seek(length - len(data), 1)
            if btype == 4 and _vorbis_comment_count(data) == 0:
                found.texts.append(printable_text(data))  # only the encoder's vendor string: scanned, not a tag
            else:
                found.add(_FLAC_KIND.get(btype, "flac_block"), data)
        if last:
            return


def _vorbis_comment_count(data: bytes) -> int:
    """Number of comments in a Vorbis comment block (after the vendor string); -1 if malformed."""
    if len(data) < 4:
        return -1
    vendor = int.from_bytes(data[:4], "little")
    count = data[4 + vendor : 8 + vendor]
    return int.from_bytes(count, "little") if len(count) == 4 else -1


def id3_metadata(fh: BinaryIO, found: Found) -> None:
    """An ID3v2 tag at the start of the file, an ID3v1 tag in its last 128 bytes."""
    fh.seek(0)
    head = fh.read(10)
    if head[:3] == b"ID3" and len(head) == 10:
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]  # synchsafe
        found.add("id3", fh.read(min(size, MAX_SCAN_BYTES)))
    fh.seek(0, 2)
    if fh.tell() >= 128:
        fh.seek(-128, 2)
        tail = fh.read(128)
        if tail[:3] == b"TAG":
            found.add("id3", tail[3:])


def audio_metadata(path: str, sf_file: Any) -> Found:
    """Metadata of the audio file at `path`, already opened by soundfile as `sf_file`."""
    found = Found()
    with open(path, "rb") as fh:
        head = fh.read(12)
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            riff_metadata(fh, found)
        elif head[:4] == b"fLaC":
            flac_metadata(fh, found)
        else:
            id3_metadata(fh, found)
            tags = {k: v for k, v in sf_file.copy_metadata().items() if v}
            if tags:
                found.add("tags", *tags.values())
    return found


# -- video ----------------------------------------------------------------------------------
# Tags FFmpeg's demuxers report for every file of a format: they describe the container.
_STRUCTURAL_TAGS = {
    "major_brand",
    "minor_version",
    "compatible_brands",
    "encoder",
    "language",
    "handler_name",
    "vendor_id",
    "duration",
    "_statistics_writing_app",
    "_statistics_tags",
    "number_of_frames",
    "number_of_bytes",
    "bps",
}


def video_metadata(container: Any, kept: set[int]) -> Found:
    """Tags of a PyAV input container and its streams; streams whose index is not in `kept`
    count as stripped."""
    found = Found()
    for owner, kind in [(container, "container_tags")] + [(s, "stream_tags") for s in container.streams]:
        tags = dict(owner.metadata or {})
        if tags:
            found.texts += [f"{k}={v}" for k, v in tags.items()]
            if any(k.lower().split("-")[0] not in _STRUCTURAL_TAGS for k in tags):
                found.kinds.add(kind)
    for s in container.streams:
        if s.index not in kept:
            found.kinds.add(f"{s.type}_stream")
    return found
