"""Checks shared by the media readers: empty files, symlinks, extension vs content."""

from __future__ import annotations

import os

from sources.record import RowSink
from sources.sniff import KIND_BY_EXTENSION, sniff


def open_checks(sink: RowSink, uri: str, path: str, expected: set[str]) -> bool:
    """Quarantine (and return False) an unreadable, empty or mislabelled media file.

    `expected` is the set of sniffed kinds acceptable for this modality; a sniff of None
    (unknown magic) is left to the decoder to judge.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        reason = "broken_symlink" if os.path.islink(path) and not os.path.exists(path) else "unreadable"
        sink.quarantine(uri=uri, reason=reason, error=f"{type(exc).__name__}: {exc}")
        return False
    if size == 0:
        sink.quarantine(uri=uri, reason="zero_byte", error="file is empty")
        return False
    kind = sniff(head)
    ext = os.path.splitext(path)[1].lower()
    wanted = KIND_BY_EXTENSION.get(ext)
    # MP3 files often start with a raw frame sync instead of an ID3 tag: no magic to compare.
    if kind is not None and (kind not in expected or (wanted is not None and kind != wanted)):
        sink.quarantine(uri=uri, reason="wrong_extension", error=f"extension {ext!r} but content is {kind}")
        return False
    return True
