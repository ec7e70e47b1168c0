"""The `jsonl`, `csv` and `parquet` kinds: one text record per row, read in batches.

Memory is bounded by one batch (`batch_rows` rows of at most `max_row_bytes` each) per
file, never the whole file. A row larger than `max_row_bytes` is rejected as `oversized`
(value: its size in bytes) before it is parsed: a JSONL line is read with a length cap
and the rest of an over-long line is skipped in 1 MiB reads, never held whole; a CSV or
Parquet text value over the cap (measured in the parsed batch) is rejected the same way.
(A CSV record longer than the parser's block, max_row_bytes + 1 MiB, still stops the
file: pyarrow needs whole records in a block; the unread rest is one quarantine row.)
uri = `<path>#row<N>`, N the 0-based index of the record in the file (blank JSONL lines
are not records). meta = {"format", "row", "source_id" (when id_field is set)}.

Per-row problems are quarantined per row: malformed JSON (bad_json), a line that is not
a JSON object (bad_row), invalid UTF-8 (bad_encoding), a missing/null text field
(missing_field), a text field that is an object/list/boolean (bad_field_type). A number
in the text field is taken as its decimal text (the same in the fast and per-line paths). A malformed CSV
row is quarantined as bad_row. A file-level failure (not Parquet, truncated, a CSV that
stops decoding midway) quarantines the unread remainder as ONE row, since its rows
cannot be counted.

A text field that NO row of a file has (a JSONL file whose objects all lack the key, a
CSV header or Parquet schema without the column) is a config mistake, not bad data: it
raises MissingTextField (a ConfigError, which stops the run with one line) instead of
quarantining every row. A field missing from only some rows stays a per-row quarantine.

Hot path: parsing is Polars/pyarrow batch calls; the id hash is one hashlib call per row
in a list comprehension (hashlib has no vectorized form; bench/gather.py measures it
against a plain read of the same files). JSONL batches are parsed by pyarrow with an
explicit schema (strict types, other fields ignored); a batch it refuses falls back to
json.loads per line, only for that batch, to pin the bad line.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import os
from typing import Iterator

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from distillery.config import ConfigError
from sources.config import CsvSource, HfSource, JsonlSource, ParquetSource
from sources.item import SourceItem
from sources.record import DOCUMENT_COLUMNS, RowSink
from sources.sniff import sniff
from sources.text_decode import detect_legacy

_TEXT_PREFIX = b"text\0"


class MissingTextField(ConfigError):
    """A source's `text_field` is absent from every row of one of its files (or datasets)."""


def missing_text_field(
    source: JsonlSource | CsvSource | ParquetSource | HfSource, uri: str, fields: list[str]
) -> MissingTextField:
    """The one-line error naming the field, the file, and the fields that do exist."""
    have = ", ".join(map(repr, fields[:20])) + (", ..." if len(fields) > 20 else "") if fields else "none"
    return MissingTextField(
        f"source {source.name!r}: no row of {uri} has the text_field {source.text_field!r} (fields there: {have}); "
        f"set `text_field` of source {source.name!r} to the field that holds the text"
    )


def _ids(texts: list[str]) -> list[str]:
    sha = hashlib.sha256
    return [sha(_TEXT_PREFIX + t.encode("utf-8")).hexdigest()[:32] for t in texts]


def documents_frame(
    source: str,
    fmt: str,
    uri: str,
    texts: pl.Series,
    rows: pl.Series,
    sids: pl.Series | None,
    lics: pl.Series | None,
    default_license: str | None,
) -> pl.DataFrame:
    """DOCUMENT rows for a batch of non-null texts with their row numbers."""
    meta_cols = [pl.lit(fmt).alias("format"), rows.alias("row")]
    if sids is not None:
        meta_cols.append(sids.cast(pl.String).alias("source_id"))
    frame = pl.DataFrame({"text": texts.cast(pl.String), "row": rows.cast(pl.Int64)})
    license_col = pl.lit(default_license, dtype=pl.String)
    if lics is not None:
        frame = frame.with_columns(lics.cast(pl.String, strict=False).alias("_lic"))
        license_col = pl.coalesce(pl.col("_lic"), license_col)
    return frame.select(
        pl.Series("id", _ids(texts.to_list()), dtype=pl.String),
        pl.lit("text").alias("modality"),
        pl.lit(source).alias("source"),
        pl.format("{}#row{}", pl.lit(uri), pl.col("row")).alias("uri"),
        license_col.alias("license"),
        pl.col("text"),
        pl.lit(None, dtype=pl.String).alias("media"),
        pl.struct(meta_cols).struct.json_encode().alias("meta"),
        pl.lit([], dtype=pl.List(pl.String)).alias("parents"),
    ).cast(DOCUMENT_COLUMNS)


