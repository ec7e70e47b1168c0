"""Reading media bytes from the lake's content-addressed store ("media/ab/<sha256>")."""

from __future__ import annotations

import re
from pathlib import Path

REF = re.compile(r"^media/[0-9a-f]{2}/[0-9a-f]{16,128}(\.[A-Za-z0-9]{1,8})?$")


class MediaError(Exception):
    """A media item that cannot be used; `reason` is the quarantine reason code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def read_media(lake_root: Path, ref: object) -> bytes:
    """Return the bytes behind `ref`, or raise MediaError (bad_media_ref, media_missing)."""
    if not isinstance(ref, str) or not REF.match(ref):
        raise MediaError("bad_media_ref", f"media reference {ref!r} is not of the form media/ab/<sha256>")
    path = Path(lake_root) / ref
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MediaError("media_missing", f"media file {ref} is not in the lake at {lake_root}") from None
    except OSError as exc:
        raise MediaError("media_unreadable", f"media file {ref} cannot be read: {exc}") from None
