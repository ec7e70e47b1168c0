"""The `jsonl` kind: one text record per line, read in batches of `batch_rows` lines.

The contract (uri, meta, quarantine reasons, oversized rows, a text field no row has) is
sources/tabular.py's, which this module shares: lines are read with a length cap
(`line_batches`: a line over `max_row_bytes` is skipped in 1 MiB reads, never held whole);
each batch is parsed by pyarrow with an explicit schema, and a batch it refuses falls back to
json.loads per line, only for that batch, to pin the bad line.
"""

from __future__ import annotations

import io
import json
from typing import Iterator

import polars as pl
import pyarrow as pa
import pyarrow.json as pajson

from sources.config import JsonlSource
from sources.item import SourceItem
from sources.record import RowSink
from sources.tabular import _emit_batch, _precheck, _reject_oversized, missing_text_field


def _slow_jsonl(
    sink: RowSink, source: JsonlSource, uri: str, lines: list[bytes], first_row: int
) -> tuple[int, int, bool]:
    """json.loads line by line (only for batches the strict pyarrow parse refused).

    Returns (records seen, JSON objects among them, whether any object has the text key).
    """
    records: list[dict] = []
    rows: list[int] = []
    r = first_row
    objects, keyed = 0, False
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            sink.quarantine(uri=f"{uri}#row{r}", reason="bad_encoding", error=f"invalid UTF-8: {exc}")
        except json.JSONDecodeError as exc:
            sink.quarantine(uri=f"{uri}#row{r}", reason="bad_json", error=str(exc))
        else:
            if not isinstance(obj, dict):
                sink.quarantine(
                    uri=f"{uri}#row{r}", reason="bad_row", error=f"JSON {type(obj).__name__}, not an object"
                )
            else:
                objects += 1
                keyed = keyed or source.text_field in obj
                value = obj.get(source.text_field)
                if isinstance(value, (dict, list, bool)):
                    sink.quarantine(
                        uri=f"{uri}#row{r}",
                        reason="bad_field_type",
                        error=f"{source.text_field!r} is a JSON {type(value).__name__}",
                    )
                else:
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        value = str(value)
                    keep = {source.text_field: value if isinstance(value, str) else None}
                    for f in (source.id_field, source.license_field):
                        if f:
                            v = obj.get(f)
                            keep[f] = None if v is None else (v if isinstance(v, str) else json.dumps(v))
                    records.append(keep)
                    rows.append(r)
        r += 1
    if records:
        df = pl.DataFrame(records, schema={k: pl.String for k in records[0]})
        _emit_rows(sink, source, "jsonl", uri, df, rows)
    return r - first_row, objects, keyed


def _may_hold_key(block: bytes, field: str) -> bool:
    """False only when no object of `block` can have the key `field` (its JSON string is absent)."""
    return any(json.dumps(field, ensure_ascii=a).encode() in block for a in (True, False))


def _first_object_keys(path: str) -> list[str]:
    """The keys of the file's first JSON object (for the missing-field message)."""
    with open(path, "rb") as fh:
        for line in fh:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return list(obj)
    return []


def _emit_rows(sink, source, fmt, uri, df, rows):
    # Rows are not contiguous after bad lines: emit each contiguous run as its own batch.
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i] != rows[i - 1] + 1:
            _emit_batch(sink, source, fmt, uri, df.slice(start, i - start), rows[start])
            start = i


def _is_utf8(block: bytes) -> bool:
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _fast_jsonl(block: bytes, source: JsonlSource, id_type: pa.DataType) -> pl.DataFrame:
    """Strict pyarrow parse of a batch: only when every text value is a string or null.

    pyarrow refuses a number/object/list where the schema says string (Polars would coerce
    it), so any such row sends the batch to the per-line path, which decides per row.
    """
    fields = [(source.text_field, pa.string())]
    if source.id_field:
        fields.append((source.id_field, id_type))
    if source.license_field and source.license_field not in (source.text_field, source.id_field):
        fields.append((source.license_field, pa.string()))
    table = pajson.read_json(
        io.BytesIO(block),
        read_options=pajson.ReadOptions(use_threads=False, block_size=len(block) + 1),
        parse_options=pajson.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore"),
    )
    return pl.from_arrow(table)


_SKIP_READ = 1 << 20  # bytes per read while skipping the rest of an over-long line


