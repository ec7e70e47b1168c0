"""The lake's content-addressed media store (CAS).

Media bytes are ALWAYS stored here, never inlined in Parquet: a file with sha256 `sha`
lives at `<lake>/media/<sha[:2]>/<sha>` and DOCUMENT.media holds the reference relative
to the lake root, `media/<sha[:2]>/<sha>`. Writes go through distillery.atomic (temporary
name in the same folder, rename, temp removed on failure), so a reader never sees a
half-written object and two writers of the same bytes race harmlessly. An existing object
is never rewritten (same name = same bytes). Files a reader builds before knowing their hash (a
video's audio track) are written under `media_root/.tmp` and moved in by `adopt_file`.

What readers store here is never a source file as it came: only the metadata-free
re-encodings of media_strip (the bytes that later reach a teacher or a shard).
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path

from distillery import atomic
from distillery import media_ref as media_refs

# No fsync per object (as before distillery.atomic): it costs ~3 ms an object on this
# machine's disk (put_bytes of 300 KB: 1.1 -> 4.3 ms; bench/gather_media.py audio 308 -> 120
# files/s). Making media durable belongs with the batch commit (one sync per partition).
_DURABLE = False
# A write that fails with one of these is the lake's problem (the stage must fail and re-run),
# never the item's (same set as sources.read_items uses).
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}


def is_disk_full(exc: BaseException) -> bool:
    """True for an OSError that says the lake cannot take more bytes (PyAV's errors included)."""
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL


def media_ref(sha: str) -> str:
    """The DOCUMENT.media value for bytes with this sha256 hex (distillery/media_ref.py's form)."""
    return media_refs.make(sha)


def object_path(media_root: Path, sha: str) -> Path:
    return Path(media_root) / sha[:2] / sha


def temp_file(media_root: Path, suffix: str) -> Path:
    """An empty temporary file under `media_root/.tmp` for a reader to fill, then `adopt_file`."""
    tmp_dir = Path(media_root) / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(suffix=suffix, dir=tmp_dir)
    os.close(fd)
    return Path(name)


def put_bytes(media_root: Path, data: bytes) -> str:
    """Store `data` (distillery.atomic); return its media ref."""
    sha = hashlib.sha256(data).hexdigest()
    target = object_path(media_root, sha)
    if not target.exists():
        atomic.write_bytes(target, data, durable=_DURABLE)
    return media_ref(sha)


def adopt_file(media_root: Path, tmp_file: Path, sha: str | None = None) -> str:
    """Move a finished temporary file (e.g. extracted audio) into the store; hashed here
    unless its sha256 hex is given; the temporary file is removed if the move fails."""
    if sha is None:
        h = hashlib.sha256()
        with open(tmp_file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        sha = h.hexdigest()
    digest = sha
    target = object_path(media_root, digest)
    if target.exists():
        os.unlink(tmp_file)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic.replace(tmp_file, target, durable=_DURABLE)
    return media_ref(digest)
