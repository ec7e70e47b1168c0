"""Deterministic, streaming expansion of `paths` globs into files.

Order: files come sorted by their path components (codepoint order), the order of a
depth-first walk that sorts each directory's entries. The walk holds only the entry
lists of the directories on the current path, never the whole listing, so a glob over
millions of files costs memory proportional to the widest directory, not the corpus
(the price of a sorted order is that one directory's names are held and sorted).
Several patterns are merged with heapq.merge (each is already sorted), duplicates dropped.

Pattern syntax: `*`, `?`, `[...]` within one path segment (fnmatch), `**` = any number
of segments. Hidden files are matched like any other. Directory symlinks are not
descended (no cycles, no escaping the tree).

Each match comes as a `Found(path, reason, detail)`. `reason` is None for a file to read
(a regular file, a link to one inside the tree, or a dangling link the reader quarantines)
and otherwise says why the item must be quarantined WITHOUT being opened; `discover`
carries it to the reader in the item's fingerprint:
  symlink_escape        a file symlink whose target leaves the glob's literal root folder
  bad_filename          the path is not valid UTF-8 (it cannot be stored in Parquet as is;
                        `safe_path` gives its backslash-escaped form)
  path_too_long         the path reaches PATH_MAX: the OS refuses to open or list it
  not_regular_file      a FIFO, socket or device (opening a FIFO blocks forever)
  unreadable_directory  a folder the walk could not list (permissions, I/O error); the
                        folder itself is the item, since its files cannot be counted
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import heapq
import os
import re
import stat
from functools import lru_cache
from pathlib import Path
from typing import Iterator, NamedTuple

SYMLINK_ESCAPE = "symlink_escape"
_SKIP = "skip"  # a symlink to a folder: neither descended nor an item
try:  # bytes in a path, terminating NUL included (Linux: 4096)
    _PATH_MAX = os.pathconf("/", "PC_PATH_MAX")
except (OSError, ValueError):  # pragma: no cover - every POSIX system answers
    _PATH_MAX = 4096


class Found(NamedTuple):
    """One glob match: `reason` None = read it; else the quarantine reason (see module doc)."""

    path: str
    reason: str | None = None
    detail: str = ""


def valid_utf8(path: str) -> bool:
    """False for a name Python decoded with surrogateescape (bytes that are not UTF-8)."""
    if path.isascii():
        return True
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safe_path(path: str) -> str:
    """`path` itself when it is valid UTF-8; else its bytes with the invalid ones written as
    `\\xNN` (os.fsencode undoes Python's surrogateescape), so it can go into Parquet and JSON."""
    return path if valid_utf8(path) else os.fsencode(path).decode("utf-8", "backslashreplace")


def _too_long(path: str) -> bool:
    return len(path) * 4 >= _PATH_MAX and len(os.fsencode(path)) >= _PATH_MAX


@lru_cache(maxsize=4096)
def _segment_regex(segment: str) -> re.Pattern:
    return re.compile(fnmatch.translate(segment))


def _match(parts: tuple[str, ...], pats: tuple[str, ...]) -> bool:
    """Whole-path match of path segments against pattern segments (with ** support)."""
    if not pats:
        return not parts
    head, rest = pats[0], pats[1:]
    if head == "**":
        return any(_match(parts[i:], rest) for i in range(len(parts) + 1))
    if not parts:
        return False
    return bool(_segment_regex(head).match(parts[0])) and _match(parts[1:], rest)


def _may_contain(parts: tuple[str, ...], pats: tuple[str, ...]) -> bool:
    """Can some path below directory `parts` match `pats`? (prunes the walk)."""
    if not parts:
        return True
    if not pats:
        return False
    head, rest = pats[0], pats[1:]
    if head == "**":
        return True
    return bool(_segment_regex(head).match(parts[0])) and _may_contain(parts[1:], rest)


def _split_root(root: str, pattern_parts: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """Move the pattern's leading literal segments onto `root`; return (root, magic segments).

    Only the pattern is searched for magic characters, so a base_dir whose name contains
    "[" or "*" is still taken literally.
    """
    for i, part in enumerate(pattern_parts):
        if glob.has_magic(part):
            return os.path.join(root, *pattern_parts[:i]), tuple(pattern_parts[i:])
    # No magic at all: the pattern names one file.
    return os.path.join(root, *pattern_parts[:-1]), (pattern_parts[-1],)


def _classify(path: str, top: str, is_link: bool, is_regular: bool = False) -> Found:
    """What a matched non-directory entry is (see the module doc); stats it, never opens it.
    `is_regular`: the listing already says it is a regular file, not a link (no stat needed)."""
    if not valid_utf8(path):
        return Found(path, "bad_filename", f"file name is not valid UTF-8: {safe_path(path)}")
    if _too_long(path):
        return Found(path, "path_too_long", f"path is {len(os.fsencode(path))} bytes, the OS limit is {_PATH_MAX}")
    if is_regular:
        return Found(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:  # a dangling link (or gone since listed): the reader quarantines it
        return Found(path, SYMLINK_ESCAPE if is_link and _escapes(path, top) else None)
    except OSError as exc:  # a symlink loop, a path the OS refuses
        reason = "path_too_long" if exc.errno == errno.ENAMETOOLONG else "unreadable"
        return Found(path, reason, f"cannot stat: {type(exc).__name__}: {exc.strerror}")
    if stat.S_ISDIR(mode):  # a symlink to a folder: never descended, not a file
        return Found(path, _SKIP)
    if is_link and _escapes(path, top):
        return Found(path, SYMLINK_ESCAPE)
    if stat.S_ISREG(mode):
        return Found(path)
    kind = (
        "FIFO"
        if stat.S_ISFIFO(mode)
        else "socket"
        if stat.S_ISSOCK(mode)
        else "character device"
        if stat.S_ISCHR(mode)
        else "block device"
        if stat.S_ISBLK(mode)
        else "special file"
    )
    return Found(path, "not_regular_file", f"a {kind}, not a regular file; not opened")


def _escapes(path: str, top: str) -> bool:
    """Does the symlink at `path` resolve to a file outside the folder `top`?"""
    if not os.path.islink(path):
        return False
    target = os.path.realpath(path)
    return not (target == top or target.startswith(top.rstrip(os.sep) + os.sep))


def _walk(root: str, pats: tuple[str, ...], rel: tuple[str, ...] = (), top: str | None = None) -> Iterator[Found]:
    top = top or os.path.realpath(root)
    try:
        with os.scandir(root) as it:
            entries = sorted(((e.name, e) for e in it), key=lambda t: t[0])
    except (FileNotFoundError, NotADirectoryError):  # gone since it was listed, or no such root
        return
    except OSError as exc:  # the folder's files cannot be counted: the folder is the item
        if not valid_utf8(root):
            yield Found(root, "bad_filename", f"folder name is not valid UTF-8: {safe_path(root)}")
        elif exc.errno == errno.ENAMETOOLONG or _too_long(root):
            yield Found(
                root, "path_too_long", f"folder path is {len(os.fsencode(root))} bytes, the OS limit is {_PATH_MAX}"
            )
        else:
            yield Found(root, "unreadable_directory", f"cannot list the folder: {type(exc).__name__}: {exc.strerror}")
        return
    for name, entry in entries:
        parts = rel + (name,)
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            if _may_contain(parts, pats):
                # A directory's files sort after the directory name itself; with names
                # compared per component this depth-first order is the sorted order.
                yield from _walk(entry.path, pats, parts, top)
        elif _match(parts, pats):
            try:  # from the listing's d_type: no system call for an ordinary file
                is_link = entry.is_symlink()
                is_regular = not is_link and entry.is_file(follow_symlinks=False)
            except OSError:
                is_link = is_regular = False
            found = _classify(entry.path, top, is_link, is_regular)
            if found.reason != _SKIP:
                yield found


def iter_glob(pattern: str, base_dir: Path) -> Iterator[Found]:
    """A Found for each file matching one glob, sorted, streamed. Relative patterns resolve
    against base_dir; symlinks are judged against the pattern's literal root folder."""
    expanded = os.path.normpath(os.path.expanduser(pattern))
    if os.path.isabs(expanded):
        root, rel = os.sep, expanded.lstrip(os.sep)
    else:
        root, rel = os.path.abspath(base_dir), expanded
    parts = tuple(p for p in rel.split(os.sep) if p)
    if not parts:
        return
    if not any(glob.has_magic(p) for p in parts):
        path = os.path.join(root, *parts)
        if os.path.lexists(path) and not os.path.isdir(path):
            found = _classify(path, os.path.realpath(os.path.dirname(path)), os.path.islink(path))
            if found.reason != _SKIP:
                yield found
        return
    if ".." in parts:  # keep ".." literal: move it into the root before walking
        lead = []
        for p in parts:
            if glob.has_magic(p):
                break
            lead.append(p)
        root, parts = os.path.normpath(os.path.join(root, *lead)), parts[len(lead) :]
    root, pats = _split_root(root, parts)
    yield from _walk(root, pats)


def _sort_key(path: str) -> tuple[str, ...]:
    return tuple(path.split(os.sep))


def iter_globs(patterns: list[str], base_dir: Path) -> Iterator[Found]:
    """A Found for every file matching any pattern, sorted by path components, each once."""
    streams = [iter_glob(p, base_dir) for p in patterns]
    last = None
    for found in heapq.merge(*streams, key=lambda t: _sort_key(t.path)):
        if found.path != last:
            yield found
            last = found.path


def fingerprint(path: str) -> str:
    """size:mtime_ns of a file (lstat for a dangling link, so discovery never fails)."""
    try:
        st = os.stat(path)
    except OSError:
        try:
            st = os.lstat(path)
        except OSError:  # vanished since it was listed: the reader will quarantine it
            return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def missing_inputs(sources: list, base_dir: Path) -> list[str]:
    """One phrase per configured input that names nothing: a glob of a file source that
    matches no file, a local repository folder that does not exist. Empty when all is there.

    Checked before a run starts: such a source would gather 0 rows (or quarantine one
    clone_failed row) and the run would end as if it had worked. Each glob stops at its
    first match, so the check costs one directory walk at most. URLs and Hugging Face
    sources are not checked (only reading them can tell)."""
    from sources.config import GLOBBED_KINDS
    from sources.repo_fetch import _local_path, is_url

    missing = []
    for i, src in enumerate(sources):
        if src.kind in GLOBBED_KINDS:
            for pattern in src.paths:
                if next(iter_glob(pattern, base_dir), None) is None:
                    missing.append(
                        f"source {src.name!r}: no file matches {pattern!r} under {base_dir} (sources[{i}].paths)"
                    )
        elif src.kind == "repo" and not is_url(src.url_or_path):
            local = _local_path(src, base_dir)
            if not local.exists():
                missing.append(
                    f"source {src.name!r}: repository folder {local} does not exist (sources[{i}].url_or_path)"
                )
    return missing