def _emit_batch(sink: RowSink, source, fmt: str, uri: str, df: pl.DataFrame, first_row: int) -> None:
    """Split a parsed batch (columns named like the config fields) into documents and quarantine."""
    n = df.height
    rows = pl.Series("row", range(first_row, first_row + n), dtype=pl.Int64)
    text = (
        df.get_column(source.text_field) if source.text_field in df.columns else pl.Series([None] * n, dtype=pl.String)
    )
    # Every caller hands a String (or all-null) text column: see the fast-path checks.
    present = ~text.is_null()
    for r in rows.filter(~present).to_list():
        sink.quarantine(uri=f"{uri}#row{r}", reason="missing_field", error=f"no {source.text_field!r} value")
    size = text.str.len_bytes()
    big = present & (size > source.max_row_bytes)
    if big.any():  # a CSV/Parquet value over the cap (JSONL lines are capped before parsing)
        for r, b in zip(rows.filter(big).to_list(), size.filter(big).to_list()):
            _reject_oversized(sink, source, fmt, f"{uri}#row{r}", b)
        present = present & ~big
    if present.any():

        def col(name):
            return df.get_column(name).filter(present) if name and name in df.columns else None

        sids = col(source.id_field)
        if source.id_field and sids is None:
            sids = pl.Series([None] * int(present.sum()), dtype=pl.String)
        sink.document_frame(
            documents_frame(
                sink.source,
                fmt,
                uri,
                text.filter(present),
                rows.filter(present),
                sids,
                col(source.license_field),
                source.license,
            )
        )


def _reject_oversized(sink: RowSink, source, fmt: str, uri: str, size: int) -> None:
    sink.reject(
        modality="text",
        uri=uri,
        rule="oversized",
        value=size,
        license=source.license,
        meta={"format": fmt, "bytes": size, "max_row_bytes": source.max_row_bytes},
    )


def _head(path: str, n: int = 64) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _precheck(sink: RowSink, item: SourceItem, allowed: set[str | None]) -> bool:
    """zero_byte / wrong_extension / unreadable checks shared by the three formats."""
    try:
        if os.path.getsize(item.path) == 0:
            sink.quarantine(uri=item.uri, reason="zero_byte", error="file is empty")
            return False
        kind = sniff(_head(item.path))
    except OSError as exc:
        sink.quarantine(uri=item.uri, reason="unreadable", error=f"{type(exc).__name__}: {exc}")
        return False
    if kind not in allowed:
        sink.quarantine(uri=item.uri, reason="wrong_extension", error=f"content is {kind}")
        return False
    return True


# -- JSONL ------------------------------------------------------------------------------
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


def read_jsonl(sink: RowSink, source: JsonlSource, item: SourceItem) -> None:
    if not _precheck(sink, item, {None}):
        return
    row = 0
    objects, keyed = 0, False  # JSON objects read; whether any has the text key
    id_type = pa.string()  # switched to int64 for files whose ids are numbers
    with open(item.path, "rb") as fh:
        for lines in line_batches(fh, source.batch_rows, source.max_row_bytes):
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
    if objects and not keyed:
        raise missing_text_field(source, item.uri, _first_object_keys(item.path))


# -- CSV --------------------------------------------------------------------------------
def _csv_encoding(path: str) -> str:
    with open(path, "rb") as fh:
        sample = fh.read(1 << 20)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return detect_legacy(sample) or "utf-8"


