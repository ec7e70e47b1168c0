"""Gather sources: text files, JSONL, CSV, Parquet; discovery order; balance; determinism."""

from __future__ import annotations

import codecs
import io
import json
import os

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import read_in_spans
from PIL import Image
from pydantic import TypeAdapter, ValidationError

from distillery.result import conform
from distillery.tables import DOCUMENT, GATHERED_FILE, QUARANTINE, REJECT
from sources import SourceItem, content_id, discover, read_items
from sources.config import AnySource

SOURCE = TypeAdapter(AnySource)


def run(cfg: dict, base, media_root=None):
    source = SOURCE.validate_python(cfg)
    items = list(discover(source, base))
    result = read_items(source, items, media_root or base / "lake" / "media")
    t = result.tables
    assert result.rows_in == t["documents"].height + t["rejects"].height + t["quarantine"].height
    assert result.rows_in == t["files"]["rows"].sum()
    # Every table conforms to its lake schema (no extra columns, castable types).
    conform(t["documents"], DOCUMENT), conform(t["rejects"], REJECT)
    conform(t["quarantine"], QUARANTINE), conform(t["files"], GATHERED_FILE)
    return items, result


def reasons(result) -> dict[str, int]:
    q = result.tables["quarantine"]
    return dict(q.group_by("reason").len().sort("reason").iter_rows())


def test_config_forbids_unknown_keys_and_discriminates():
    with pytest.raises(ValidationError):
        SOURCE.validate_python({"name": "a", "kind": "files", "paths": ["*.txt"], "typo": 1})
    with pytest.raises(ValidationError):
        SOURCE.validate_python({"name": "a", "kind": "nope", "paths": ["*.txt"]})
    assert SOURCE.validate_python({"name": "v", "kind": "video", "paths": ["*.mp4"]}).frame_rate == 1.0


def test_content_id_definition():
    import hashlib

    assert content_id("text", b"abc") == hashlib.sha256(b"text\0abc").hexdigest()[:32]


