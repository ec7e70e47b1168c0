"""The `warc` kind: the text of the HTML / plain-text documents of WARC files.

WARC is read by FastWARC (resiliparse's WARC reader): WARC/1.0 and 1.1, plain `.warc` or
gzip `.warc.gz` (one gzip member per record or one for the whole file). Records stream
one at a time; a record larger than `max_record_bytes` is skipped unread.

Input rows are the document records: `response` (an HTTP response: status and headers
parsed by FastWARC when the record declares application/http, else by the small parser
below), `resource` and `conversion` (the block itself; its type from the WARC
Content-Type). warcinfo/request/metadata/revisit/... records carry no document; they are
counted in stats["warc_other_records"]. For each document record:
  HTML (text/html, application/xhtml+xml) -> html_text.extract_html: the main content
  (`main_content: true`, default) or all visible text (`main_content: false`);
  text/plain -> as is; other payloads -> REJECT rule non_text_payload (value: body bytes)
  record over max_record_bytes -> REJECT rule oversized (value: declared bytes)
  WARC-Truncated header (the crawler cut the payload) -> QUARANTINE truncated
  Content-Encoding gzip/deflate is undone with an output cap of max_record_bytes; past
  it the record is quarantined as decompression_bomb. Chunked bodies are de-chunked.
  charset: HTTP header, then <meta>, then detection (html_charset.decode_web); else
  QUARANTINE bad_encoding.
uri = `<path>#record<N>` (N = 0-based index among all records of the file, also when a large
file is read in spans of records: sources/warc_spans.py);
meta: url, date, record_id, warc_type, content_type, http_status, charset,
charset_source (bom|header|meta|detected), encoding (= charset, the name before issue 19),
content_language (HTTP Content-Language), lang (<html lang>), title.
A file that stops parsing (cut record or gzip stream, header without Content-Length)
quarantines the rest of the file as one row (truncated); a file that is not WARC at all
is quarantined as wrong_extension / unreadable.
"""

from __future__ import annotations

import io
import itertools
import os
import zlib

from fastwarc.warc import ArchiveIterator, WarcRecord, WarcRecordType

from sources.config import WarcSource
from sources.html_charset import CHARSET_PARAM, BadEncoding, decode_web
from sources.html_text import extract_html
from sources.item import SourceItem
from sources.record import RowSink, text_id
from sources.sniff import sniff
from sources.spans import ByteRange

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_DOCUMENT_TYPES = WarcRecordType.response | WarcRecordType.resource | WarcRecordType.conversion


class WarcFormatError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _dechunk(body: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            return bytes(out)
        size = int(body[pos:end].split(b";")[0] or b"0", 16)
        if size == 0:
            return bytes(out)
        out += body[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    wbits = 16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
    d = zlib.decompressobj(wbits)
    out = d.decompress(body, limit + 1)
    if len(out) > limit:
        raise WarcFormatError("decompression_bomb", f"{encoding} body inflates past {limit} bytes")
    return out


def _http(block: bytes) -> tuple[int | None, dict[str, str], bytes]:
    head, sep, body = block.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = block.partition(b"\n\n")
    lines = head.decode("latin-1").splitlines()
    status = None
    if lines and lines[0].startswith("HTTP/"):
        parts = lines[0].split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def _payload(record: WarcRecord, block_length: int) -> tuple[int | None, dict[str, str], bytes, str]:
    """(HTTP status or None, HTTP headers lower-cased, body, content type) of a document record.

    Raises WarcFormatError("truncated") when the file ends inside the record.
    """
    warc_ctype = (record.headers.get("Content-Type") or "").lower()
    if record.is_http:  # WARC Content-Type application/http: FastWARC parsed status and headers
        body = record.reader.read()
        if len(body) < record.content_length:
            raise WarcFormatError(
                "truncated", f"record body ends early ({len(body)} of {record.content_length} payload bytes)"
            )
        http = {name.lower(): value for name, value in record.http_headers.items()}
        return record.http_headers.status_code, http, body, http.get("content-type", "").lower()
    block = record.reader.read()
    if len(block) < block_length:
        raise WarcFormatError("truncated", f"record body has {len(block)} of {block_length} bytes")
    if record.record_type == WarcRecordType.response and block.startswith(b"HTTP/"):
        status, http, body = _http(block)  # an HTTP response the writer did not label application/http
        return status, http, body, http.get("content-type", "").lower()
    return None, {}, block, warc_ctype


def _document(sink: RowSink, source: WarcSource, uri: str, record: WarcRecord, block_length: int) -> None:
    headers = record.headers
    if headers.get("WARC-Truncated"):
        cut = headers.get("WARC-Truncated")
        sink.quarantine(
            uri=uri, reason="truncated", error=f"WARC-Truncated: {cut}: the crawler stored only part of the payload"
        )
        return
    status, http, body, ctype = _payload(record, block_length)
    meta = {
        "url": headers.get("WARC-Target-URI"),
        "date": headers.get("WARC-Date"),
        "record_id": headers.get("WARC-Record-ID"),
        "warc_type": str(record.record_type),
        "content_type": ctype or None,
        "http_status": status,
        "content_language": http.get("content-language"),
    }
    if "chunked" in http.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    encoding = http.get("content-encoding", "").lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            body = _inflate(body, encoding, source.max_record_bytes)
        except zlib.error as exc:
            sink.quarantine(uri=uri, reason="unreadable", error=f"bad {encoding} body: {exc}")
            return
        except WarcFormatError as exc:
            sink.quarantine(uri=uri, reason=exc.reason, error=str(exc))
            return
    is_html = ctype.startswith(_HTML_TYPES) or (
        not ctype and body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))
    )
    if not (is_html or ctype.startswith("text/plain")):
        sink.reject(
            modality="text", uri=uri, rule="non_text_payload", value=len(body), license=source.license, meta=meta
        )
        return
    declared = CHARSET_PARAM.search(ctype)
    try:
        text, charset, charset_source = decode_web(body, declared.group(1) if declared else None, html=is_html)
    except BadEncoding as exc:
        sink.quarantine(uri=uri, reason="bad_encoding", error=str(exc))
        return
    meta.update(charset=charset, charset_source=charset_source, encoding=charset)
    if is_html:
        text, hints = extract_html(text, source.main_content)
        meta.update(hints)
    sink.document(id=text_id("text", text), modality="text", uri=uri, license=source.license, meta=meta, text=text)


