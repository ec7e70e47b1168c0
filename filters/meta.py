"""Adding keys to the DOCUMENT `meta` JSON object without parsing it per row.

Rows' meta objects have different keys, so a decode -> struct -> encode round trip would
invent null keys; instead a key is spliced in after the opening brace as text. Curate
owns the keys it adds (language, language_score, redactions, c4_removed_lines, decontam).
"""

from __future__ import annotations

import polars as pl


def json_str(value: pl.Expr) -> pl.Expr:
    """A Utf8 expression as a JSON string literal (null stays null)."""
    escaped = (
        value.str.replace_all("\\", "\\\\", literal=True)
        .str.replace_all('"', '\\"', literal=True)
        .str.replace_all("\n", "\\n", literal=True)
        .str.replace_all("\t", "\\t", literal=True)
        .str.replace_all(r"[\x00-\x1f]", "")
    )
    return pl.concat_str([pl.lit('"'), escaped, pl.lit('"')])


def add_key(meta: pl.Expr, key: str, json_value: pl.Expr) -> pl.Expr:
    """meta with `"key": <json_value>` added; rows whose json_value is null are unchanged.
    A null, empty or non-object meta becomes a fresh object."""
    m = meta.str.strip_chars()
    pair = pl.concat_str([pl.lit(f'"{key}":'), json_value])
    is_obj = m.str.starts_with("{") & m.str.ends_with("}")
    empty = m.str.replace_all(r"\s", "") == "{}"
    spliced = (
        pl.when(is_obj.fill_null(False) & ~empty.fill_null(True))
        .then(pl.concat_str([pl.lit("{"), pair, pl.lit(","), m.str.slice(1)]))
        .otherwise(pl.concat_str([pl.lit("{"), pair, pl.lit("}")]))
    )
    return pl.when(json_value.is_null()).then(meta).otherwise(spliced)


def get_number(meta: pl.Expr, key: str) -> pl.Expr:
    """A top-level numeric meta field as Float64 (null when absent or not a number)."""
    return meta.str.json_path_match(f"$.{key}").cast(pl.Float64, strict=False)