def line_batches(fh, batch_rows: int, max_row_bytes: int) -> Iterator[list[bytes] | int]:
    """The lines of a binary file in batches of at most `batch_rows`; a line longer than
    `max_row_bytes` (newline excluded) comes alone, as its size in bytes, between batches.

    Each read is capped at max_row_bytes + 1 bytes, so no line longer than the cap is ever
    held whole; its rest is read and dropped in 1 MiB pieces. A long line of only
    whitespace is a blank line (not a record) and is dropped silently, like short ones.
    """
    readline, cap = fh.readline, max_row_bytes + 1
    batch: list[bytes] = []
    while line := readline(cap):
        if len(line) < cap or line[-1] == 10:  # 10: b"\n"; a line within the cap
            batch.append(line)
            if len(batch) >= batch_rows:
                yield batch
                batch = []
            continue
        size, blank, piece = len(line), line.isspace(), line
        while piece[-1] != 10 and (piece := readline(_SKIP_READ)):
            size += len(piece)
            blank = blank and piece.isspace()
        if batch:
            yield batch
            batch = []
        if not blank:
            yield size - (1 if piece and piece[-1] == 10 else 0)
    if batch:
        yield batch


class _Window:
    """`readline` over the bytes of an open file from where it stands up to `stop` (a span's end)."""

    def __init__(self, fh, stop: int) -> None:
        self._fh, self._left = fh, stop - fh.tell()

    def readline(self, size: int) -> bytes:
        if self._left <= 0:
            return b""
        line = self._fh.readline(min(size, self._left))
        self._left -= len(line)
        return line


def _file_has_key(path: str, source: JsonlSource) -> bool:
    """Whether any JSON object of the whole file has the text key (asked by a span none of whose
    objects has it: only a file that lacks it everywhere is a config mistake)."""
    with open(path, "rb") as fh:
        for lines in line_batches(fh, source.batch_rows, source.max_row_bytes):
            if isinstance(lines, int) or not _may_hold_key(b"".join(lines), source.text_field):
                continue
            for line in lines:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict) and source.text_field in obj:
                    return True
    return False


def read_jsonl(sink: RowSink, source: JsonlSource, item: SourceItem) -> None:
    """Read the file, or its span's lines (item.span: byte range and first record number)."""
    if not _precheck(sink, item, {None}):
        return
    start, stop, row = item.span or (0, None, 0)
    objects, keyed = 0, False  # JSON objects read; whether any has the text key
    id_type = pa.string()  # switched to int64 for files whose ids are numbers
    with open(item.path, "rb") as fh:
        fh.seek(start)
        lines_of = fh if stop is None else _Window(fh, stop)
        for lines in line_batches(lines_of, source.batch_rows, source.max_row_bytes):
            if isinstance(lines, int):  # one line over the cap: rejected, never parsed
                _reject_oversized(sink, source, "jsonl", f"{item.uri}#row{row}", lines)
                row += 1
                continue
            n_records = sum(1 for line in lines if not line.isspace())
            block = b"".join(lines)
            df = None
            # pyarrow's JSON reader does not validate UTF-8 inside strings; an invalid byte would
            # surface later as a panic in Polars. Such a batch goes to the per-line path, which
            # quarantines the bad rows as bad_encoding.
            valid_utf8 = _is_utf8(block)
            for _ in range(2 if valid_utf8 else 0):
                try:
                    df = _fast_jsonl(block, source, id_type)
                    break
                except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                    if source.id_field and f"Column(/{source.id_field})" in str(exc) and id_type == pa.string():
                        id_type = pa.int64()
                        continue
                    break
            if df is not None and df.height == n_records:
                objects += n_records
                # An all-null text column cannot tell an absent key from a null value; the
                # raw bytes can rule the key out (the check runs until a batch has the key).
                keyed = keyed or (
                    df.get_column(source.text_field).null_count() < df.height or _may_hold_key(block, source.text_field)
                )
                _emit_batch(sink, source, "jsonl", item.uri, df, row)
                row += n_records
            else:
                seen, n_objects, has_key = _slow_jsonl(sink, source, item.uri, lines, row)
                row += seen
                objects += n_objects
                keyed = keyed or has_key
    if objects and not keyed and (item.span is None or not _file_has_key(item.path, source)):
        raise missing_text_field(source, item.uri, _first_object_keys(item.path))


# -- CSV --------------------------------------------------------------------------------
