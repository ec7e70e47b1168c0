"""Bytes of a web page -> str, with the decision recorded: HTTP header, then <meta>, then detection.

Order (the WHATWG HTML encoding sniffing order, minus the browser-only steps):
  1. a byte-order mark wins (charset_source "bom");
  2. the charset of the HTTP Content-Type header (or the WARC record's) ("header");
  3. for HTML, the <meta charset> / <meta http-equiv="Content-Type"> in the first
     META_PRESCAN_BYTES bytes ("meta");
  4. detection ("detected"): strict UTF-8, then resiliparse's detector (uchardet, mapped to
     the WHATWG encoding names browsers use), then text_decode.decode_text's
     charset-normalizer guess. resiliparse comes first because charset-normalizer, fed
     markup, often ranks a Baltic or Central European code page above windows-1252 for
     French or German pages (tests/test_sources_web.py has such a page).
A declared charset is skipped when it is unknown, when the bytes do not decode with it,
or when it names a single-byte legacy encoding but the bytes are valid, non-ASCII UTF-8
(a server default such as ISO-8859-1 in front of a UTF-8 page is the common web error;
valid multi-byte UTF-8 is practically never legacy text). Labels are mapped the way
browsers map them: ISO-8859-1, Latin-1 and US-ASCII mean windows-1252.
"""

from __future__ import annotations

import codecs
import re

from resiliparse.parse.encoding import detect_encoding

from sources.text_decode import BadEncoding, decode_text, has_bom

# 1024 bytes: the WHATWG "prescan a byte stream to determine its encoding" window
# (HTML Living Standard, section 13.2.3.2).
META_PRESCAN_BYTES = 1024

CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_META = re.compile(rb"<meta\b[^>]*?charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)
_WINDOWS_1252_ALIASES = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "iso_8859-1"}
_UNICODE = {"utf_8", "utf_8_sig", "utf_16", "utf_16_le", "utf_16_be", "utf_32", "utf_32_le", "utf_32_be"}


def meta_charset(data: bytes) -> str | None:
    """The charset named by a <meta> tag in the first META_PRESCAN_BYTES bytes, or None."""
    found = _META.search(data[:META_PRESCAN_BYTES])
    return found.group(1).decode("ascii", "replace") if found else None


def _codec(label: str) -> str | None:
    label = label.strip().lower()
    label = "cp1252" if label in _WINDOWS_1252_ALIASES else label
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _decode_declared(data: bytes, label: str) -> str | None:
    codec = _codec(label)
    if codec is None:
        return None
    if codec not in _UNICODE and not data.isascii():
        try:
            data.decode("utf-8")
            return None  # legacy label in front of UTF-8 bytes: the label is wrong
        except UnicodeDecodeError:
            pass
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def decode_web(data: bytes, header_charset: str | None, html: bool) -> tuple[str, str, str]:
    """(text, charset, charset_source) with charset_source in bom|header|meta|detected.

    Raises text_decode.BadEncoding when nothing decodes the bytes coherently.
    """
    if has_bom(data):
        text, charset = decode_text(data)
        return text, charset, "bom"
    for label, source in ((header_charset, "header"), (meta_charset(data) if html else None, "meta")):
        if label:
            text = _decode_declared(data, label)
            if text is not None:
                return text, _codec(label) or label, source
    try:
        return data.decode("utf-8"), "utf-8", "detected"
    except UnicodeDecodeError:
        pass
    guess = detect_encoding(data)
    if guess and guess != "utf-8":
        try:
            return data.decode(guess), _codec(guess) or guess, "detected"
        except (UnicodeDecodeError, LookupError):
            pass
    text, charset = decode_text(data)
    return text, charset, "detected"


__all__ = ["BadEncoding", "CHARSET_PARAM", "META_PRESCAN_BYTES", "decode_web", "meta_charset"]
