"""Row ranges of large row-oriented files, so a gather partition holds at most `max_rows` rows.

A JSONL or Parquet file with more records than `run.partition_rows` is cut into spans, each
read by its own gather partition: memory per task is bounded by the partition's rows, not
the file's size (bench/row_memory.py measures it). A span is (start, stop, first_row):

    jsonl    byte offsets [start, stop), both at line boundaries, and the record number of
             its first record (records are lines with a non-whitespace byte, as in
             jsonl.line_batches: blank lines are not records), so uris (`path#row<N>`) are the
             ones a whole-file read gives
    parquet  row numbers [start, stop); first_row == start

The JSONL cuts are found by one streaming pass over the file's bytes (numpy, `_BLOCK` bytes at
a time), which gather pays once per new large file at planning time. CSV (quoted newlines make
byte cuts need a parse) and WARC (records are the unit, gzip members are not seekable by row)
are read whole, as before.
"""

from __future__ import annotations

import numpy as np

SPLITTABLE = ("jsonl", "parquet")
_BLOCK = 8 << 20  # bytes per read of the JSONL scan: its numpy temporaries stay near 10x this
_SPACE = np.zeros(256, dtype=bool)
_SPACE[[9, 10, 11, 12, 13, 32]] = True  # bytes.isspace(): what line_batches calls a blank line

Span = tuple[int, int, int]


def row_spans(kind: str, path: str, size: int, max_rows: int) -> list[Span]:
    """The spans of a file of `size` bytes with at most `max_rows` records each; [] when the
    file is read whole (not splittable, at most `max_rows` records, or not of its format)."""
    try:
        if kind == "jsonl" and size > 2 * max_rows:  # a record is >= 2 bytes with its newline
            return jsonl_spans(path, max_rows)
        if kind == "parquet":
            return parquet_spans(path, max_rows)
    except OSError:  # unreadable, gone, a dangling link: read whole, so the reader quarantines it once
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
