"""Row ranges of large row-oriented files, so a gather partition holds at most `max_rows` rows.

A JSONL, CSV, Parquet or WARC file with more records than `run.partition_rows` is cut into
spans, each read by its own gather partition: memory per task is bounded by the partition's
rows, not the file's size (bench/row_memory.py measures it). A span is (start, stop, first_row):

    jsonl    byte offsets [start, stop), both at line boundaries, and the record number of
             its first record (records are lines with a non-whitespace byte, as in
             jsonl.line_batches: blank lines are not records), so uris (`path#row<N>`) are the
             ones a whole-file read gives
    parquet  row numbers [start, stop); first_row == start
    csv      byte offsets of whole records and the data rows before them (sources/csv_spans.py);
             the reader parses the header line, then those bytes
    warc     byte offsets of whole records (gzip members) and the number of the first record, or
             for a file gzipped as one stream, start -1 and record numbers (sources/warc_spans.py)

The JSONL, CSV and WARC cuts are found by one streaming pass over the file (numpy over its bytes,
`_BLOCK` at a time; FastWARC over record headers), which gather pays once per new large file at
planning time. A file the pass cannot vouch for is read whole, so its reader reports it once.
"""

from __future__ import annotations

import io

import numpy as np

SPLITTABLE = ("jsonl", "csv", "parquet", "warc")
_BLOCK = 8 << 20  # bytes per read of the JSONL scan: its numpy temporaries stay near 10x this
_SPACE = np.zeros(256, dtype=bool)
_SPACE[[9, 10, 11, 12, 13, 32]] = True  # bytes.isspace(): what line_batches calls a blank line

Span = tuple[int, int, int]


def row_spans(source, path: str, size: int, max_rows: int) -> list[Span]:
    """The spans of a file of `size` bytes of `source` (a source config) with at most
    `max_rows` records each; [] when the file is read whole (not splittable, at most
    `max_rows` records, or not of its format)."""
    kind = source.kind
    try:
        if kind == "jsonl" and size > 2 * max_rows:  # a record is >= 2 bytes with its newline
            return jsonl_spans(path, max_rows)
        if kind == "parquet":
            return parquet_spans(path, max_rows)
        if kind == "csv":
            from sources.csv_spans import csv_spans
            from sources.tabular import csv_block_bytes

            return csv_spans(path, size, max_rows, source.delimiter, csv_block_bytes(source))
        if kind == "warc":
            from sources.warc_spans import warc_spans

            return warc_spans(path, size, max_rows)
    except (OSError, ValueError):  # unreadable, gone, a dangling link: read whole, so the reader quarantines it once
        pass
    return []


def jsonl_spans(path: str, max_rows: int) -> list[Span]:
    """Byte spans cut after every `max_rows`-th record; [] when there are at most `max_rows`."""
    from sources.sniff import sniff

    with open(path, "rb") as fh:
        if sniff(fh.read(64)) is not None:  # not text: the reader quarantines the whole file once
            return []
        fh.seek(0)
        cuts: list[tuple[int, int]] = []  # (byte offset after a line, records before it)
        records, base, pending = 0, 0, False  # pending: the unterminated line so far has a non-space byte
        while block := fh.read(_BLOCK):
            arr = np.frombuffer(block, dtype=np.uint8)
            solid = ~_SPACE[arr]
            ends = np.flatnonzero(arr == 10)
            if ends.size:
                starts = np.concatenate(([0], ends[:-1] + 1))
                is_record = np.logical_or.reduceat(solid[: ends[-1] + 1], starts)
                is_record[0] |= pending
                counts = records + np.cumsum(is_record)
                at = is_record & (counts % max_rows == 0)
                cuts.extend(zip((base + ends[at] + 1).tolist(), counts[at].tolist()))
                records = int(counts[-1])
                pending = bool(solid[ends[-1] + 1 :].any())
            else:
                pending = pending or bool(solid.any())
            base += len(block)
        records += pending
    if cuts and cuts[-1][1] == records:  # nothing but blank lines after the last cut
        cuts.pop()
    if not cuts:
        return []
    bounds = [(0, 0), *cuts, (base, records)]
    return [(s, e, row) for (s, row), (e, _) in zip(bounds, bounds[1:])]


def parquet_spans(path: str, max_rows: int) -> list[Span]:
    """Row spans of `max_rows` rows; [] for at most `max_rows` rows or a footer that does not read
    (the reader quarantines such a file once)."""
    import pyarrow.parquet as pq

    try:
        n = pq.read_metadata(path).num_rows
    except Exception:  # noqa: BLE001 - any damage: read whole, so the reader reports it
        return []
    if n <= max_rows:
        return []
    return [(s, min(s + max_rows, n), s) for s in range(0, n, max_rows)]


class ByteRange(io.RawIOBase):
    """A read-only, seekable stream of `prefix` followed by bytes [start, stop) of the file at
    `path` (stop None: to its end): what a CSV or WARC span's parser reads instead of the
    file. Positions count from the prefix's first byte."""

    def __init__(self, path: str, start: int, stop: int | None, prefix: bytes = b"") -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed with the stream
        end = self._fh.seek(0, io.SEEK_END) if stop is None else stop
        self._prefix, self._start, self._pos = prefix, start, 0
        self._size = len(prefix) + max(0, end - start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")[: max(0, self._size - self._pos)]
        if self._pos < len(self._prefix):
            n = min(len(view), len(self._prefix) - self._pos)
            view[:n] = self._prefix[self._pos : self._pos + n]
        else:
            self._fh.seek(self._start + self._pos - len(self._prefix))
            n = self._fh.readinto(view) or 0
        self._pos += n
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()