def _csv_header(path: str, encoding: str, delimiter: str) -> list[str]:
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(encoding=encoding, use_threads=False),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
    )
    return reader.schema.names


def read_csv(sink: RowSink, source: CsvSource, item: SourceItem) -> None:
    if not _precheck(sink, item, {None}):
        return
    bad_rows: list[tuple[int | None, str]] = []

    def on_invalid(row) -> str:
        bad_rows.append((row.number, f"expected {row.expected_columns} columns, got {row.actual_columns}"))
        return "skip"

    wanted = [f for f in (source.text_field, source.id_field, source.license_field) if f]
    encoding = _csv_encoding(item.path)
    row = 0
    try:
        reader = pacsv.open_csv(
            item.path,
            # Single-threaded: the invalid-row callback then fires in file order (determinism).
            # A block holds whole records: room for one of max_row_bytes (rejected later as oversized).
            read_options=pacsv.ReadOptions(
                encoding=encoding, block_size=max(4 << 20, source.max_row_bytes + (1 << 20)), use_threads=False
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=source.delimiter, newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={f: pa.string() for f in wanted},
                include_columns=wanted,
                include_missing_columns=True,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            df = pl.from_arrow(batch)
            # CSV has no null: an empty text cell is still a (empty) document, and an all-null
            # text column is one the header lacks (include_missing_columns).
            if row == 0 and df.height and df.get_column(source.text_field).null_count() == df.height:
                raise missing_text_field(source, item.uri, _csv_header(item.path, encoding, source.delimiter))
            _emit_batch(sink, source, "csv", item.uri, df, row)
            row += df.height
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as exc:
        reason = "bad_encoding" if "utf" in str(exc).lower() or isinstance(exc, UnicodeDecodeError) else "unreadable"
        sink.quarantine(
            uri=f"{item.uri}#row{row}-", reason=reason, error=f"file stops parsing after {row} rows ({encoding}): {exc}"
        )
    for k, (number, message) in enumerate(bad_rows):
        # pyarrow knows the line number unless quoted newlines are on the way; then the
        # uri names the k-th malformed row instead.
        where = f"line{number}" if number is not None else f"badrow{k}"
        sink.quarantine(uri=f"{item.uri}#{where}", reason="bad_row", error=message)


# -- Parquet ----------------------------------------------------------------------------
def read_parquet(sink: RowSink, source: ParquetSource, item: SourceItem) -> None:
    if not _precheck(sink, item, {"parquet", None}):
        return
    try:
        pf = pq.ParquetFile(item.path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for a damaged footer
        reason = "truncated" if "magic" in str(exc).lower() or "footer" in str(exc).lower() else "unreadable"
        sink.quarantine(uri=item.uri, reason=reason, error=f"{type(exc).__name__}: {exc}")
        return
    names = pf.schema_arrow.names
    if source.text_field not in names and pf.metadata.num_rows:
        raise missing_text_field(source, item.uri, names)
    if source.text_field not in names:  # no rows: nothing to read, the file is noted as it is
        sink.quarantine(uri=item.uri, reason="missing_field", error=f"no column {source.text_field!r} in {names[:20]}")
        return
    ttype = pf.schema_arrow.field(source.text_field).type
    if not (pa.types.is_string(ttype) or pa.types.is_large_string(ttype) or pa.types.is_string_view(ttype)):
        sink.quarantine(uri=item.uri, reason="bad_field_type", error=f"{source.text_field!r} is {ttype}")
        return
    columns = [f for f in dict.fromkeys((source.text_field, source.id_field, source.license_field)) if f and f in names]
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=source.batch_rows, columns=columns):
            df = pl.from_arrow(batch)
            _emit_batch(sink, source, "parquet", item.uri, df, row)
            row += df.height
    except Exception as exc:  # a damaged row group: the rest of the file is one quarantined row
        sink.quarantine(uri=f"{item.uri}#row{row}-", reason="unreadable", error=f"{type(exc).__name__}: {exc}")
