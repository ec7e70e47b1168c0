"""Benchmark decontamination by n-gram overlap.

Text rows: lowercase word 13-grams (Brown et al. 2020, "Language Models are Few-Shot
Learners", App. C). Code rows: 10-token n-grams of the tiktoken cl100k_base encoding.
Each eval set (JSONL with a text field, or plain text with one item per line) is turned
into a table of n-gram hashes; a partition's n-grams are hashed in one numpy pass and
joined against it. A row's measured value is the number of its distinct n-grams found in
the benchmark with the most overlap; the rule is `decontam:<benchmark name>`.
Items shorter than n are skipped (they cannot share an n-gram).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from distillery.encoding import get_encoding
from filters.config import DecontamConfig
from filters.textsplit import explode_pieces, ngram_hashes, splitmix64

NORM_WORD = r"[\p{L}\p{N}]+"


class EvalSetError(ValueError):
    """An eval set file is missing or unreadable (raised at start-up, not per row)."""


def read_eval_items(path: str, field: str = "text") -> list[str]:
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvalSetError(f"eval set {path!r} cannot be read: {exc.strerror}") from None
    items = []
    jsonl = p.suffix.lower() in (".jsonl", ".json")
    for line in raw.splitlines():
        if not line.strip():
            continue
        if jsonl:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalSetError(f"eval set {path!r}: bad JSON line ({exc.msg})") from None
            value = obj.get(field) if isinstance(obj, dict) else None
            if isinstance(value, str):
                items.append(value)
        else:
            items.append(line)
    return items


def text_grams(texts: pl.Series, n: int) -> pl.DataFrame:
    """(doc, g): distinct hashed lowercase word n-grams per text."""
    w = explode_pieces(texts.cast(pl.Utf8).fill_null("").str.to_lowercase().str.extract_all(NORM_WORD))
    starts, g = ngram_hashes(w["piece"].hash(seed=7).to_numpy(), w["doc"].to_numpy(), n)
    return pl.DataFrame({"doc": w["doc"].to_numpy()[starts], "g": g}).unique()


def code_grams(texts: pl.Series, n: int) -> pl.DataFrame:
    """(doc, g): distinct hashed n-grams of cl100k_base tokens per text."""
    enc = get_encoding("cl100k_base")
    toks = enc.encode_ordinary_batch(texts.cast(pl.Utf8).fill_null("").to_list())
    lists = pa.array(toks, type=pa.large_list(pa.uint32()))  # one C++ conversion, no loop per token
    flat = lists.flatten().to_numpy(zero_copy_only=False).astype(np.uint64)
    lens = np.diff(lists.offsets.to_numpy())
    doc = np.repeat(np.arange(len(toks), dtype=np.uint32), lens)
    starts, g = ngram_hashes(splitmix64(flat), doc, n)
    return pl.DataFrame({"doc": doc[starts], "g": g}).unique()


@lru_cache(maxsize=16)
def _eval_table(name: str, path: str, field: str, n: int, code: bool, mtime: float) -> pl.DataFrame:
    items = pl.Series(read_eval_items(path, field), dtype=pl.Utf8)
    grams = code_grams(items, n) if code else text_grams(items, n)
    return grams.select("g").unique().with_columns(pl.lit(name).alias("bench"))


def eval_tables(cfg: DecontamConfig, code: bool) -> pl.DataFrame:
    """(g, bench) for every configured eval set; cached per file version."""
    frames = []
    for es in cfg.eval_sets:
        try:
            mtime = Path(es.path).stat().st_mtime
        except OSError as exc:
            raise EvalSetError(f"eval set {es.name!r} at {es.path!r}: {exc.strerror}") from None
        frames.append(_eval_table(es.name, es.path, es.field, cfg.code_ngram if code else cfg.text_ngram, code, mtime))
    return pl.concat(frames) if frames else pl.DataFrame(schema={"g": pl.UInt64, "bench": pl.Utf8})


def overlaps(texts: pl.Series, is_code: pl.Series, cfg: DecontamConfig) -> pl.DataFrame:
    """Per row: decontam_bench (the most-overlapping benchmark) and decontam_count."""
    n = len(texts)
    out = pl.DataFrame({"doc": pl.Series(range(n), dtype=pl.UInt32)})
    if not cfg.enabled or not cfg.eval_sets or n == 0:
        return pl.DataFrame(
            {"decontam_bench": [None] * n, "decontam_count": [None] * n},
            schema={"decontam_bench": pl.Utf8, "decontam_count": pl.Float64},
        )
    order = {es.name: i for i, es in enumerate(cfg.eval_sets)}
    hits = []
    for code in (False, True):
        idx = np.flatnonzero(is_code.to_numpy() == code)
        if len(idx) == 0:
            continue
        sub = texts.gather(idx)
        grams = code_grams(sub, cfg.code_ngram) if code else text_grams(sub, cfg.text_ngram)
        grams = grams.with_columns(pl.Series("doc", idx.astype(np.uint32)).gather(grams["doc"]))
        hits.append(grams.join(eval_tables(cfg, code), on="g").group_by("doc", "bench").agg(pl.len().alias("count")))
    hits_df = pl.concat(hits) if hits else pl.DataFrame(schema={"doc": pl.UInt32, "bench": pl.Utf8, "count": pl.UInt32})
    best = (
        hits_df.with_columns(pl.col("bench").replace_strict(order, return_dtype=pl.Int64).alias("rank"))
        .sort(["doc", "count", "rank"], descending=[False, True, False])
        .group_by("doc", maintain_order=True)
        .first()
    )
    res = out.join(best, on="doc", how="left").sort("doc")
    return pl.DataFrame(
        {
            "decontam_bench": res["bench"],
            "decontam_count": res["count"].cast(pl.Float64),
        }
    )