def read_warc(sink: RowSink, source: WarcSource, item: SourceItem) -> None:
    """Append the rows of one WARC file, or of its span (item.span)."""
    try:
        size = os.path.getsize(item.path)
        with open(item.path, "rb") as raw:
            head = raw.read(64)
    except OSError as exc:
        sink.quarantine(uri=item.uri, reason="unreadable", error=f"{type(exc).__name__}: {exc}")
        return
    if size == 0:
        sink.quarantine(uri=item.uri, reason="zero_byte", error="file is empty")
        return
    kind = sniff(head)
    if kind not in (None, "gzip"):
        sink.quarantine(uri=item.uri, reason="wrong_extension", error=f"content is {kind}")
        return
    if kind is None and not head.startswith(b"WARC/"):
        reason = "wrong_extension" if b"\0" in head else "unreadable"
        sink.quarantine(uri=item.uri, reason=reason, error=f"expected a WARC/ version line, got {head[:40]!r}")
        return
    # A span (sources/warc_spans.py): the bytes of its records, or for a file gzipped as one
    # stream the whole stream with the records before the span skipped unparsed.
    start, stop, n = item.span or (0, None, 0)
    window = item.span is not None and start >= 0
    try:
        with ByteRange(item.path, start, stop) if window else open(item.path, "rb") as fh:
            records = ArchiveIterator(io.BufferedReader(fh) if window else fh, parse_http=True)
            for record in records if window or item.span is None else itertools.islice(records, n, stop):
                uri = f"{item.uri}#record{n}"
                n += 1
                declared = record.headers.get("Content-Length")
                if declared is None or not declared.strip().isdigit():
                    raise WarcFormatError("truncated", "record header without a Content-Length (file ends inside it?)")
                length = int(declared)
                if not record.record_type & _DOCUMENT_TYPES:
                    sink.stats["warc_other_records"] += 1
                elif length > source.max_record_bytes:
                    sink.reject(
                        modality="text",
                        uri=uri,
                        rule="oversized",
                        value=length,
                        license=source.license,
                        meta={"url": record.headers.get("WARC-Target-URI"), "bytes": length},
                    )
                else:
                    _document(sink, source, uri, record, length)
    except WarcFormatError as exc:
        sink.quarantine(uri=f"{item.uri}#record{n - 1}-", reason=exc.reason, error=str(exc))
    except OSError as exc:  # FastWARC: a record that does not start with a WARC header, a corrupt gzip stream
        reason = "unreadable" if "header" in str(exc).lower() else "truncated"
        sink.quarantine(uri=f"{item.uri}#record{n}-", reason=reason, error=f"{type(exc).__name__}: {exc}")
