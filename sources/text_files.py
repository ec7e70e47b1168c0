"""The `files` kind: one record per plain-text, Markdown or HTML file.

The format is picked by extension (.html/.htm -> html_text.extract_html: main content, or
all visible text with `main_content: false`; charset from <meta> before detection, see
html_charset; meta gains title, lang, charset, charset_source), .md -> markdown kept verbatim,
anything else -> plain text). A file whose first bytes are a
known binary format (PNG, ZIP, ...) or contain NUL is quarantined as wrong_extension;
an empty file as zero_byte; undecodable bytes as bad_encoding (see text_decode).
Each file is read whole, one at a time: memory is bounded by max_file_bytes.
"""

from __future__ import annotations

import os
import stat

from sources.config import FilesSource
from sources.html_charset import decode_web
from sources.html_text import extract_html
from sources.item import SourceItem
from sources.record import RowSink, text_id
from sources.sniff import looks_binary, sniff
from sources.text_decode import BadEncoding, decode_text, has_bom

_HTML = {".html", ".htm", ".xhtml"}
_MARKDOWN = {".md", ".markdown"}


def read_text_file(sink: RowSink, source: FilesSource, item: SourceItem) -> None:
    """Append exactly one outcome row for `item` to `sink`."""
    uri = item.uri
    try:
        st = os.stat(item.path)
    except OSError as exc:
        sink.quarantine(uri=uri, reason="unreadable", error=f"{type(exc).__name__}: {exc}")
        return
    if not stat.S_ISREG(st.st_mode):  # turned into a FIFO since discovery: opening it would block
        sink.quarantine(uri=uri, reason="not_regular_file", error="not a regular file; not opened")
        return
    size = st.st_size
    if size == 0:
        sink.quarantine(uri=uri, reason="zero_byte", error="file is empty")
        return
    if size > source.max_file_bytes:
        sink.reject(
            modality="text",
            uri=uri,
            rule="oversized",
            value=size,
            license=source.license,
            meta={"bytes": size, "max_file_bytes": source.max_file_bytes},
        )
        return
    try:
        with open(item.path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        sink.quarantine(uri=uri, reason="unreadable", error=f"{type(exc).__name__}: {exc}")
        return
    kind = sniff(data[:64])
    if kind is not None or (looks_binary(data) and not has_bom(data)):
        what = kind or "binary data (NUL bytes)"
        sink.quarantine(uri=uri, reason="wrong_extension", error=f"text extension but content is {what}")
        return
    ext = os.path.splitext(item.path)[1].lower()
    charset_source = None
    try:
        if ext in _HTML:
            text, encoding, charset_source = decode_web(data, None, html=True)
        else:
            text, encoding = decode_text(data)
    except BadEncoding as exc:
        sink.quarantine(uri=uri, reason="bad_encoding", error=str(exc))
        return
    meta: dict = {"bytes": size, "encoding": encoding}
    if ext in _HTML:
        text, hints = extract_html(text, source.main_content)
        meta.update(format="html", charset=encoding, charset_source=charset_source, **hints)
    elif ext in _MARKDOWN:
        meta["format"] = "markdown"
    else:
        meta["format"] = "plain"
    sink.document(id=text_id("text", text), modality="text", uri=uri, license=source.license, meta=meta, text=text)
