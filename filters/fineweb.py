"""FineWeb's custom quality rules (Penedo et al. 2024, "The FineWeb Datasets", Sec. 3.6),
with the defaults of datatrove's `FineWebQualityFilter`:

- `fineweb_empty`: no non-blank line.
- `fineweb_line_punct_ratio`: share of non-blank lines ending in terminal punctuation < 0.12.
- `fineweb_short_line_ratio`: share of lines of <= 30 characters > 0.67.
- `fineweb_char_dup_ratio`: characters in repeated lines / characters (without newlines) > 0.01.
- `fineweb_list_ratio`: newlines per word > 0.3.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from filters.config import FineWebConfig
from filters.gopher import _safe_div
from filters.rules import Rule, rule_if
from filters.textsplit import explode_pieces, per_doc, words

# Unicode Sentence_Terminal covers datatrove's TERMINAL_PUNCTUATION set (. ! ? and other scripts').
TERMINAL = r"[\p{Sentence_Terminal}]$"


def stats(texts: pl.Series, cfg: FineWebConfig) -> pl.DataFrame:
    n = len(texts)
    t = texts.cast(pl.Utf8).fill_null("")
    lines = explode_pieces(t.str.split("\n")).filter(pl.col("piece").str.strip_chars() != "")
    lines = lines.with_columns(
        pl.col("piece").str.contains(TERMINAL).alias("punct"),
        (pl.col("piece").str.len_chars() <= cfg.short_line_length).alias("short"),
        ~pl.struct("doc", "piece").is_first_distinct().alias("dup"),
        pl.col("piece").str.len_chars().alias("len"),
    )
    agg = lines.group_by("doc").agg(
        pl.len().alias("n"),
        pl.col("punct").sum(),
        pl.col("short").sum(),
        pl.col("len").filter(pl.col("dup")).sum().alias("dup_chars"),
    )
    n_lines = per_doc(agg, n, "n")
    chars = t.str.replace_all("\n", "", literal=True).str.len_chars().cast(pl.Float64).to_numpy()
    n_words = np.bincount(words(t)["doc"].to_numpy(), minlength=n).astype(np.float64)
    newlines = t.str.count_matches("\n", literal=True).cast(pl.Float64).to_numpy()
    punct_ratio = _safe_div(per_doc(agg, n, "punct"), n_lines)
    return pl.DataFrame(
        {
            "fw_n_lines": n_lines,
            "fw_line_punct_ratio": punct_ratio,
            "fw_line_punct_ratio_nz": np.where(punct_ratio == 0, np.nan, punct_ratio),
            "fw_short_line_ratio": _safe_div(per_doc(agg, n, "short"), n_lines),
            "fw_char_dup_ratio": _safe_div(per_doc(agg, n, "dup_chars"), chars),
            "fw_list_ratio": _safe_div(newlines, n_words),
        }
    )


def rules(cfg: FineWebConfig) -> list[Rule]:
    if not cfg.enabled:
        return []
    punct = rule_if("fineweb_line_punct_ratio", "fw_line_punct_ratio", "<", cfg.line_punct_thr)
    if punct and cfg.line_punct_exclude_zero:
        # ratio == 0 is exempt: the rule then fails only on (0, thr).
        punct = [Rule("fineweb_line_punct_ratio", "fw_line_punct_ratio_nz", "<", cfg.line_punct_thr)]
    return (
        rule_if("fineweb_empty", "fw_n_lines", "<", 1)
        + punct
        + rule_if("fineweb_short_line_ratio", "fw_short_line_ratio", ">", cfg.short_line_thr)
        + rule_if("fineweb_char_dup_ratio", "fw_char_dup_ratio", ">", cfg.char_duplicates_ratio)
        + rule_if("fineweb_list_ratio", "fw_list_ratio", ">", cfg.new_line_ratio)
    )
