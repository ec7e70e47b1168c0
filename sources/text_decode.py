"""Bytes -> str for text sources, one decision per file.

Order: a BOM wins (UTF-8/UTF-16/UTF-32); then strict UTF-8; then charset-normalizer's
best guess over the whole file. A file is decoded with ONE encoding: a file that mixes
encodings (e.g. UTF-8 with a stray Latin-1 line) fails strict UTF-8, and is then decoded
with whatever single legacy encoding charset-normalizer finds coherent for all of it; if
none is coherent the file is quarantined as bad_encoding rather than decoded with
replacement characters (which would silently corrupt the text).
"""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes

# How much more "chaos" (charset-normalizer's mess ratio, 0..1) a cp1252 reading may show
# than the top guess and still be preferred; 0.05 covers the one-letter differences seen
# on short Western texts.
WESTERN_CHAOS_MARGIN = 0.05

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def has_bom(data: bytes) -> bool:
    """True when the bytes start with a Unicode byte-order mark (UTF-16/32 text contains NULs)."""
    return any(data.startswith(bom) for bom, _ in _BOMS)


class BadEncoding(ValueError):
    """No single encoding decodes the bytes coherently."""


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding name). Raises BadEncoding."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(name), name
            except UnicodeDecodeError as exc:
                raise BadEncoding(f"{name} BOM but undecodable: {exc}") from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = exc
    legacy = detect_legacy(data)
    if legacy is None:
        raise BadEncoding(f"not UTF-8 ({utf8_error.reason} at byte {utf8_error.start}) and no coherent legacy encoding")
    try:
        return data.decode(legacy), legacy
    except (UnicodeDecodeError, LookupError) as exc:  # detector guessed wrong
        raise BadEncoding(f"detected {legacy} but undecodable: {exc}") from exc


def detect_legacy(data: bytes) -> str | None:
    """charset-normalizer's most coherent non-UTF-8 encoding for `data`, or None."""
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    # charset-normalizer often ranks cp1257/cp1250 first for short French/German/Spanish
    # text; windows-1252 is the WHATWG Encoding Standard's fallback for unlabeled legacy
    # Western text, so it wins among near-equally coherent candidates.
    near = [m for m in matches if m.chaos <= best.chaos + WESTERN_CHAOS_MARGIN and m.coherence >= best.coherence]
    best = next((m for m in near if m.encoding == "cp1252"), best)
    return None if best.encoding in (None, "utf_8") else best.encoding
