"""Gather sources: WARC files and Hugging Face datasets (offline paths only)."""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib

import datasets

from conftest import read_source


def record(wtype: str, block: bytes, url: str = "http://example.com/") -> bytes:
    head = (f"WARC/1.0\r\nWARC-Type: {wtype}\r\nWARC-Target-URI: {url}\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
            f"WARC-Record-ID: <urn:sha256:{hashlib.sha256(block).hexdigest()[:16]}>\r\nContent-Length: {len(block)}\r\n\r\n").encode()
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
    _, result = read_source({"name": "w", "kind": "warc", "paths": ["*.warc*"], "max_record_bytes": 1_000_000}, tmp_path)
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


def test_hf_save_to_disk_and_local_folder(tmp_path):
    ds = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["one", None, "three"], "uid": ["u1", "u2", "u3"]}),
        "test": datasets.Dataset.from_dict({"text": ["t"], "uid": ["t1"]}),
    })
    ds.save_to_disk(str(tmp_path / "saved"))
    items, result = read_source({"name": "h", "kind": "hf", "path": "saved", "split": "train", "id_field": "uid",
                         "batch_rows": 2}, tmp_path)
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
