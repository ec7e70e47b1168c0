"""Gopher quality and repetition filters (Rae et al. 2021, "Scaling Language Models:
Methods, Analysis & Insights from Training Gopher", App. A.1.1 and Table A1), with the
defaults of datatrove's `GopherQualityFilter` / `GopherRepetitionFilter`.

Statistics for the whole partition are computed in a few vectorized passes over long
(doc, piece) frames; the rules are rows of a rule table over those columns. The order of
the rules is datatrove's (repetition: paragraphs, lines, top n-grams, duplicate n-grams;
quality: word count, word length, symbols, bullets, ellipses, alphabetic words, stop words).

"Duplicate n-gram character fraction" follows datatrove's walk (count a repeated n-gram,
jump n words) in vectorized form: within each run of consecutive repeated n-gram starts,
every n-th start is counted. One difference remains: datatrove does not remember n-grams
it jumped over, we do (an n-gram is "repeated" if it occurred anywhere earlier).
`bench/filters.py` measures how often the two disagree.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from filters.config import GopherQualityConfig, GopherRepetitionConfig
from filters.rules import Rule, rule_if
from filters.textsplit import ngram_hashes, per_doc, split_regex, splitlines, splitmix64, words

# A "symbol word" is made only of punctuation, symbols, controls (datatrove's PUNCTUATION_SET).
_NON_SYMBOL_CHAR = r"[^\p{P}\p{S}\p{Cc}\s]"


def _dup_counts(frame: pl.DataFrame, n_docs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per doc: number of pieces, number of repeated pieces, characters in repeated pieces."""
    f = frame.with_columns(
        ~pl.struct("doc", "piece").is_first_distinct().alias("dup"),
        pl.col("piece").str.len_chars().alias("len"),
    )
    agg = f.group_by("doc").agg(
        pl.len().alias("n"),
        pl.col("dup").sum().alias("n_dup"),
        pl.col("len").filter(pl.col("dup")).sum().alias("dup_chars"),
    )
    return per_doc(agg, n_docs, "n"), per_doc(agg, n_docs, "n_dup"), per_doc(agg, n_docs, "dup_chars")


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def repetition_stats(texts: pl.Series, cfg: GopherRepetitionConfig) -> pl.DataFrame:
    """Gopher repetition statistics, one row per text (NaN where undefined)."""
    n = len(texts)
    t = texts.cast(pl.Utf8).fill_null("")
    text_len = t.str.len_chars().cast(pl.Float64).to_numpy()
    out: dict[str, np.ndarray] = {}

    n_para, n_dup_para, dup_para_chars = _dup_counts(split_regex(t, r"\n{2,}", strip=True), n)
    out["gr_dup_para_frac"] = _safe_div(n_dup_para, n_para)
    out["gr_dup_para_char_frac"] = _safe_div(dup_para_chars, text_len)
    n_line, n_dup_line, dup_line_chars = _dup_counts(split_regex(t, r"\n+"), n)
    out["gr_dup_line_frac"] = _safe_div(n_dup_line, n_line)
    out["gr_dup_line_char_frac"] = _safe_div(dup_line_chars, text_len)

    w = words(t)
    doc = w["doc"].to_numpy()
    wlen = w["piece"].str.len_chars().cast(pl.Int64).to_numpy()
    wh = w["piece"].hash(seed=0).to_numpy()
    csum = np.concatenate([[0], np.cumsum(wlen)])

    for k in sorted(cfg.top_n_grams):
        starts, g = ngram_hashes(wh, doc, k)
        col = np.full(n, np.nan)
        if len(starts):
            chars = csum[starts + k] - csum[starts] + (k - 1)  # " ".join length
            grams = pl.DataFrame({"doc": doc[starts], "start": starts, "g": g, "chars": chars})
            # Counter.most_common(1): the highest count, ties to the n-gram seen first.
            top = (
                grams.group_by("doc", "g")
                .agg(pl.len().alias("count"), pl.col("start").min(), pl.col("chars").first())
                .with_columns(
                    (pl.col("count").cast(pl.Int64) * (1 << 40) - pl.col("start")).alias("score"),
                    (pl.col("count") * pl.col("chars")).alias("top_chars"),
                )
                .group_by("doc")
                .agg(pl.col("top_chars").get(pl.col("score").arg_max()))
            )
            col = _safe_div(per_doc(top, n, "top_chars", np.nan), text_len)
        out[f"gr_top_{k}_gram"] = col

    for k in sorted(cfg.dup_n_grams):
        starts, g = ngram_hashes(wh, doc, k)
        covered_chars = np.zeros(n)
        if len(starts):
            # (doc, n-gram) in one u64 key; a repeat is any occurrence after the first.
            key = splitmix64(g ^ (doc[starts].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
            rep = ~pl.Series(key).is_first_distinct().to_numpy()
            rs = starts[rep]
            # datatrove walks forward and, at a repeated n-gram, counts it and jumps n words:
            # in each run of consecutive repeated starts only every n-th start is counted.
            new_run = np.r_[True, np.diff(rs) != 1]
            run_start = np.maximum.accumulate(np.where(new_run, rs, 0))
            rs = rs[(rs - run_start) % k == 0]
            # Mark the words under the counted occurrences: +1 at start, -1 after end.
            diff = np.zeros(len(wh) + 1, dtype=np.int64)
            np.add.at(diff, rs, 1)
            np.add.at(diff, rs + k, -1)
            covered = np.cumsum(diff[:-1]) > 0
            covered_chars = np.bincount(doc, weights=wlen * covered, minlength=n)
        out[f"gr_dup_{k}_gram"] = _safe_div(covered_chars, text_len)
    return pl.DataFrame(out)


def repetition_rules(cfg: GopherRepetitionConfig) -> list[Rule]:
    if not cfg.enabled:
        return []
    rules = (
        rule_if("gopher_dup_para_frac", "gr_dup_para_frac", ">", cfg.dup_para_frac)
        + rule_if("gopher_dup_para_char_frac", "gr_dup_para_char_frac", ">", cfg.dup_para_char_frac)
        + rule_if("gopher_dup_line_frac", "gr_dup_line_frac", ">", cfg.dup_line_frac)
        + rule_if("gopher_dup_line_char_frac", "gr_dup_line_char_frac", ">", cfg.dup_line_char_frac)
    )
    for k in sorted(cfg.top_n_grams):
        rules += rule_if(f"gopher_top_{k}_gram", f"gr_top_{k}_gram", ">", cfg.top_n_grams[k])
    for k in sorted(cfg.dup_n_grams):
        rules += rule_if(f"gopher_dup_{k}_gram", f"gr_dup_{k}_gram", ">", cfg.dup_n_grams[k])
    return rules


def quality_stats(texts: pl.Series, cfg: GopherQualityConfig) -> pl.DataFrame:
    """Gopher quality statistics, one row per text (NaN where undefined)."""
    n = len(texts)
    t = texts.cast(pl.Utf8).fill_null("")
    w = words(t).with_columns(
        pl.col("piece").str.contains(_NON_SYMBOL_CHAR).alias("non_symbol"),
        pl.col("piece").str.contains(r"\p{L}").alias("alpha"),
        pl.col("piece").str.len_chars().alias("len"),
        pl.col("piece").is_in(cfg.stop_words).alias("stop"),
    )
    agg = w.group_by("doc").agg(
        pl.len().alias("n_words"),
        pl.col("non_symbol").sum().alias("n_non_symbol"),
        pl.col("len").filter(pl.col("non_symbol")).mean().alias("avg_len"),
        pl.col("alpha").sum().alias("n_alpha"),
        pl.col("piece").filter(pl.col("stop")).n_unique().alias("n_stop"),
    )
    n_words = per_doc(agg, n, "n_words")
    lines = splitlines(t).with_columns(
        pl.col("piece").str.contains(r"^\s*[•\-]").alias("bullet"),
        pl.col("piece").str.contains(r"(\.\.\.|…)\s*$").alias("ellipsis"),
    )
    lagg = lines.group_by("doc").agg(pl.len().alias("n"), pl.col("bullet").sum(), pl.col("ellipsis").sum())
    n_lines = per_doc(lagg, n, "n")
    hashes = t.str.count_matches("#", literal=True).cast(pl.Float64).to_numpy()
    ellipses = (
        (t.str.count_matches("...", literal=True) + t.str.count_matches("…", literal=True)).cast(pl.Float64).to_numpy()
    )
    return pl.DataFrame(
        {
            "gq_n_words": per_doc(agg, n, "n_non_symbol"),
            "gq_avg_word_length": per_doc(agg, n, "avg_len", np.nan),
            "gq_hash_ratio": _safe_div(hashes, n_words),
            "gq_ellipsis_ratio": _safe_div(ellipses, n_words),
            "gq_bullet_lines_ratio": _safe_div(per_doc(lagg, n, "bullet"), n_lines),
            "gq_end_ellipsis_ratio": _safe_div(per_doc(lagg, n, "ellipsis"), n_lines),
            "gq_alpha_words_ratio": _safe_div(per_doc(agg, n, "n_alpha"), n_words),
            "gq_stop_words": per_doc(agg, n, "n_stop"),
        }
    )


def quality_rules(cfg: GopherQualityConfig) -> list[Rule]:
    if not cfg.enabled:
        return []
    return (
        rule_if("gopher_short_doc", "gq_n_words", "<", cfg.min_doc_words)
        + rule_if("gopher_long_doc", "gq_n_words", ">", cfg.max_doc_words)
        + rule_if("gopher_below_avg_word_length", "gq_avg_word_length", "<", cfg.min_avg_word_length)
        + rule_if("gopher_above_avg_word_length", "gq_avg_word_length", ">", cfg.max_avg_word_length)
        + rule_if("gopher_too_many_hashes", "gq_hash_ratio", ">", cfg.max_symbol_word_ratio)
        + rule_if("gopher_too_many_ellipsis", "gq_ellipsis_ratio", ">", cfg.max_symbol_word_ratio)
        + rule_if("gopher_too_many_bullets", "gq_bullet_lines_ratio", ">", cfg.max_bullet_lines_ratio)
        + rule_if("gopher_too_many_end_ellipsis", "gq_end_ellipsis_ratio", ">", cfg.max_ellipsis_lines_ratio)
        + rule_if("gopher_below_alpha_threshold", "gq_alpha_words_ratio", "<", cfg.min_alpha_words_ratio)
        + rule_if("gopher_enough_stop_words", "gq_stop_words", "<", cfg.min_stop_words)
    )
