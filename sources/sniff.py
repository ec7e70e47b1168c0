"""Content sniffing: what a file's first bytes say it is, to catch wrong extensions.

Only unambiguous magic numbers are listed; `sniff` returns None when unsure, and callers
treat None as "no contradiction".
"""

from __future__ import annotations

_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (0, b"BM", "bmp"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (0, b"fLaC", "flac"),
    (0, b"OggS", "ogg"),
    (0, b"ID3", "mp3"),
    (0, b"\x1a\x45\xdf\xa3", "matroska"),
    (0, b"%PDF-", "pdf"),
    (0, b"PK\x03\x04", "zip"),
    (0, b"\x1f\x8b", "gzip"),
    (0, b"\x7fELF", "elf"),
    (0, b"\x28\xb5\x2f\xfd", "zstd"),
    (0, b"PAR1", "parquet"),
)

IMAGE_KINDS = {"png", "jpeg", "gif", "bmp", "tiff", "webp"}
AUDIO_KINDS = {"flac", "ogg", "mp3", "wav"}
VIDEO_KINDS = {"matroska", "mp4", "avi", "ogg"}

# What the magic number must say for files with these extensions (media readers).
KIND_BY_EXTENSION = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".gif": "gif",
    ".bmp": "bmp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".webp": "webp",
    ".wav": "wav",
    ".flac": "flac",
    ".ogg": "ogg",
    ".oga": "ogg",
    ".opus": "ogg",
    ".mp3": "mp3",
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mp4",
    ".m4a": "mp4",
    ".mkv": "matroska",
    ".webm": "matroska",
    ".avi": "avi",
    ".ogv": "ogg",
}


def sniff(head: bytes) -> str | None:
    """The kind named by the magic number in the first bytes, or None."""
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"WAVE": "wav", b"WEBP": "webp", b"AVI ": "avi"}.get(head[8:12])
    if head[4:8] == b"ftyp":
        return "mp4"
    for offset, magic, kind in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return kind
    return None


def looks_binary(head: bytes) -> bool:
    """git's heuristic: a NUL byte in the first 8000 bytes means binary."""
    return b"\0" in head[:8000]
