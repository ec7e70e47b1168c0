"""Deterministic, streaming expansion of `paths` globs into files.

Order: files come sorted by their path components (codepoint order), the order of a
depth-first walk that sorts each directory's entries. The walk holds only the entry
lists of the directories on the current path, never the whole listing, so a glob over
millions of files costs memory proportional to the widest directory, not the corpus
(the price of a sorted order is that one directory's names are held and sorted).
Several patterns are merged with heapq.merge (each is already sorted), duplicates dropped.

Pattern syntax: `*`, `?`, `[...]` within one path segment (fnmatch), `**` = any number
of segments. Hidden files are matched like any other. Directory symlinks are not
descended (no cycles, no escaping the tree); file symlinks are yielded and the reader
decides.
"""

from __future__ import annotations

import fnmatch
import glob
import heapq
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterator


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


def _split_root(pattern: str) -> tuple[str, tuple[str, ...]]:
    """Split an absolute pattern into its literal root folder and the magic segments below."""
    parts = Path(pattern).parts
    root: list[str] = []
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return os.path.join(*root) if root else os.sep, tuple(parts[i:])
        root.append(part)
    # No magic at all: the pattern names one file.
    return os.path.join(*root[:-1]) if len(root) > 1 else os.sep, (parts[-1],)


def _walk(root: str, pats: tuple[str, ...], rel: tuple[str, ...] = ()) -> Iterator[str]:
    try:
        with os.scandir(root) as it:
            entries = sorted(((e.name, e) for e in it), key=lambda t: t[0])
    except (FileNotFoundError, NotADirectoryError, PermissionError):
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
                yield from _walk(entry.path, pats, parts)
        elif _match(parts, pats):
            yield entry.path


def iter_glob(pattern: str, base_dir: Path) -> Iterator[str]:
    """Files matching one glob, sorted, streamed. Relative patterns resolve against base_dir."""
    expanded = os.path.expanduser(pattern)
    if not os.path.isabs(expanded):
        expanded = os.path.join(os.path.abspath(base_dir), expanded)
    expanded = os.path.normpath(expanded)
    if not glob.has_magic(expanded):
        if os.path.lexists(expanded) and not os.path.isdir(expanded):
            yield expanded
        return
    root, pats = _split_root(expanded)
    yield from _walk(root, pats)


def _sort_key(path: str) -> tuple[str, ...]:
    return tuple(path.split(os.sep))


def iter_globs(patterns: list[str], base_dir: Path) -> Iterator[str]:
    """All files matching any pattern, sorted by path components, each once."""
    streams = [iter_glob(p, base_dir) for p in patterns]
    last = None
    for path in heapq.merge(*streams, key=_sort_key):
        if path != last:
            yield path
            last = path


def fingerprint(path: str) -> str:
    """size:mtime_ns of a file (lstat for a dangling link, so discovery never fails)."""
    try:
        st = os.stat(path)
    except OSError:
        st = os.lstat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"