def test_discover_sorted_streamed_and_deduplicated(tmp_path):
    for rel in ["b/z.txt", "a/y.txt", "a/sub/x.txt", "a.txt", "c/skip.md", "a/b.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    source = SOURCE.validate_python({"name": "t", "kind": "files", "paths": ["**/*.txt", "a/*.txt"]})
    items = list(discover(source, tmp_path))
    rels = [os.path.relpath(i.path, tmp_path) for i in items]
    assert rels == ["a/b.txt", "a/sub/x.txt", "a/y.txt", "a.txt", "b/z.txt"]
    st = os.stat(items[0].path)
    assert items[0].fingerprint == f"{st.st_size}:{st.st_mtime_ns}"
    assert items[0].source == "t" and items[0].uri == items[0].path


def test_text_files_good_and_bad(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "plain.txt").write_text("hello world\n")
    (d / "readme.md").write_text("# Title\n\nSome *markdown*.\n")
    (d / "page.html").write_text(
        "<html><head><title>T</title><script>var x=1</script></head>"
        "<body><p>Visible &amp; kept</p><style>p{}</style></body></html>"
    )
    (d / "latin1.txt").write_bytes("Café crème brûlée, déjà vu à la façon française.\n".encode("latin-1"))
    (d / "empty.txt").write_bytes(b"")
    (d / "bad_utf16.txt").write_bytes(codecs.BOM_UTF16_LE + b"a\x00b")  # odd length after a UTF-16 BOM
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    (d / "image.txt").write_bytes(buf.getvalue())
    items, result = run({"name": "docs", "kind": "files", "paths": ["docs/*"], "license": "CC-BY-4.0"}, tmp_path)
    docs = result.tables["documents"]
    assert docs.height == 4 and result.rows_in == 7
    assert reasons(result) == {"bad_encoding": 1, "wrong_extension": 1, "zero_byte": 1}
    by_name = {os.path.basename(u): r for u, r in zip(docs["uri"], docs.iter_rows(named=True))}
    html = by_name["page.html"]
    assert html["text"] == "Visible & kept" and json.loads(html["meta"])["title"] == "T"
    assert "Café crème" in by_name["latin1.txt"]["text"]
    assert json.loads(by_name["latin1.txt"]["meta"])["encoding"] != "utf-8"
    assert json.loads(by_name["readme.md"]["meta"])["format"] == "markdown"
    for row in docs.iter_rows(named=True):
        assert row["id"] == content_id("text", row["text"].encode()) and row["license"] == "CC-BY-4.0"
    assert set(docs["modality"]) == {"text"}
    assert result.tables["files"].height == 7


def test_jsonl_rows_and_bad_lines(tmp_path):
    lines = [json.dumps({"text": f"doc {i}", "id": f"x{i}", "lic": "MIT" if i % 2 else None}) for i in range(5)]
    lines.insert(2, "{not json")
    lines.insert(3, "")  # blank: not a record
    lines.append(json.dumps({"other": 1}))
    lines.append(json.dumps([1, 2]))
    lines.append(json.dumps({"text": {"nested": True}}))
    (tmp_path / "a.jsonl").write_bytes(("\n".join(lines) + "\n").encode() + b'{"text": "bad \xff utf8"}\n')
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"text": f"b{i}"}) + "\n" for i in range(7)))
    (tmp_path / "c.jsonl").write_bytes(b"")
    cfg = {
        "name": "j",
        "kind": "jsonl",
        "paths": ["*.jsonl"],
        "id_field": "id",
        "license_field": "lic",
        "license": "CC0-1.0",
        "batch_rows": 3,
    }
    items, result = run(cfg, tmp_path)
    docs = result.tables["documents"]
    assert docs.height == 5 + 7
    assert reasons(result) == {
        "bad_encoding": 1,
        "bad_field_type": 1,
        "bad_json": 1,
        "bad_row": 1,
        "missing_field": 1,
        "zero_byte": 1,
    }
    a = docs.filter(pl.col("uri").str.contains("a.jsonl"))
    assert a["text"].to_list() == [f"doc {i}" for i in range(5)]
    assert a["license"].to_list() == ["CC0-1.0", "MIT", "CC0-1.0", "MIT", "CC0-1.0"]
    metas = [json.loads(m) for m in a["meta"]]
    assert [m["source_id"] for m in metas] == [f"x{i}" for i in range(5)]
    assert [m["row"] for m in metas] == [0, 1, 3, 4, 5]  # row 2 is the bad line
    assert a["uri"][2].endswith("a.jsonl#row3")
    assert dict(result.tables["files"].select("uri", "rows").iter_rows())[items[1].uri] == 7
    # Determinism: same items read twice give identical frames.
    source = SOURCE.validate_python(cfg)
    again = read_items(source, items, tmp_path / "lake" / "media")
    for name in ("documents", "rejects", "quarantine", "files"):
        assert again.tables[name].equals(result.tables[name])


def test_csv_and_parquet(tmp_path):
    (tmp_path / "t.csv").write_text('text,id\n"hello, world",1\n"multi\nline",2\nbad,row,extra\nlast,3\n')
    (tmp_path / "l1.csv").write_bytes("text\nna\u00efve caf\u00e9 r\u00e9sum\u00e9 fa\u00e7ade\n".encode("cp1252"))
    pq.write_table(pa.table({"text": ["p0", None, "p2"], "n": [1, 2, 3]}), tmp_path / "good.parquet")
    data = (tmp_path / "good.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    _, csv_result = run({"name": "c", "kind": "csv", "paths": ["*.csv"], "id_field": "id"}, tmp_path)
    texts = csv_result.tables["documents"]["text"].to_list()
    assert texts == ["naïve café résumé façade", "hello, world", "multi\nline", "last"]
    assert reasons(csv_result) == {"bad_row": 1}
    _, pq_result = run({"name": "p", "kind": "parquet", "paths": ["*.parquet"]}, tmp_path)
    assert pq_result.tables["documents"]["text"].to_list() == ["p0", "p2"]
    assert reasons(pq_result) == {"missing_field": 1, "truncated": 1}  # a file without the column: test_spine_config


def test_read_items_empty_partition(tmp_path):
    source = SOURCE.validate_python({"name": "e", "kind": "files", "paths": ["*.txt"]})
    result = read_items(source, [], tmp_path / "media")
    assert result.rows_in == 0 and result.tables["documents"].height == 0
    assert isinstance(SourceItem("e", "u", "p", "f"), SourceItem)


def test_row_sink_rollback_keeps_balance():
    from sources.record import RowSink

    sink = RowSink("s")
    sink.document(id="a", modality="text", uri="u0", license=None, meta={}, text="x")
    mark = sink.checkpoint()
    sink.document(id="b", modality="text", uri="u1", license=None, meta={}, text="y")
    sink.quarantine(uri="u1#row3", reason="bad_json", error="e")
    sink.rollback(mark)
    sink.quarantine(uri="u1", reason="reader_error", error="boom")
    result = sink.result()
    assert result.rows_in == 2 and result.tables["documents"]["uri"].to_list() == ["u0"]
    assert result.tables["quarantine"]["reason"].to_list() == ["reader_error"]
    assert result.stats == {"documents_text": 1, "quarantined_reader_error": 1}


def test_jsonl_numeric_ids_and_numbers_as_text(tmp_path):
    rows = [{"text": f"t{i}", "id": i} for i in range(4)] + [{"text": 12, "id": 4}]
    (tmp_path / "n.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, result = run({"name": "n", "kind": "jsonl", "paths": ["n.jsonl"], "id_field": "id", "batch_rows": 2}, tmp_path)
    docs = result.tables["documents"]
    assert docs["text"].to_list() == ["t0", "t1", "t2", "t3", "12"]
    assert [json.loads(m)["source_id"] for m in docs["meta"]] == ["0", "1", "2", "3", "4"]


def test_discover_literal_base_dir_fifo_and_single_file(tmp_path):
    base = tmp_path / "odd[1]*name"
    (base / "x").mkdir(parents=True)
    (base / "x" / "a.txt").write_text("a")
    (base / "x" / "b.txt").write_text("b")
    os.mkfifo(base / "x" / "pipe.txt")  # must never be opened: a read would block
    source = SOURCE.validate_python({"name": "t", "kind": "files", "paths": ["x/*.txt"]})
    items = list(discover(source, base))
    assert [os.path.basename(i.path) for i in items] == ["a.txt", "b.txt", "pipe.txt"]
    assert items[2].fingerprint.startswith("quarantine:not_regular_file:")  # listed, flagged, never opened
    single = SOURCE.validate_python({"name": "t", "kind": "files", "paths": ["x/b.txt", "x/missing.txt"]})
    assert [os.path.basename(i.path) for i in discover(single, base)] == ["b.txt"]
    up = SOURCE.validate_python({"name": "t", "kind": "files", "paths": ["../odd[[]1]*/x/a.txt", "./x/../x/*.txt"]})
    assert [os.path.relpath(i.path, base) for i in discover(up, base)] == ["x/a.txt", "x/b.txt", "x/pipe.txt"]


def test_large_jsonl_csv_and_parquet_are_read_in_spans_of_partition_rows(tmp_path):
    """A file with more records than run.partition_rows becomes several gather partitions, one
    span each: each plan's item reads only its span (at most partition_rows records, uris of its
    rows only), and together they give exactly the rows of one whole-file read (read_in_spans).
    A CSV is cut only between records: quoted newlines (LF and CRLF), doubled quotes and blank
    lines do not move a cut; a CSV the cut cannot vouch for is read whole."""
    from sources.spans import row_spans

    lines = []
    for i in range(2600):
        lines.append(json.dumps({"text": f"record {i} " + "word " * (i % 40)}))
        if i % 97 == 0:
            lines.append("   ")  # blank lines are not records: row numbers skip them
        if i % 301 == 0:
            lines.append("{not json")  # a record, quarantined
    (tmp_path / "big.jsonl").write_text("\n".join(lines))  # no newline at the end
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(1234)]}), tmp_path / "big.parquet", row_group_size=300)
    rows = ["id,text,license"]
    for i in range(2600):
        text = f'"line {i}\nof ""quoted"" text,\r\nwith commas"' if i % 3 == 0 else ("" if i % 11 == 0 else f"row {i}")
        rows.append(f"{i},{text},{'MIT' if i % 5 else ''}")
        if i % 499 == 0:
            rows.append("")  # blank lines are not rows
    (tmp_path / "big.csv").write_text("\r\n".join(rows), newline="")  # CRLF, no line end at the end
    (tmp_path / "lf.csv").write_text("\n".join(rows) + "\n", newline="")
    for kind, name, n_in in (
        ("jsonl", "big.jsonl", 2600 + 9),
        ("parquet", "big.parquet", 1234),
        ("csv", "big.csv", 2600),
        ("csv", "lf.csv", 2600),
    ):
        items, _ = read_in_spans(tmp_path, {"name": kind, "kind": kind, "paths": [name]}, "row")
        assert len(items) == -(-n_in // 500)
    # Read whole (no spans): a row with a stray field (its reader names it by its order in the
    # file), a quote inside an unquoted field, a legacy encoding, an unclosed quote.
    source = SOURCE.validate_python({"name": "c", "kind": "csv", "paths": ["*.csv"]})
    for name, body in (
        ("stray.csv", "\n".join([*rows[:900], "1,2,3,4", *rows[900:]])),
        ("inner.csv", "\n".join([*rows[:900], 'x,a "quote",y', *rows[900:]])),
        ("legacy.csv", "\n".join([*rows, "5,café,MIT"])),
        ("open.csv", "\n".join([*rows, '5,"never closed']) + "\n"),
    ):
        path = tmp_path / name
        path.write_bytes(body.encode("cp1252" if name == "legacy.csv" else "utf-8"))
        assert row_spans(source, str(path), path.stat().st_size, 500) == [], name
