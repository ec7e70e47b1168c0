"""The `warc` kind: visible text of the HTML / plain-text response records of WARC files.

A small streaming reader (no extra dependency): plain `.warc` or gzip `.warc.gz` (one gzip
member per record or one for the whole file: Python's gzip reads members back to back).
Records are read one at a time; a body larger than `max_record_bytes` is skipped in
chunks, never held.

Input rows are the `response` records (warcinfo/request/metadata/... records carry no
document; they are counted in stats["warc_other_records"]). For each response:
  HTML (text/html, application/xhtml+xml) -> html_text.html_to_text; text/plain -> as is
  other payloads -> REJECT rule non_text_payload (value: body bytes)
  body over max_record_bytes -> REJECT rule oversized (value: declared bytes)
  Content-Encoding gzip/deflate is undone with an output cap of max_record_bytes; past
  it the record is quarantined as decompression_bomb. Chunked bodies are de-chunked.
  charset: the HTTP header's, else UTF-8 then detection (text_decode); else bad_encoding.
uri = `<path>#record<N>` (N = 0-based index among all records of the file);
meta: url, date, record_id, content_type, http_status, title, encoding.
A file that stops parsing (cut gzip, record shorter than its Content-Length) quarantines
the rest of the file as one row (truncated); a file that is not WARC at all is
quarantined as wrong_extension / unreadable.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from typing import BinaryIO, Iterator

from sources.config import WarcSource
from sources.html_text import html_to_text
from sources.item import SourceItem
from sources.record import RowSink, text_id
from sources.sniff import sniff
from sources.text_decode import BadEncoding, decode_text

_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_SKIP_CHUNK = 1 << 20


class WarcFormatError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _headers(fh: BinaryIO) -> dict[str, str] | None:
    """WARC version line + headers; None at a clean end of file."""
    line = fh.readline()
    while line in (b"\r\n", b"\n"):
        line = fh.readline()
    if not line:
        return None
    if not line.startswith(b"WARC/"):
        raise WarcFormatError("unreadable", f"expected a WARC/ version line, got {line[:40]!r}")
    headers: dict[str, str] = {}
    while True:
        line = fh.readline()
        if not line:
            raise WarcFormatError("truncated", "file ends inside a record header")
        if line in (b"\r\n", b"\n"):
            return headers
        name, _, value = line.decode("utf-8", "replace").partition(":")
        headers[name.strip().lower()] = value.strip()


def iter_records(fh: BinaryIO, max_bytes: int) -> Iterator[tuple[dict[str, str], bytes | None, int]]:
    """(headers, block or None when longer than max_bytes, declared length), in file order."""
    while (headers := _headers(fh)) is not None:
        try:
            length = int(headers.get("content-length", ""))
        except ValueError as exc:
            raise WarcFormatError("unreadable", "record without a valid Content-Length") from exc
        if length > max_bytes:
            left = length
            while left:
                got = len(fh.read(min(left, _SKIP_CHUNK)))
                if not got:
                    raise WarcFormatError("truncated", f"record body ends {left} bytes early")
                left -= got
            yield headers, None, length
            continue
        block = fh.read(length)
        if len(block) < length:
            raise WarcFormatError("truncated", f"record body has {len(block)} of {length} bytes")
        yield headers, block, length


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


def _response(sink: RowSink, source: WarcSource, uri: str, headers: dict, block: bytes) -> None:
    status, http, body = _http(block)
    ctype = http.get("content-type", "").lower()
    meta = {"url": headers.get("warc-target-uri"), "date": headers.get("warc-date"),
            "record_id": headers.get("warc-record-id"), "content_type": ctype or None, "http_status": status}
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
    is_html = ctype.startswith(_HTML_TYPES) or (not ctype and body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")))
    if not (is_html or ctype.startswith("text/plain")):
        sink.reject(modality="text", uri=uri, rule="non_text_payload", value=len(body), license=source.license, meta=meta)
        return
    text = None
    charset = _CHARSET.search(ctype)
    if charset:
        try:
            text, meta["encoding"] = body.decode(charset.group(1)), charset.group(1)
        except (LookupError, UnicodeDecodeError):
            text = None  # a wrong header charset is common: fall back to detection
    if text is None:
        try:
            text, meta["encoding"] = decode_text(body)
        except BadEncoding as exc:
            sink.quarantine(uri=uri, reason="bad_encoding", error=str(exc))
            return
    if is_html:
        text, meta["title"] = html_to_text(text)
    sink.document(id=text_id("text", text), modality="text", uri=uri, license=source.license, meta=meta, text=text)


def read_warc(sink: RowSink, source: WarcSource, item: SourceItem) -> None:
    """Append the rows of one WARC file."""
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
    n = 0
    try:
        with (gzip.open(item.path, "rb") if kind == "gzip" else open(item.path, "rb")) as fh:
            for headers, block, length in iter_records(fh, source.max_record_bytes):
                uri = f"{item.uri}#record{n}"
                n += 1
                if headers.get("warc-type") != "response":
                    sink.stats["warc_other_records"] += 1
                elif block is None:
                    sink.reject(modality="text", uri=uri, rule="oversized", value=length, license=source.license,
                                meta={"url": headers.get("warc-target-uri"), "bytes": length})
                else:
                    _response(sink, source, uri, headers, block)
    except WarcFormatError as exc:
        reason = "wrong_extension" if n == 0 and exc.reason == "unreadable" and kind is None and b"\0" in head else exc.reason
        sink.quarantine(uri=f"{item.uri}#record{n}-", reason=reason, error=str(exc))
    except (OSError, EOFError, zlib.error) as exc:  # a cut or corrupt gzip stream
        sink.quarantine(uri=f"{item.uri}#record{n}-", reason="truncated", error=f"{type(exc).__name__}: {exc}")
