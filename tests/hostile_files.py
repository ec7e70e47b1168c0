"""Hostile file-system entries and text: what a crawl holds besides broken media.

File names that are not UTF-8, FIFOs, sockets, symlinks, paths over PATH_MAX, archives
whose members are absolute or climb out with `..`, a JSONL line too long to hold, and a
JSONL row with raw Latin-1 bytes. Builders write under the folder they are given and
return what was made; nothing needs the network or privileges.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import zipfile
from pathlib import Path

# Where the archives' absolute members would land if anything extracted them.
ESCAPE_MARKER = "/tmp/distillery-hostile-escape-{tag}"

PROSE = (
    "The river delta changes shape every season as sediment settles along the channel banks, "
    "and the people who live there have learned to read the water like a calendar. "
) * 4


def write_named(folder: Path, name: bytes, data: bytes) -> str:
    """Write `data` to a file whose name is the raw bytes `name` (e.g. b"caf\\xe9.txt", not
    UTF-8); return the path as Python lists it (os.fsdecode: surrogateescape)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = os.path.join(os.fsencode(folder), name)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return os.fsdecode(path)


def escaped(path: str) -> str:
    """The lake's uri for a path that is not UTF-8: its bad bytes written as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def make_fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def make_socket(path: Path) -> Path:
    """A Unix socket file (mknod S_IFSOCK needs no privilege and no bound, listening socket)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, 0o600 | stat.S_IFSOCK)
    return path


def make_deep_file(root: Path, min_bytes: int = 5000, data: bytes = b"deep text\n") -> tuple[str, str]:
    """A file at a path of at least `min_bytes` bytes (beyond PATH_MAX, 4096 on Linux), made
    one folder at a time relative to the previous one's descriptor, since no call may name
    the whole path. Returns (the first folder whose absolute path reaches 4096 bytes, the file)."""
    root.mkdir(parents=True, exist_ok=True)
    name = "d" * 200
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    path, first_long = str(root), None
    try:
        while len(os.fsencode(path)) < min_bytes:
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd, path = nfd, os.path.join(path, name)
            if first_long is None and len(os.fsencode(path)) >= 4096:
                first_long = path
        f = os.open("deep.txt", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)
        os.write(f, data)
        os.close(f)
    finally:
        os.close(fd)
    return first_long, os.path.join(path, "deep.txt")


def write_huge_line_jsonl(path: Path, line_bytes: int, before: int = 2, after: int = 2) -> Path:
    """`before` good rows, one JSON row of about `line_bytes` bytes (written in 1 MiB pieces,
    never held whole), then `after` good rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for i in range(before):
            fh.write(json.dumps({"text": f"before {i}: " + PROSE}).encode() + b"\n")
        fh.write(b'{"text": "')
        left = line_bytes - len(b'{"text": ""}')
        block = b"word " * (2**20 // 5)
        while left > 0:
            fh.write(block[:left])
            left -= len(block[:left])
        fh.write(b'"}\n')
        for i in range(after):
            fh.write(json.dumps({"text": f"after {i}: " + PROSE}).encode() + b"\n")
    return path


def write_file(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _archive_members(tag: str) -> list[tuple[str, bytes]]:
    escape = ESCAPE_MARKER.format(tag=tag)
    return [
        (escape, b"written by extracting an absolute member\n"),
        ("../../distillery-hostile-dotdot-" + tag, b"written by extracting a .. member\n"),
        ("fine/readme.txt", b"an ordinary member\n"),
    ]


def tar_bytes(tag: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in _archive_members(tag):
            info = tarfile.TarInfo(name)  # tarfile keeps the leading "/" when told this way
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(tag: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in _archive_members(tag):
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def non_utf8_jsonl() -> bytes:
    """Two JSONL rows: the first UTF-8, the second with raw Latin-1 bytes inside its string."""
    return b'{"text": "ok row ' + PROSE.encode() + b'"}\n{"text": "caf\xe9 cr\xe8me au lait"}\n'


def make_link(path: Path, target: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    return path
