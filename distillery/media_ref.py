"""Media references: the one form in which rows point at bytes in the lake's media store.

A reference is `media/<sha[:2]>/<sha>`, where `sha` is the 64 lower-case hex digits of the
sha256 of the bytes, relative to the lake root: the file is `<lake>/media/<sha[:2]>/<sha>`
(sources/media_store.py writes it). DOCUMENT.media, a video's meta.frames / meta.audio and
the media parts of stored teacher messages all hold this form. Anything else (another
prefix, a folder that is not the sha's first two digits, upper case, a suffix, `..`) is not
a reference: `parse` raises BadMediaRef, whose `reason` is the quarantine code BAD_REF
("bad_media_ref") that every stage uses for it.

Pure string and path work, no I/O and no heavy imports: config, filters, shards and the
teacher all import it.
"""

from __future__ import annotations

import re
from pathlib import Path

PREFIX = "media"
BAD_REF = "bad_media_ref"  # the one quarantine code for a malformed reference, in every stage

_REF = re.compile(r"media/([0-9a-f]{2})/([0-9a-f]{64})\Z")


class BadMediaRef(ValueError):
    """A value that is not `media/<sha256[:2]>/<sha256>`; `reason` is the quarantine code."""

    reason = BAD_REF

    @classmethod
    def of(cls, value: object) -> BadMediaRef:
        """The error for `value` (one message for every stage)."""
        return cls(f"media reference {value!r} is not of the form media/<sha256[:2]>/<sha256>")


def make(sha: str) -> str:
    """The reference for bytes with this sha256 hex."""
    return f"{PREFIX}/{sha[:2]}/{sha}"


def is_ref(value: object) -> bool:
    """True when `value` is a well-formed reference (the file may still be missing)."""
    if not isinstance(value, str):
        return False
    m = _REF.match(value)
    return m is not None and m[2].startswith(m[1])


def parse(value: object) -> str:
    """The sha256 hex that reference `value` names; raises BadMediaRef for anything else."""
    if not is_ref(value):
        raise BadMediaRef.of(value)
    return value.rsplit("/", 1)[1]  # type: ignore[union-attr]  # is_ref proved it is a str


def resolve(lake_root: Path | str, value: object) -> Path:
    """The file that reference `value` names under `lake_root`; raises BadMediaRef."""
    parse(value)
    return Path(lake_root) / value  # type: ignore[operator]


def path_or_none(lake_root: Path | str, value: object) -> Path | None:
    """Like `resolve`, but None for a value that is not a reference."""
    return Path(lake_root) / value if is_ref(value) else None  # type: ignore[operator]
