"""Gather sources: WARC files and Hugging Face datasets (offline paths only)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zlib

import datasets
from conftest import read_in_spans, read_source
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter


def record(wtype: str, block: bytes, url: str = "http://example.com/") -> bytes:
    head = (
        f"WARC/1.0\r\nWARC-Type: {wtype}\r\nWARC-Target-URI: {url}\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
        f"WARC-Record-ID: <urn:sha256:{hashlib.sha256(block).hexdigest()[:16]}>\r\nContent-Length: {len(block)}\r\n\r\n"
    ).encode()
    return head + block + b"\r\n\r\n"


def http(body: bytes, ctype: str, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\n{extra}\r\n".encode() + body


def test_warc_plain_and_gzip(tmp_path):
    html = b"<html><head><title>Hi</title><script>x()</script></head><body><p>Hello web</p></body></html>"
    bomb = zlib.compress(b"a" * 2_000_000)
    records = [
        record("warcinfo", b"software: test\r\n"),
        record("request", b"GET / HTTP/1.1\r\n\r\n"),
        record("response", http(html, "text/html; charset=utf-8"), "http://example.com/a"),
        record("response", http("caf\u00e9 au lait".encode("cp1252"), "text/plain; charset=windows-1252")),
        record("response", http(b"\x89PNG\r\n\x1a\n....", "image/png")),
        record("response", http(gzip.compress(b"<p>zipped page</p>"), "text/html", "Content-Encoding: gzip\r\n")),
        record("response", http(bomb, "text/html", "Content-Encoding: deflate\r\n")),
        record("response", http(b"4\r\nchun\r\n3\r\nked\r\n0\r\n\r\n", "text/plain", "Transfer-Encoding: chunked\r\n")),
    ]
    (tmp_path / "a.warc").write_bytes(b"".join(records))
    (tmp_path / "b.warc.gz").write_bytes(b"".join(gzip.compress(r) for r in records[:4]))
    cut = b"".join(records[:3])
    (tmp_path / "c.warc").write_bytes(cut[:-60])  # last record shorter than its Content-Length
    (tmp_path / "d.warc").write_bytes(b"")
    _, result = read_source(
        {"name": "w", "kind": "warc", "paths": ["*.warc*"], "max_record_bytes": 1_000_000}, tmp_path
    )
    docs = result.tables["documents"]
    a = docs.filter(docs["uri"].str.contains("a.warc#"))
    assert a["text"].to_list() == ["Hello web", "café au lait", "zipped page", "chunked"]
    meta = json.loads(a["meta"][0])
    assert meta["url"] == "http://example.com/a" and meta["title"] == "Hi" and meta["http_status"] == 200
    assert a["uri"][0].endswith("a.warc#record2")
    assert docs.filter(docs["uri"].str.contains("b.warc.gz#"))["text"].to_list() == ["Hello web", "café au lait"]
    assert result.tables["rejects"]["rule"].to_list() == ["non_text_payload"]
    q = dict((u.rsplit("/", 1)[1], r) for u, r in result.tables["quarantine"].select("uri", "reason").iter_rows())
    assert q == {"a.warc#record6": "decompression_bomb", "c.warc#record2-": "truncated", "d.warc": "zero_byte"}
    assert result.stats["warc_other_records"] == 2 + 2 + 2


ARTICLE = [
    "The river authority opened the new flood barrier on Tuesday after four years of construction work.",
    "Engineers say the barrier can hold back a surge two metres higher than the record flood of 1953.",
    "Residents of the lower town, who were evacuated twice last winter, welcomed the news with relief.",
]
NAV = ["Home", "World news", "Business", "Sport", "Subscribe today"]


def boilerplate_page(lang: str = "en") -> str:
    """A news page whose article is a small part of the markup: nav, cookie banner, sidebar, comments, footer."""
    links = "".join(f'<li><a href="/{i}">{label}</a></li>' for i, label in enumerate(NAV))
    related = "".join(
        f'<li><a href="/r{i}">Council votes on parking charges in district {i}</a></li>' for i in range(6)
    )
    comments = "".join(
        f'<div class="comment"><span class="author">reader{i}</span><p>Totally agree with the '
        f"mayor about the bins number {i}.</p></div>"
        for i in range(4)
    )
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><title>Flood barrier opens | Town Post</title>'
        f"<script>var tracker = 1;</script></head><body>"
        f'<div class="cookie-banner"><p>We use cookies to improve your experience. Accept all cookies?</p>'
        f'<button>Accept</button></div><header><a href="/">Town Post</a><nav><ul>{links}</ul></nav></header>'
        f"<main><article><h1>Flood barrier opens</h1>{''.join(f'<p>{p}</p>' for p in ARTICLE)}</article>"
        f'<section class="comments"><h3>Comments</h3>{comments}</section></main>'
        f'<aside class="sidebar"><h3>Most read</h3><ul>{related}</ul></aside>'
        f"<footer><ul>{links}</ul><p>Copyright 2024 Town Post Media Group. All rights reserved.</p></footer>"
        f"</body></html>"
    )


def write_warc(path, records, gzip_records: bool, version: str = "1.0") -> None:
    """records: (warc type, url, content type, payload bytes, http status or None for no HTTP part, extra headers)."""
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=gzip_records, warc_version=version)
    writer.write_record(writer.create_warcinfo_record(path.name, {"software": "tests"}))
    for wtype, url, ctype, payload, status, extra in records:
        http = None
        if status is not None:
            http = StatusAndHeaders(f"{status} X", [("Content-Type", ctype), *extra], protocol="HTTP/1.1")
        warc_headers = None if http else {"Content-Type": ctype}
        rec = writer.create_warc_record(
            url,
            wtype,
            payload=io.BytesIO(payload),
            http_headers=http,
            warc_content_type=ctype if http is None else None,
        )
        for name, value in (warc_headers or {}).items():
            rec.rec_headers.replace_header(name, value)
        writer.write_record(rec)
    path.write_bytes(buf.getvalue())


def test_warc_from_a_standard_writer_gzip_per_record_whole_file_and_warc_1_1(tmp_path):
    records = [
        (
            "response",
            "http://news.test/flood",
            "text/html; charset=utf-8",
            boilerplate_page().encode(),
            200,
            [("Content-Language", "en-GB")],
        ),
        ("response", "http://news.test/missing", "text/plain", b"Not found, sorry.", 404, []),
        ("response", "http://news.test/logo.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(64), 200, []),
        (
            "resource",
            "file:///notes.txt",
            "text/plain",
            "Notes kept as a resource record, caf\u00e9.".encode(),
            None,
            [],
        ),
        ("conversion", "http://news.test/report.pdf", "text/plain", b"Text converted from a PDF report.", None, []),
        (
            "request",
            "http://news.test/flood",
            "application/http; msgtype=request",
            b"GET /flood HTTP/1.1\r\n\r\n",
            None,
            [],
        ),
    ]
    write_warc(tmp_path / "a.warc.gz", records, gzip_records=True)
    write_warc(tmp_path / "b.warc", records, gzip_records=False, version="1.1")
    (tmp_path / "b.warc").rename(tmp_path / "b.warc.tmp")
    (tmp_path / "b.warc.gz").write_bytes(gzip.compress((tmp_path / "b.warc.tmp").read_bytes()))  # one gzip member
    (tmp_path / "b.warc.tmp").unlink()
    _, result = read_source({"name": "w", "kind": "warc", "paths": ["*.warc.gz"]}, tmp_path)
    docs = result.tables["documents"]
    by_file = {f: docs.filter(docs["uri"].str.contains(f"/{f}#")) for f in ("a.warc.gz", "b.warc.gz")}
    assert by_file["a.warc.gz"]["text"].to_list() == by_file["b.warc.gz"]["text"].to_list()
    a = by_file["a.warc.gz"]
    assert [u.rsplit("#", 1)[1] for u in a["uri"]] == ["record1", "record2", "record4", "record5"]
    metas = [json.loads(m) for m in a["meta"]]
    assert [(m["warc_type"], m["http_status"]) for m in metas] == [
        ("response", 200),
        ("response", 404),
        ("resource", None),
        ("conversion", None),
    ]
    page = metas[0]
    assert page["url"] == "http://news.test/flood" and page["title"] == "Flood barrier opens | Town Post"
    assert (page["lang"], page["content_language"], page["charset"], page["charset_source"]) == (
        "en",
        "en-GB",
        "utf-8",
        "header",
    )
    assert (
        a["text"][2] == "Notes kept as a resource record, caf\u00e9."
        and a["text"][3] == "Text converted from a PDF report."
    )
    rejects = result.tables["rejects"]
    assert rejects["rule"].to_list() == ["non_text_payload"] * 2 and rejects["value"].to_list() == [72.0, 72.0]
    assert result.tables["quarantine"].height == 0
    assert result.stats["warc_other_records"] == 2 * 2  # warcinfo + request in each file


def test_warc_truncated_record_is_quarantined_and_the_next_record_still_read(tmp_path):
    page = b"<html><body><p>A complete page that follows the truncated one.</p></body></html>"
    write_warc(
        tmp_path / "t.warc.gz",
        [
            ("response", "http://big.test/video", "text/html", b"<html><body><p>first megabyte only", 200, []),
            ("response", "http://big.test/next", "text/html", page, 200, []),
        ],
        gzip_records=True,
    )
    raw = gzip.decompress((tmp_path / "t.warc.gz").read_bytes())
    marked = raw.replace(
        b"WARC-Target-URI: http://big.test/video\r\n",
        b"WARC-Target-URI: http://big.test/video\r\nWARC-Truncated: length\r\n",
        1,
    )
    (tmp_path / "t.warc").write_bytes(marked)
    (tmp_path / "t.warc.gz").unlink()
    (tmp_path / "cut.warc").write_bytes(raw[: len(raw) - 40])  # the file ends inside the last record
    _, result = read_source({"name": "w", "kind": "warc", "paths": ["*.warc"]}, tmp_path)
    q = {
        u.rsplit("/", 1)[1]: (r, e)
        for u, r, e in result.tables["quarantine"].select("uri", "reason", "error").iter_rows()
    }
    assert set(q) == {"t.warc#record1", "cut.warc#record2-"}
    assert q["t.warc#record1"][0] == "truncated" and "WARC-Truncated: length" in q["t.warc#record1"][1]
    assert q["cut.warc#record2-"][0] == "truncated"
    docs = result.tables["documents"]
    assert docs.filter(docs["uri"].str.ends_with("t.warc#record2"))["text"].to_list() == [
        "A complete page that follows the truncated one."
    ]


def test_warc_charset_from_header_then_meta_tag_then_detection(tmp_path):
    russian = "Городской совет утвердил новый бюджет для школ и дорог после долгих обсуждений."
    meta_only = f'<html><head><meta charset="windows-1251"></head><body><p>{russian}</p></body></html>'.encode("cp1251")
    wrong_header = f"<html><body><p>{russian}</p></body></html>".encode()  # UTF-8 bytes behind an ISO-8859-1 label
    undeclared = (
        "<html><body><p>"
        + "Le caf\u00e9 du march\u00e9 \u00e9tait tr\u00e8s anim\u00e9 ce matin-l\u00e0. " * 6
        + "</p></body></html>"
    ).encode("cp1252")
    write_warc(
        tmp_path / "c.warc",
        [
            ("response", "http://ru.test/meta", "text/html", meta_only, 200, []),
            ("response", "http://ru.test/wrong", "text/html; charset=iso-8859-1", wrong_header, 200, []),
            ("response", "http://fr.test/none", "text/html", undeclared, 200, []),
        ],
        gzip_records=False,
    )
    _, result = read_source({"name": "w", "kind": "warc", "paths": ["*.warc"]}, tmp_path)
    docs = result.tables["documents"]
    metas = [json.loads(m) for m in docs["meta"]]
    assert docs["text"].to_list()[:2] == [russian, russian]
    assert "Le café du marché était très animé" in docs["text"][2]
    assert [(m["charset"], m["charset_source"]) for m in metas] == [
        ("cp1251", "meta"),
        ("utf-8", "detected"),
        ("cp1252", "detected"),
    ]


def test_main_content_keeps_the_article_and_drops_navigation_and_boilerplate(tmp_path):
    write_warc(
        tmp_path / "p.warc",
        [("response", "http://news.test/flood", "text/html", boilerplate_page("en-GB").encode(), 200, [])],
        gzip_records=False,
    )
    (tmp_path / "page.html").write_text(boilerplate_page("de"), encoding="utf-8")
    _, main = read_source({"name": "w", "kind": "warc", "paths": ["*.warc"]}, tmp_path)
    _, visible = read_source({"name": "w", "kind": "warc", "paths": ["*.warc"], "main_content": False}, tmp_path)
    _, html_file = read_source({"name": "f", "kind": "files", "paths": ["*.html"]}, tmp_path)
    for result in (main, html_file):
        text = result.tables["documents"]["text"][0]
        assert all(sentence in text for sentence in ARTICLE)
        assert not any(
            s in text
            for s in (
                "World news",
                "Subscribe today",
                "cookies",
                "Most read",
                "parking charges",
                "Totally agree",
                "Copyright 2024",
            )
        )
    all_text = visible.tables["documents"]["text"][0]
    assert all(s in all_text for s in ARTICLE + NAV + ["cookies", "Totally agree", "Copyright 2024"])
    assert json.loads(main.tables["documents"]["meta"][0])["lang"] == "en-GB"
    file_meta = json.loads(html_file.tables["documents"]["meta"][0])
    assert (file_meta["lang"], file_meta["title"], file_meta["format"]) == (
        "de",
        "Flood barrier opens | Town Post",
        "html",
    )
    assert (file_meta["charset"], file_meta["charset_source"]) == ("utf-8", "detected")  # no header, no <meta charset>


def test_hf_save_to_disk_and_local_folder(tmp_path):
    ds = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["one", None, "three"], "uid": ["u1", "u2", "u3"]}),
            "test": datasets.Dataset.from_dict({"text": ["t"], "uid": ["t1"]}),
        }
    )
    ds.save_to_disk(str(tmp_path / "saved"))
    items, result = read_source(
        {"name": "h", "kind": "hf", "path": "saved", "split": "train", "id_field": "uid", "batch_rows": 2}, tmp_path
    )
    assert items[0].uri == "saved:train" and items[0].fingerprint.startswith("tree:")
    docs = result.tables["documents"]
    assert docs["text"].to_list() == ["one", "three"]
    assert [json.loads(m)["source_id"] for m in docs["meta"]] == ["u1", "u3"]
    assert docs["uri"].to_list() == ["saved:train#row0", "saved:train#row2"]
    assert result.tables["quarantine"]["reason"].to_list() == ["missing_field"]
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps({"text": f"r{i}"}) + "\n" for i in range(4)))
    _, local = read_source({"name": "h2", "kind": "hf", "path": str(folder)}, tmp_path)
    assert local.tables["documents"]["text"].to_list() == ["r0", "r1", "r2", "r3"]
    _, missing = read_source({"name": "h3", "kind": "hf", "path": "saved", "split": "validation"}, tmp_path)
    assert missing.tables["quarantine"]["reason"].to_list() == ["missing_split"]


def test_large_warc_is_read_in_spans_of_partition_rows_in_every_layout(tmp_path):
    """A WARC with more records than run.partition_rows is read in spans of records, a gather
    partition each, with the uris (`#record<N>`, N among all records) and rows of one whole-file
    read (conftest.read_in_spans): gzip per record and plain files at the records' byte offsets,
    a file gzipped as one stream (or in members of several records) by skipping to its span. A record the crawler truncated, a
    non-text payload, a file cut inside its last record, a record without a Content-Length and a
    damaged record mid-file are each reported once, as in the whole-file read."""
    records = []
    for i in range(1300):
        url = f"http://site.test/{i}"
        if i % 97 == 5:
            records.append(("resource", url, "image/png", b"\x89PNG\r\n\x1a\n" + bytes(i % 50), None, []))
        else:
            page = f"<html><body><p>Page {i} of the test site. " + "word " * (i % 30) + "</p></body></html>"
            records.append(("response", url, "text/html", page.encode(), 200, []))
    write_warc(tmp_path / "gz.warc.gz", records, gzip_records=True)
    write_warc(tmp_path / "plain.warc", records, gzip_records=False)
    raw = (tmp_path / "plain.warc").read_bytes()
    raw = raw.replace(b"WARC-Target-URI: http://site.test/700\r\n", b"WARC-Target-URI: x\r\nWARC-Truncated: length\r\n")
    (tmp_path / "plain.warc").write_bytes(raw)
    (tmp_path / "stream.warc.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "cut.warc").write_bytes(raw[:-40])
    at = raw.index(b"WARC/1.0", raw.index(b"http://site.test/800\r\n") - 200)
    length = raw.index(b"Content-Length", at)  # record 801's header loses its Content-Length
    (tmp_path / "nolength.warc").write_bytes(raw[:length] + b"X-" + raw[length:])
    (tmp_path / "damaged.warc").write_bytes(raw[:at] + b"NOT A WARC RECORD\r\n\r\n" + raw[at:])
    each = [b"WARC/1.0\r\n" + r for r in raw.split(b"WARC/1.0\r\n")[1:]]  # gzip members of 3 records each:
    members = [gzip.compress(b"".join(each[i : i + 3])) for i in range(0, len(each), 3)]  # FastWARC's offsets
    (tmp_path / "members.warc.gz").write_bytes(b"".join(members))  # there are not the records': streamed
    quarantined = {}
    names = (
        "gz.warc.gz",
        "plain.warc",
        "stream.warc.gz",
        "members.warc.gz",
        "cut.warc",
        "nolength.warc",
        "damaged.warc",
    )
    for name in names:
        src = {"name": name.split(".")[0], "kind": "warc", "paths": [name]}
        items, whole = read_in_spans(tmp_path, src, "record")
        assert [i.span[2] for i in items] == ([0, 500] if name in ("nolength.warc", "damaged.warc") else [0, 500, 1000])
        assert all(item.span[0] == -1 for item in items) == (name in ("stream.warc.gz", "members.warc.gz")), name
        q = whole.tables["quarantine"]
        quarantined[name] = sorted(zip([u.rsplit("#", 1)[1] for u in q["uri"]], q["reason"]))
    assert quarantined["plain.warc"] == quarantined["stream.warc.gz"] == [("record701", "truncated")]
    assert quarantined["members.warc.gz"] == [("record701", "truncated")]
    assert quarantined["cut.warc"] == [("record1300-", "truncated"), ("record701", "truncated")]
    assert quarantined["nolength.warc"] == [("record701", "truncated"), ("record801-", "truncated")]
    assert quarantined["damaged.warc"] == [("record701", "truncated"), ("record801-", "unreadable")]
    assert quarantined["gz.warc.gz"] == []
