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
import os

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from distillery.config import ConfigError
from sources.config import CsvSource, HfSource, JsonlSource, ParquetSource
from sources.csv_spans import csv_header_end
from sources.item import SourceItem
from sources.record import DOCUMENT_COLUMNS, RowSink
from sources.sniff import sniff
from sources.spans import ByteRange
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


def csv_block_bytes(source: CsvSource) -> int:
    """The CSV parser's block: it holds whole records, so room for one of max_row_bytes
    (rejected later as oversized); a longer record stops the file."""
    return max(4 << 20, source.max_row_bytes + (1 << 20))


def read_csv(sink: RowSink, source: CsvSource, item: SourceItem) -> None:
    """Read the file, or its span's rows (item.span: byte range of whole records after the
    header, and the data rows before it; the header line is parsed first, as in the file)."""
    if not _precheck(sink, item, {None}):
        return
    bad_rows: list[tuple[int | None, str]] = []

    def on_invalid(row) -> str:
        bad_rows.append((row.number, f"expected {row.expected_columns} columns, got {row.actual_columns}"))
        return "skip"

    wanted = [f for f in (source.text_field, source.id_field, source.license_field) if f]
    encoding = _csv_encoding(item.path)
    row = first = item.span[2] if item.span else 0
    stream = None
    try:
        if item.span:
            header = _head(item.path, csv_header_end(item.path, source.delimiter))
            stream = io.BufferedReader(ByteRange(item.path, item.span[0], item.span[1], prefix=header))
        reader = pacsv.open_csv(
            stream or item.path,
            # Single-threaded: the invalid-row callback then fires in file order (determinism).
            # A block holds whole records: room for one of max_row_bytes (rejected later as oversized).
            read_options=pacsv.ReadOptions(encoding=encoding, block_size=csv_block_bytes(source), use_threads=False),
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
            if row == first and df.height and df.get_column(source.text_field).null_count() == df.height:
                raise missing_text_field(source, item.uri, _csv_header(item.path, encoding, source.delimiter))
            _emit_batch(sink, source, "csv", item.uri, df, row)
            row += df.height
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as exc:
        reason = "bad_encoding" if "utf" in str(exc).lower() or isinstance(exc, UnicodeDecodeError) else "unreadable"
        sink.quarantine(
            uri=f"{item.uri}#row{row}-", reason=reason, error=f"file stops parsing after {row} rows ({encoding}): {exc}"
        )
    finally:
        if stream is not None:
            stream.close()
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
        if not (item.span and item.span[0]):  # a split file is reported once, by its first span
            sink.quarantine(uri=item.uri, reason="bad_field_type", error=f"{source.text_field!r} is {ttype}")
        return
    columns = [f for f in dict.fromkeys((source.text_field, source.id_field, source.license_field)) if f and f in names]
    start, stop, _ = item.span or (0, pf.metadata.num_rows, 0)
    # The row groups holding [start, stop) (sources/spans.py), and the first row of the first.
    bounds = [0]
    for g in range(pf.metadata.num_row_groups):
        bounds.append(bounds[-1] + pf.metadata.row_group(g).num_rows)
    groups = [g for g in range(len(bounds) - 1) if bounds[g] < stop and bounds[g + 1] > start]
    at = bounds[groups[0]] if groups else 0  # file row of the next batch's first row
    row = start
    try:
        for batch in pf.iter_batches(
            batch_size=source.batch_rows, columns=columns, row_groups=groups if item.span else None
        ):
            lo, hi = max(start - at, 0), min(stop - at, batch.num_rows)
            at += batch.num_rows
            if hi <= lo:
                continue
            df = pl.from_arrow(batch.slice(lo, hi - lo))
            _emit_batch(sink, source, "parquet", item.uri, df, row)
            row += df.height
    except Exception as exc:  # a damaged row group: the rest of the file is one quarantined row
        sink.quarantine(uri=f"{item.uri}#row{row}-", reason="unreadable", error=f"{type(exc).__name__}: {exc}")
