"""Turn stored-form messages (media by content-addressed reference) into what goes on the wire.

Images travel as data URIs in `image_url` parts; audio as base64 in `input_audio` parts.
Only metadata-free bytes leave the machine: gather stores clean JPEG, WebP, PNG and WAV/FLAC
(sources.jpeg_strip, sources.webp_strip, sources.media_strip), and here a PNG is sent as it
is only when its chunks are all image chunks, a JPEG only when its segments are all image
segments (no APPn but a bare JFIF APP0, no COM, nothing after EOI), a WebP only when it is
a still image of VP8X/ALPH/VP8/VP8L chunks with no metadata flag, a WAV only when it holds
nothing but fmt/fact/data (checks of chunk and segment headers, cheap for the clean files
gather writes). Any other JPEG or WebP loses its metadata as gather's would (sent as it is
when that keeps its pixels); any other image (GIF, an animated WebP, a PNG with text or EXIF
chunks, a rotated or non-sRGB JPEG) is re-encoded to a clean PNG and any other audio (FLAC,
MP3, a WAV with LIST/id3 chunks) to 16-bit PCM WAV.
A reference "media/ab/<sha256>" resolves under `media_root` (the lake root); a
`media_root` that already IS the media folder works too.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path

from sources.jpeg_strip import clean_jpeg_bytes, jpeg_is_clean
from sources.media_strip import clean_image_bytes, clean_wav_bytes, png_is_clean, wav_is_clean
from sources.webp_strip import clean_webp_bytes, webp_is_clean
from teacher.templates import PromptError

_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),  # checked with WEBP at offset 8 below
)


def media_path(ref: str, media_root: Path) -> Path:
    """Where the bytes of reference `ref` live."""
    direct = Path(media_root) / ref
    if direct.exists() or not ref.startswith("media/"):
        return direct
    return Path(media_root) / ref.removeprefix("media/")


def _read(ref: str, media_root: Path) -> bytes:
    path = media_path(ref, media_root)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PromptError("media_missing", f"media {ref} not readable: {type(exc).__name__}") from None


def image_mime(data: bytes) -> str:
    """The MIME type of an image by its magic bytes."""
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic) and (mime != "image/webp" or data[8:12] == b"WEBP"):
            return mime
    raise PromptError("teacher_unsupported_media", "image is not PNG, JPEG, GIF or WebP")


def image_payload(data: bytes) -> tuple[str, bytes]:
    """(MIME type, bytes) to send for an image: a clean PNG, JPEG or WebP as it is; another
    JPEG or WebP without its metadata when that keeps its pixels; anything else as clean PNG."""
    if png_is_clean(data):
        return "image/png", data
    if jpeg_is_clean(data):
        return "image/jpeg", data
    if webp_is_clean(data):
        return "image/webp", data
    mime = image_mime(data)  # refuses what is not an image a chat model takes
    rewrite = {"image/jpeg": clean_jpeg_bytes, "image/webp": clean_webp_bytes}.get(mime)
    stripped = rewrite(data) if rewrite else None
    if stripped is not None:
        return mime, stripped
    try:
        return "image/png", clean_image_bytes(data)
    except Exception as exc:  # any decoder failure means this item cannot be sent
        raise PromptError("media_unreadable", f"image not decodable: {type(exc).__name__}") from None


def audio_payload(data: bytes) -> tuple[str, bytes]:
    """(format, bytes) acceptable to input_audio: a clean WAV as it is, anything else as clean WAV."""
    if wav_is_clean(data):
        return "wav", data
    try:
        return "wav", clean_wav_bytes(data)
    except Exception as exc:  # any decoder failure means this item cannot be sent
        raise PromptError("media_unreadable", f"audio not decodable: {type(exc).__name__}") from None


def to_wire(messages: list[dict], media_root: Path) -> list[dict]:
    """A copy of `messages` with every media reference replaced by its bytes."""
    wire = copy.deepcopy(messages)
    for message in wire:
        if not isinstance(message.get("content"), list):
            continue
        for part in message["content"]:
            if part.get("type") == "image_url" and not part["image_url"]["url"].startswith("data:"):
                mime, data = image_payload(_read(part["image_url"]["url"], media_root))
                part["image_url"]["url"] = f"data:{mime};base64,{base64.b64encode(data).decode()}"
            elif part.get("type") == "input_audio" and part["input_audio"].get("format") == "auto":
                fmt, data = audio_payload(_read(part["input_audio"]["data"], media_root))
                part["input_audio"] = {"data": base64.b64encode(data).decode(), "format": fmt}
    return wire
