"""Gather stage sources: discover the items of a configured source, read a partition of them.

    discover(source, base_dir)            -> Iterator[SourceItem]   (sorted, streamed)
    read_items(source, items, media_root) -> PartitionResult

read_items tables:
    documents   DOCUMENT rows (text, code, image, audio, video)
    rejects     REJECT rows, stage "gather" (code files skipped: vendored, generated, ...)
    quarantine  QUARANTINE rows, stage "gather", stable reason codes (see README-style list
                in each reader's docstring: zero_byte, bad_encoding, decompression_bomb,
                truncated, unreadable, symlink_escape, broken_symlink, wrong_extension, ...;
                and from discovery, never opened: bad_filename, path_too_long,
                not_regular_file, unreadable_directory)
    files       GATHERED_FILE ledger: one row per item read; `rows` = input rows the item
                accounted for (documents + rejects + quarantine), so sum(rows) == rows_in.
rows_in == len(documents) + len(rejects) + len(quarantine), always (checked on exit).

Media (images, audio, video and its sampled frames/audio track) is ALWAYS stored in the
content-addressed store `media_root/<sha[:2]>/<sha>` and referenced as `media/<sha[:2]>/<sha>`
(relative to the lake root; media_root is `<lake>/media`), never inlined: see media_store.
Output is deterministic: no clocks, no randomness, items and rows in input order.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from sources.config import GLOBBED_KINDS, AnySource
from sources.discovery import SYMLINK_ESCAPE, fingerprint, iter_globs, safe_path
from sources.item import ESCAPED, FLAGGED, SourceItem, flagged, parse_flagged

if TYPE_CHECKING:
    from distillery.result import PartitionResult

__all__ = ["SourceItem", "discover", "read_items", "content_id"]


def __getattr__(name: str):
    # sources.record (Polars, PyArrow) loads when a stage gathers, not when a config is read:
    # distillery.config imports sources.config, which runs this file first.
    if name == "content_id":
        from sources.record import content_id

        return content_id
    raise AttributeError(name)


def discover(source: AnySource, base_dir: Path) -> Iterator[SourceItem]:
    """Stream the items of a source in sorted order.

    Globbed kinds yield one item per file (uri = path, fingerprint = size:mtime_ns); the
    walk holds one directory listing per level, not the whole corpus (see discovery).
    A file discovery judged unreadable as it stands (see discovery.Found) gets a FLAGGED
    fingerprint, and a path that is not UTF-8 travels in its escaped form (safe_path).
    `repo` yields one item (uri = url_or_path@ref, fingerprint = commit sha or tree hash),
    `hf` one item per dataset split.
    """
    if source.kind in GLOBBED_KINDS:
        for path, reason, detail in iter_globs(source.paths, Path(base_dir)):
            if reason is None:
                fp = fingerprint(path)
            elif reason == SYMLINK_ESCAPE:
                fp = ESCAPED + safe_path(os.path.realpath(path))
            else:
                fp = flagged(reason, fingerprint(path), detail)
                path = safe_path(path)  # never opened: only its name travels on
            yield SourceItem(source=source.name, uri=path, path=path, fingerprint=fp)
    elif source.kind == "repo":
        from sources.repo_fetch import discover_repo

        yield from discover_repo(source, Path(base_dir))
    elif source.kind == "hf":
        from sources.hf_dataset import discover_hf

        yield from discover_hf(source, Path(base_dir))
    else:  # pragma: no cover - the config union makes this unreachable
        raise ValueError(f"unknown source kind {source.kind!r}")


def _reader(kind: str) -> Callable:
    # Imported lazily so that e.g. a text-only pipeline never imports PyAV.
    if kind == "files":
        from sources.text_files import read_text_file as fn
    elif kind == "jsonl":
        from sources.jsonl import read_jsonl as fn
    elif kind == "csv":
        from sources.tabular import read_csv as fn
    elif kind == "parquet":
        from sources.tabular import read_parquet as fn
    elif kind == "warc":
        from sources.warc import read_warc as fn
    elif kind == "hf":
        from sources.hf_dataset import read_hf as fn
    elif kind == "repo":
        from sources.repo_read import read_repo as fn
    elif kind == "images":
        from sources.image import read_image as fn
    elif kind == "audio":
        from sources.audio import read_audio as fn
    elif kind == "video":
        from sources.video import read_video as fn
    else:  # pragma: no cover
        raise ValueError(f"unknown source kind {kind!r}")
    return fn


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}


def read_items(source: AnySource, items: list[SourceItem], media_root: Path) -> PartitionResult:
    """Read a partition of items into documents / rejects / quarantine (+ the files ledger).

    Items are read one at a time, in the order given; a reader turns every failure of an
    item into quarantine rows, so one bad item never stops the partition. An unexpected
    exception inside a reader rolls back that item's rows and quarantines the whole item
    with reason "reader_error". A ConfigError (e.g. a text field that no row of a file has)
    and a full disk are not the item's fault: they propagate and stop the stage.
    """
    from sources.record import RowSink

    sink = RowSink(source.name)
    read = _reader(source.kind)
    media_root = Path(media_root)
    for item in items:
        mark = sink.checkpoint()
        if item.fingerprint.startswith(ESCAPED):  # never open what a link outside the source points at
            sink.quarantine(
                uri=item.uri,
                reason="symlink_escape",
                error=f"symbolic link to {item.fingerprint[len(ESCAPED) :]}, outside the source's folder",
            )
            sink.file(item.uri, item.fingerprint, sink.rows_in - mark[0])
            continue
        if item.fingerprint.startswith(FLAGGED):  # not UTF-8, too long, a FIFO: never opened
            reason, error = parse_flagged(item.fingerprint)
            sink.quarantine(uri=item.uri, reason=reason, error=error)
            sink.file(item.uri, item.fingerprint, sink.rows_in - mark[0])
            continue
        try:
            if source.kind in ("images", "audio", "video", "repo"):
                read(sink, source, item, media_root)
            else:
                read(sink, source, item)
        except Exception as exc:  # noqa: BLE001 - last resort: one item never stops the run
            # A full disk is the lake's problem, not the item's: quarantining would mark the
            # item gathered for good. Stop the stage instead (it re-runs cleanly).
            if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
                raise
            # A config mistake found while reading (a text field no row has) stops the run.
            from distillery.config import ConfigError

            if isinstance(exc, ConfigError):
                raise
            # Readers quarantine every failure they know; reaching here means an unforeseen
            # error (a decoder bug, an odd file). The item's partial rows are dropped and the
            # whole item is quarantined under its own code so it stands out from bad data.
            sink.rollback(mark)
            sink.quarantine(uri=item.uri, reason="reader_error", error=f"{type(exc).__name__}: {exc}")
        sink.file(item.uri, item.fingerprint, sink.rows_in - mark[0])
    return sink.result()
