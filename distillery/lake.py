"""The lake: one root folder, atomic Parquet writes, content-derived names, and a writer lock.

Layout (relative to the root):

    catalog.duckdb                      DuckDB views over everything below
    gather/<source>-<cfg>/<batch>/      documents-, rejects-, quarantine-, files-, ledger-<part>.parquet
    curate/<cfg>/<batch>/               curated-, rejects-, duplicates-, quarantine-, dedup_keys-, dedup_sketches-, ledger-<part>.parquet
    distill/<cfg>/<batch>/              traces-, rejects-, quarantine-, ledger-<part>.parquet
    shard/<build>/                      shard-<hash>.parquet, codebooks, manifest.json (written last)
    runs/<run>-<stage>.parquet          one row per stage per run: counts and times
    media/<ab>/<sha256>                 content-addressed media bytes
    cache/                              teacher responses, cloned repositories, samples

A `<cfg>` folder is a generation: the hash of the stage's config, so changing the config
starts a new generation and the views follow the current one. A `<batch>` folder appears
by one rename when all its partitions are written, so readers never see half a batch.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from distillery import atomic
from distillery import tables as T
from distillery.stage_names import STAGES, StageName  # noqa: F401  (the lake's layout names its stages)

# Each partitioned stage's output tables and their schemas (None: free-form side table, written as is).
STAGE_TABLES: dict[str, dict[str, pa.Schema | None]] = {
    "gather": {"documents": T.DOCUMENT, "rejects": T.REJECT, "quarantine": T.QUARANTINE, "files": T.GATHERED_FILE},
    "curate": {
        "curated": T.DOCUMENT,
        "rejects": T.REJECT,
        "duplicates": T.DUPLICATE,
        "quarantine": T.QUARANTINE,
        "dedup_keys": None,  # what dedup's candidate generation reads (filters/dedup_lake.py)
        "dedup_sketches": None,  # what its verification reads, for candidate rows only
    },
    "distill": {"traces": T.TRACE, "rejects": T.REJECT, "quarantine": T.QUARANTINE},
    "shard": {"samples": T.SHARD_ROW, "rejects": T.REJECT, "quarantine": T.QUARANTINE},
}

# The table whose row count is a stage's "kept"; distill counts kept prompts, not traces.
KEPT_TABLE = {"gather": "documents", "curate": "curated", "distill": None, "shard": "samples"}

# Parquet settings every writer shares, so that the same rows give the same bytes.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 64 * 1024,
}


def stable_hash(*parts: Any, length: int = 16) -> str:
    """Hex digest of the canonical JSON of `parts`: the same inputs always give the same name."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


# Tables read a few rows at a time get smaller row groups: dedup reads the sketches of
# candidate rows only, one row group each (256 rows of ~3 KB: 0.75 MB, not 64 k rows' 190 MB;
# docs/scale.md weighs the read amplification against per-group overhead).
ROW_GROUP_ROWS = {"dedup_sketches": 256}


def write_parquet_atomic(table: pa.Table, path: Path, row_group_size: int | None = None) -> Path:
    """Write `table` to `path` durably via distillery.atomic: the file is whole or absent."""
    options = PARQUET_OPTIONS | ({"row_group_size": row_group_size} if row_group_size else {})
    try:
        return atomic.write_with(path, lambda tmp: pq.write_table(table, tmp, **options))
    except BaseException as exc:
        _raise_if_unwritable(exc, path)
        raise


def write_bytes_atomic(data: bytes, path: Path) -> Path:
    """Write `data` to `path` durably via distillery.atomic."""
    try:
        return atomic.write_bytes(path, data)
    except BaseException as exc:
        _raise_if_unwritable(exc, path)
        raise


# errno values that mean "the lake's storage refuses writes", not "this data is bad".
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def storage_error_message(exc: BaseException, path: Path | str | None = None) -> str | None:
    """The one-line explanation of a full or read-only disk, or None for any other error."""
    if not isinstance(exc, OSError) or exc.errno not in _STORAGE_ERRNOS:
        return None
    where = path or exc.filename or "a file"
    return (
        f"cannot write {where}: {os.strerror(exc.errno)} (errno {exc.errno}). The stage stopped; nothing "
        "half-written is visible. Free space (or make the lake writable) and re-run the same command."
    )


def _raise_if_unwritable(exc: BaseException, path: Path) -> None:
    """Turn a full or read-only disk into a LakeError that says so and what to do."""
    message = storage_error_message(exc, path)
    if message is not None:
        raise LakeError(message) from exc


# Per thread: the lake roots whose writer lock this thread holds, with the nesting depth.
# Per thread, not per process: a second thread of the same process (two runs started by one
# test, a server handling two requests) must wait for the lock like another process would,
# not walk into the first one's commits.
_HELD = threading.local()


def _held() -> dict[str, int]:
    if not hasattr(_HELD, "depth"):
        _HELD.depth = {}
    return _HELD.depth


class LakeError(RuntimeError):
    """The lake cannot be used as asked (unwritable, locked too long, full disk)."""


class Lake:
    """Paths and guarantees of one lake root. Cheap to create; holds no open handles."""

    STAGES = tuple(STAGE_TABLES)  # the stages that write partitioned batches

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def media_root(self) -> Path:
        return self.root / "media"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def cache_dir(self, name: str) -> Path:
        path = self.root / "cache" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def ensure_writable(self) -> None:
        """Fail at once, with the path, when the lake cannot be written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise LakeError(f"the lake at {self.root} is not writable: {exc.strerror or exc}") from None

    @contextmanager
    def writer_lock(self, timeout_s: float = 3600.0) -> Iterator[None]:
        """Hold the lake's writer lock; a second run waits for it and says so.

        Two runs on one lake never interleave their commits: the second waits (printing who
        holds the lock) and then finds the first one's work done, so it skips it. The lock is
        re-entrant within a thread (the pipeline holds it while its stage flows, which run
        on the pipeline's thread, take it); another thread of the same process waits for it.
        """
        key, held = str(self.root), _held()
        if held.get(key):
            held[key] += 1
            try:
                yield
            finally:
                held[key] -= 1
            return
        self.ensure_writable()
        lock_path = self.root / ".lock"
        fh = open(lock_path, "a+")
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                # written, not printed: a flow's log_prints would turn a print into an INFO record,
                # which the console filter keeps off the terminal (flows/run_logs.py)
                sys.stderr.write(f"lake {self.root} is locked by {holder}; waiting for it to finish...\n")
                sys.stderr.flush()
                deadline = time.monotonic() + timeout_s
                while True:
                    try:
                        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise LakeError(
                                f"lake {self.root} still locked by {holder} after {timeout_s:.0f} s"
                            ) from None
                        time.sleep(0.2)
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}")
            fh.flush()
            held[key] = 1
            yield
        finally:
            held.pop(key, None)
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
