"""Deterministic, streaming expansion of `paths` globs into files.

Order: files come sorted by their path components (codepoint order), the order of a
depth-first walk that sorts each directory's entries. The walk holds only the entry
lists of the directories on the current path, never the whole listing, so a glob over
millions of files costs memory proportional to the widest directory, not the corpus
(the price of a sorted order is that one directory's names are held and sorted).
Several patterns are merged with heapq.merge (each is already sorted), duplicates dropped.

Pattern syntax: `*`, `?`, `[...]` within one path segment (fnmatch), `**` = any number
of segments. Hidden files are matched like any other. Directory symlinks are not
descended (no cycles, no escaping the tree). A file symlink is yielded with a flag saying
whether its target leaves the glob's literal root folder; `discover` turns such an item
into one the reader quarantines as symlink_escape, never reading the target.
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


def _readable_kind(entry: os.DirEntry) -> bool:
    """Regular files (directly or through a symlink) and dangling symlinks (the reader
    quarantines them); never FIFOs, sockets or devices, whose reads could block forever."""
    try:
        if entry.is_file():
            return True
        return entry.is_symlink() and not os.path.exists(entry.path)
    except OSError:
        return False


def _escapes(path: str, top: str) -> bool:
    """Does the symlink at `path` resolve to a file outside the folder `top`?"""
    if not os.path.islink(path):
        return False
    target = os.path.realpath(path)
    return not (target == top or target.startswith(top.rstrip(os.sep) + os.sep))


def _walk(root: str, pats: tuple[str, ...], rel: tuple[str, ...] = (), top: str | None = None) -> Iterator[tuple[str, bool]]:
    top = top or os.path.realpath(root)
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
                yield from _walk(entry.path, pats, parts, top)
        elif _match(parts, pats) and _readable_kind(entry):
            yield entry.path, _escapes(entry.path, top)


def iter_glob(pattern: str, base_dir: Path) -> Iterator[tuple[str, bool]]:
    """(file, escapes) for each file matching one glob, sorted, streamed. Relative patterns
    resolve against base_dir; `escapes` is True for a symlink whose target leaves the
    pattern's literal root folder."""
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
        if os.path.isfile(path) or (os.path.islink(path) and not os.path.exists(path)):
            yield path, _escapes(path, os.path.realpath(os.path.dirname(path)))
        return
    if ".." in parts:  # keep ".." literal: move it into the root before walking
        lead = []
        for p in parts:
            if glob.has_magic(p):
                break
            lead.append(p)
        root, parts = os.path.normpath(os.path.join(root, *lead)), parts[len(lead):]
    root, pats = _split_root(root, parts)
    yield from _walk(root, pats)


def _sort_key(path: str) -> tuple[str, ...]:
    return tuple(path.split(os.sep))


def iter_globs(patterns: list[str], base_dir: Path) -> Iterator[tuple[str, bool]]:
    """(file, escapes) for all files matching any pattern, sorted by path components, each once."""
    streams = [iter_glob(p, base_dir) for p in patterns]
    last = None
    for path, escapes in heapq.merge(*streams, key=lambda t: _sort_key(t[0])):
        if path != last:
            yield path, escapes
            last = path


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
                    missing.append(f"source {src.name!r}: no file matches {pattern!r} under {base_dir} "
                                   f"(sources[{i}].paths)")
        elif src.kind == "repo" and not is_url(src.url_or_path):
            local = _local_path(src, base_dir)
            if not local.exists():
                missing.append(f"source {src.name!r}: repository folder {local} does not exist "
                               f"(sources[{i}].url_or_path)")
    return missing
