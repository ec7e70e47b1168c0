"""Atomic file writes: a reader sees the old file or the whole new one, never a part of it.

Contract of every writer here:
- the bytes go to a temporary name in the target's own folder (same filesystem, so the
  rename is atomic). The name is `.<name>.<pid>.<thread id>.tmp`: unique per process and
  thread without a random-name syscall, hidden, and matched by the `.*.tmp` globs that
  stages use to sweep what a killed run left behind;
- with `durable=True` (the default) the file is fsynced before the rename and its folder
  after it, so after a power cut the target is the old file or the whole new one, under
  its name. `durable=False` skips both fsyncs, for caches whose entries can be re-fetched
  (the teacher response cache: bench/teacher.py measures that path);
- os.replace moves the temporary file over the target (an existing target is replaced);
- on any failure (exception, KeyboardInterrupt) the temporary file is removed and the
  exception propagates: the target is untouched.

Use `write_bytes` for a buffer, `write_with` for a library that writes to a path
(pyarrow), `open_write` for one that writes to a file object (torch.save, json.dump), and
`TempFile` for outputs named after their own content (shards, codebooks), whose final name
is known only once the bytes are written.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


def temp_name(folder: Path | str, stem: str) -> str:
    """The temporary name for `stem` in `folder` (unique per process and thread)."""
    return f"{folder}/.{stem}.{os.getpid()}.{threading.get_ident()}.tmp"


def fsync_dir(folder: Path | str) -> None:
    """Make the names in `folder` durable (a rename is a change of the folder)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_path(path: Path | str) -> None:
    """Flush a written file's bytes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path | str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def replace(tmp: Path | str, target: Path | str, *, durable: bool = True) -> None:
    """Move a finished temporary file over `target` (fsync file, rename, fsync folder if durable).

    The temporary file must be in `target`'s folder or at least on its filesystem. On failure
    the temporary file is removed.
    """
    try:
        if durable:
            fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if durable:
        fsync_dir(os.path.dirname(os.fspath(target)) or ".")


def write_bytes(path: Path | str, data: bytes | memoryview, *, durable: bool = True, make_dirs: bool = True) -> Path:
    """Write `data` to `path` atomically; return `path` as a Path.

    No file objects and no random names: this is on the teacher cache's request path. With
    `make_dirs=False` a missing folder raises FileNotFoundError (callers that know their
    folder exists skip the mkdir syscall).
    """
    if not isinstance(path, Path):
        path = Path(path)
    folder = path.parent
    if make_dirs:
        folder.mkdir(parents=True, exist_ok=True)
    tmp = f"{folder}/.{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"  # temp_name, inlined: hot path
    fd = os.open(tmp, _FLAGS, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if durable:
        fsync_dir(folder)
    return path


def write_with(path: Path | str, write: Callable[[str], object], *, durable: bool = True) -> Path:
    """Atomically create `path` by calling `write(temp_path)` (e.g. `pq.write_table(t, tmp)`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path.parent, path.name)
    try:
        write(tmp)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    replace(tmp, path, durable=durable)
    return path


@contextmanager
def open_write(path: Path | str, mode: str = "wb", *, durable: bool = True) -> Iterator[IO]:
    """A file object whose contents appear at `path` atomically when the block ends without error."""
    if "w" not in mode:
        raise ValueError(f"open_write needs a write mode, not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path.parent, path.name)
    try:
        with open(tmp, mode) as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


class TempFile:
    """A temporary file in `folder` to fill, then `commit` under a name chosen afterwards.

    For outputs named after their own bytes (shards, codebooks). Used as a context manager,
    a TempFile that was not committed is removed when the block ends.
    """

    def __init__(self, folder: Path | str, stem: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = temp_name(self.folder, stem)
        self.committed = False

    def commit(self, name: str, *, durable: bool = True) -> Path:
        """Move the file to `folder/name` (the contract of `replace`); return that path."""
        target = self.folder / name
        replace(self.path, target, durable=durable)
        self.committed = True
        return target

    def discard(self) -> None:
        """Remove the temporary file if it is still there."""
        if not self.committed:
            _unlink_quietly(self.path)

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()
