"""Reading media bytes from the lake's content-addressed store ("media/ab/<sha256>").

What a reference is, is distillery/media_ref.py's contract."""

from __future__ import annotations

from pathlib import Path

from distillery import media_ref


class MediaError(Exception):
    """A media item that cannot be used; `reason` is the quarantine reason code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def read_media(lake_root: Path, ref: object) -> bytes:
    """Return the bytes behind `ref`, or raise MediaError (bad_media_ref, media_missing)."""
    try:
        path = media_ref.resolve(lake_root, ref)
    except media_ref.BadMediaRef as exc:
        raise MediaError(exc.reason, str(exc)) from None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MediaError("media_missing", f"media file {ref} is not in the lake at {lake_root}") from None
    except OSError as exc:
        raise MediaError("media_unreadable", f"media file {ref} cannot be read: {exc}") from None
