"""C4 filters (Raffel et al. 2020, "Exploring the Limits of Transfer Learning", Sec. 2.2),
with the defaults and line order of datatrove's `C4QualityFilter` (itself following
tensorflow_datasets' c4_utils):

Line rules (the line is removed, the document kept): a word longer than 1000 characters,
no terminal punctuation (. ? ! " ') or ending in "...", fewer than 3 words, mentions
"javascript", contains a cookie/terms-of-use phrase; wikipedia citations ([1], [edit],
[citation needed]) are cut out of lines.
Document rules (reject): "lorem ipsum" in a kept-candidate line (`c4_lorem_ipsum`), a curly
bracket in one (`c4_curly_bracket`), fewer than 5 sentences left (`c4_too_few_sentences`).

`clean` works on one long frame of all the partition's lines; no Python loop per line.
Sentences are counted with a punctuation heuristic (runs of . ! ? followed by a space or
the line's end, at least one per kept line) instead of a sentence splitter.
"""

from __future__ import annotations

import polars as pl

from filters.config import C4Config
from filters.rules import Rule, rule_if
from filters.textsplit import per_doc, splitlines

CITATION_PATTERN = r"\[\d*\]|\[edit\]|\[citation needed\]"
POLICY_SUBSTRINGS = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"]
REMOVAL_REASONS = ("too_long_word", "no_terminal_punct", "too_few_words", "javascript", "policy")


def clean(texts: pl.Series, cfg: C4Config) -> tuple[pl.Series, pl.DataFrame]:
    """Return (cleaned texts, per-doc stats: c4_lorem_lines, c4_curly_lines, c4_sentences,
    and c4_removed_<reason> line counts). Disabled: texts unchanged, stats null."""
    n = len(texts)
    if not cfg.enabled:
        return texts, pl.DataFrame({"c4_sentences": [None] * n}, schema={"c4_sentences": pl.Float64})
    lines = splitlines(texts).with_columns(pl.col("piece").str.strip_chars().alias("line"))
    line = pl.col("line")
    if cfg.remove_citations:
        lines = lines.with_columns(line.str.replace_all(CITATION_PATTERN, "").alias("line_c"))
    else:
        lines = lines.with_columns(line.alias("line_c"))
    lc = pl.col("line_c")
    lower = lc.str.to_lowercase()
    false = pl.lit(False)
    too_long = line.str.contains(r"\S{%d}" % (cfg.max_word_length + 1)) if cfg.max_word_length else false
    no_term = (
        (~lc.str.contains(r"""[.?!"']$""") | lc.str.ends_with("...")) if cfg.remove_no_terminal_punct_lines else false
    )
    few = (line.str.count_matches(r"\S+") < cfg.min_words_per_line) if cfg.min_words_per_line else false
    lines = lines.with_columns(
        too_long.alias("too_long_word"),
        (~too_long & no_term).alias("no_terminal_punct"),
        (~too_long & ~no_term & few).alias("too_few_words"),
    ).with_columns((~pl.col("too_long_word") & ~pl.col("no_terminal_punct") & ~pl.col("too_few_words")).alias("cand"))
    cand = pl.col("cand")
    js = (lower.str.contains("javascript", literal=True)) if cfg.remove_javascript_lines else false
    policy = (
        pl.any_horizontal([lower.str.contains(p, literal=True) for p in POLICY_SUBSTRINGS])
        if cfg.remove_policy_lines
        else false
    )
    lines = (
        lines.with_columns(
            (cand & lower.str.contains("lorem ipsum", literal=True)).alias("lorem"),
            (cand & js).alias("javascript"),
        )
        .with_columns(
            (cand & ~pl.col("javascript") & lc.str.contains("{", literal=True)).alias("curly"),
            (cand & ~pl.col("javascript") & policy).alias("policy"),
        )
        .with_columns((cand & ~pl.col("javascript") & ~pl.col("policy")).alias("kept"))
    )
    kept = lines.filter(pl.col("kept")).with_columns(
        pl.max_horizontal(lc.str.count_matches(r"[.!?]+(\s|$)"), pl.lit(1)).alias("sentences")
    )
    joined = kept.group_by("doc").agg(lc.str.join("\n").alias("text"), pl.col("sentences").sum())
    agg = lines.group_by("doc").agg(
        pl.col("lorem").sum(), pl.col("curly").sum(), *[pl.col(r).sum() for r in REMOVAL_REASONS]
    )
    out = pl.DataFrame({"doc": pl.Series(range(n), dtype=pl.UInt32)}).join(joined, on="doc", how="left")
    cleaned = out.sort("doc")["text"].fill_null("").str.strip_chars()
    stats = {
        "c4_lorem_lines": per_doc(agg, n, "lorem"),
        "c4_curly_lines": per_doc(agg, n, "curly"),
        "c4_sentences": per_doc(joined, n, "sentences"),
    }
    for r in REMOVAL_REASONS:
        stats[f"c4_removed_{r}"] = per_doc(agg, n, r)
    return cleaned.alias(texts.name), pl.DataFrame(stats)


def rules(cfg: C4Config) -> list[Rule]:
    if not cfg.enabled:
        return []
    return (
        (rule_if("c4_lorem_ipsum", "c4_lorem_lines", ">", 0) if cfg.reject_lorem_ipsum else [])
        + (rule_if("c4_curly_bracket", "c4_curly_lines", ">", 0) if cfg.reject_curly_bracket else [])
        + rule_if("c4_too_few_sentences", "c4_sentences", "<", cfg.min_num_sentences)
    )
