"""`filter_partition`: every curate filter over one partition, each row to exactly one place.

Order of the rule table (the families of filters.families.FAMILIES; the first failing
rule is the one recorded):

  0. empty_text                 text/code rows whose text is blank
  1. language_*                 text rows (py3langid)
  2. gopher_dup_* / gopher_top_* (repetition), 3. gopher_* (quality)   text rows, raw text
  4. c4_*                       text rows, after C4's line removal
  5. fineweb_*                  text rows, on the C4-cleaned text
  6. code_*                     code rows
  7. image_* / audio_* / video_*  media rows
  8. decontam:<benchmark>       text and code rows (action "drop"; "flag" only marks meta)

Rows that cannot be judged (a text/code row without text, an unknown modality, media
whose bytes are missing or undecodable) go to quarantine with a reason code. Kept rows
get the C4-cleaned text; kept and rejected rows get PII/secret redaction and meta keys
language, language_score, redactions, decontam (flag mode); kept rows also c4_removed_lines.
All statistics are computed per family over the whole partition, then the rule table is
evaluated as one expression.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from distillery.result import PartitionResult
from distillery.tables import DOCUMENT, MODALITIES
from filters import c4, media, pii
from filters.config import CurateConfig
from filters.families import FAMILIES, Partition, Scope, scope
from filters.meta import add_key, json_str
from filters.rules import Rule, first_failure

STAGE = "curate"


def _scatter(sub: pl.DataFrame, idx: np.ndarray, n: int) -> pl.DataFrame:
    """Place the rows of `sub` (aligned with idx) into an n-row frame, nulls elsewhere."""
    base = pl.DataFrame({"_row": np.arange(n, dtype=np.int64)})
    if sub.width == 0:
        return base.drop("_row")
    return (
        base.join(sub.with_columns(pl.Series("_row", idx.astype(np.int64))), on="_row", how="left")
        .sort("_row")
        .drop("_row")
    )


def _counts_json(frame: pl.DataFrame) -> pl.Expr:
    """A JSON object {column: count} of the non-zero counts of each row; null when all zero."""
    parts = [
        pl.when(pl.col(c) > 0).then(pl.concat_str([pl.lit(f'"{c}":'), pl.col(c).cast(pl.Int64).cast(pl.Utf8)]))
        for c in frame.columns
    ]
    body = pl.concat_str(parts, separator=",", ignore_nulls=True)
    return pl.when(body == "").then(pl.lit(None, pl.Utf8)).otherwise(pl.concat_str([pl.lit("{"), body, pl.lit("}")]))


def filter_partition(docs: pl.DataFrame, cfg: CurateConfig, lake_root: Path) -> PartitionResult:
    """Filter one partition of DOCUMENT rows.

    Returns tables "curated" (DOCUMENT; kept rows, cleaned and redacted), "rejects" (REJECT,
    stage "curate", rule name and measured value; the original text, redacted, since secrets
    must not reach Parquet either) and "quarantine" (QUARANTINE). The row
    counts satisfy rows_in == curated + rejects + quarantine. `stats` holds counts per
    reject rule ("reject:<rule>"), quarantine reason ("quarantine:<reason>"), redaction kind
    ("redacted:<kind>", over curated and rejected text) and C4 line removal of kept rows
    ("c4_removed:<reason>").
    """
    docs = docs.select([c for c in DOCUMENT.names if c in docs.columns])
    for name in DOCUMENT.names:
        if name not in docs.columns:
            docs = docs.with_columns(pl.lit(None).cast(pl.from_arrow(DOCUMENT.empty_table()).schema[name]).alias(name))
    docs = docs.select(DOCUMENT.names)
    n = docs.height
    mod = docs["modality"].fill_null("")
    text = docs["text"].cast(pl.Utf8)
    is_text = (mod == "text").to_numpy()
    is_code = (mod == "code").to_numpy()
    textual = is_text | is_code

    # --- quarantine reasons that are not rules (first one wins) --------------------------------
    unknown = ~mod.is_in(list(MODALITIES)).to_numpy()
    no_text = textual & text.is_null().to_numpy()
    mprobe = media.probe(docs, cfg.media, lake_root)
    media_q = mprobe["media_reason"].is_not_null().to_numpy()
    quarantined = unknown | no_text | media_q
    q_reason = np.select(
        [unknown, no_text, media_q],
        ["unknown_modality", "text_missing", mprobe["media_reason"].to_numpy()],
        default=None,
    )
    q_error = np.select(
        [unknown, no_text, media_q],
        [
            "modality is not one of " + ", ".join(MODALITIES),
            "a text/code row has no text",
            mprobe["media_error"].to_numpy(),
        ],
        default=None,
    )

    # --- statistics and rules, family by family (filters.families, in rule-table order) -------
    # Web-text families (language, Gopher, C4, FineWeb) judge web pages; sources the config
    # exempts (question sets, instructions) skip them but still get PII and decontamination.
    exempt = docs["source"].is_in(cfg.web_rules_exempt_sources).to_numpy() if n else np.zeros(0, dtype=bool)
    part = Partition(docs, mprobe)
    frames: list[pl.DataFrame] = []
    table: list[Rule] = []
    for family in FAMILIES:
        if not family.enabled(cfg):
            continue
        idx = scope(family, mod, ~quarantined, exempt)
        frames.append(_scatter(family.stats(Scope(idx, part), cfg), idx, n))
        table += family.rules(cfg)
    stats = pl.concat(frames, how="horizontal")
    verdict = first_failure(stats, table)
    rejected = verdict["rule"].is_not_null().to_numpy() & ~quarantined
    kept = ~rejected & ~quarantined

    # --- output text: C4-cleaned for kept rows, original for rejects; both redacted ------------
    new_text = text.to_numpy().copy() if n else np.array([], dtype=object)
    t_idx = part.cleaned_idx
    if cfg.c4.enabled and len(t_idx):
        keep_t = kept[t_idx]
        new_text[t_idx[keep_t]] = part.cleaned.to_numpy()[keep_t]
    cur = docs.with_columns(pl.Series("text", new_text, dtype=pl.Utf8))
    meta = pl.col("meta")
    extra = {}
    if cfg.language.enabled:
        lang = stats["lang"]
        extra["language"] = (lang, json_str(pl.col("_v")))
        extra["language_score"] = (stats["lang_score"].fill_nan(None).round(4), pl.col("_v").cast(pl.Utf8))
    if cfg.c4.enabled:
        removed = stats.select(
            [pl.col(f"c4_removed_{r}").fill_nan(0).fill_null(0).alias(r) for r in c4.REMOVAL_REASONS]
        )
        removed_json = removed.select(_counts_json(removed)).to_series()
        extra["c4_removed_lines"] = (
            pl.select(pl.when(pl.lit(pl.Series(kept))).then(pl.lit(removed_json))).to_series(),
            pl.col("_v"),
        )
    stat_counts: dict[str, int] = {}
    if cfg.pii.enabled:
        # Rejected rows are stored too (rejects table), so secrets are redacted there as well.
        red_idx = np.flatnonzero((kept | rejected) & textual)
        red_text, counts = pii.redact(
            cur["text"].gather(red_idx), cfg.pii.kinds, cfg.pii.min_secret_length, cfg.pii.min_secret_entropy
        )
        new_text = cur["text"].to_numpy().copy()
        new_text[red_idx] = red_text.to_numpy()
        cur = cur.with_columns(pl.Series("text", new_text, dtype=pl.Utf8))
        full = _scatter(counts, red_idx, n)
        extra["redactions"] = (full.select(_counts_json(full)).to_series(), pl.col("_v"))
        for k in counts.columns:
            stat_counts[f"redacted:{k}"] = int(counts[k].sum())
    if cfg.decontam.enabled and cfg.decontam.action == "flag":
        flag = stats.select(
            pl.when(pl.col("decontam_count") >= cfg.decontam.min_overlaps).then(
                pl.concat_str(
                    [
                        pl.lit('{"benchmark":'),
                        json_str(pl.col("decontam_bench")),
                        pl.lit(',"overlaps":'),
                        pl.col("decontam_count").cast(pl.Int64).cast(pl.Utf8),
                        pl.lit("}"),
                    ]
                )
            )
        ).to_series()
        extra["decontam"] = (flag, pl.col("_v"))
    for key, (values, to_json) in extra.items():
        cur = cur.with_columns(values.alias("_v")).with_columns(add_key(meta, key, to_json).alias("meta")).drop("_v")

    mask = pl.Series(kept)
    curated = cur.filter(mask)
    rej_mask = pl.Series(rejected)
    rejects = cur.filter(rej_mask).with_columns(
        pl.lit(STAGE).alias("stage"),
        verdict["rule"].filter(rej_mask).alias("rule"),
        verdict["value"].filter(rej_mask).alias("value"),
    )
    q_mask = pl.Series(quarantined)
    quarantine = docs.filter(q_mask).select(
        pl.lit(STAGE).alias("stage"),
        "source",
        "uri",
        "id",
        pl.Series("reason", q_reason[quarantined], dtype=pl.Utf8),
        pl.Series("error", q_error[quarantined], dtype=pl.Utf8),
    )
    for r, c in rejects.group_by("rule").len().iter_rows():
        stat_counts[f"reject:{r}"] = int(c)
    for r, c in quarantine.group_by("reason").len().iter_rows():
        stat_counts[f"quarantine:{r}"] = int(c)
    for r in c4.REMOVAL_REASONS if cfg.c4.enabled else ():
        stat_counts[f"c4_removed:{r}"] = int(np.nansum(stats[f"c4_removed_{r}"].fill_null(0).to_numpy()[kept]))
    stat_counts["kept"] = int(kept.sum())
    return PartitionResult(
        rows_in=n,
        tables={"curated": curated, "rejects": rejects, "quarantine": quarantine},
        stats=stat_counts,
    )
