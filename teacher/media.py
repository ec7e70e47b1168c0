"""Turn stored-form messages (media by content-addressed reference) into what goes on the wire.

Images travel as data URIs in `image_url` parts; audio as base64 in `input_audio` parts,
whose API accepts only wav and mp3, so other audio is re-encoded to wav with soundfile.
A reference "media/ab/<sha256>" resolves under `media_root` (the lake root); a
`media_root` that already IS the media folder works too.
"""

from __future__ import annotations

import base64
import copy
import io
from pathlib import Path

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


def audio_payload(data: bytes) -> tuple[str, bytes]:
    """(format, bytes) acceptable to input_audio: wav and mp3 as they are, the rest as wav."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav", data
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3", data
    try:
        import soundfile

        samples, rate = soundfile.read(io.BytesIO(data), always_2d=True)
        out = io.BytesIO()
        soundfile.write(out, samples, rate, format="WAV", subtype="PCM_16")
        return "wav", out.getvalue()
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
                data = _read(part["image_url"]["url"], media_root)
                b64 = base64.b64encode(data).decode()
                part["image_url"]["url"] = f"data:{image_mime(data)};base64,{b64}"
            elif part.get("type") == "input_audio" and part["input_audio"].get("format") == "auto":
                fmt, data = audio_payload(_read(part["input_audio"]["data"], media_root))
                part["input_audio"] = {"data": base64.b64encode(data).decode(), "format": fmt}
    return wire
