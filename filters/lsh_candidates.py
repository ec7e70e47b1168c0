"""LSH candidate pairs for one band: every comparison a band bucket promises, with a bound.

Rows sharing (modality, band hash) in one band form a bucket. A new row is paired with
- the first `reps` rows of its bucket in survivor order (the rows most likely to be the
  cluster's survivors: kept rows and the earliest new ones), and
- the row just before it in the bucket (the chain of the earlier rule, so clusters that
  chain through edited copies stay joined).
Before this rule a row was paired with its neighbour only, and when verification rejected
that neighbour the row was never compared with anything else of the bucket (recall 0.87
on originals with 10-20 edited copies each, issue 15). Comparing with the bucket's first
rows as well finds them.

The bound: a new row gets at most `reps + 1` candidates per band, so a bucket of s rows
yields at most s * (reps + 1) pairs, never s^2 / 2 (a boilerplate text shared by a million
rows costs a million pairs, not 5 * 10^11). Kept rows are never paired with each other:
they were deduplicated when they were new.

The query runs in DuckDB on two relations with columns (o BIGINT order, m VARCHAR
modality, h UBIGINT band hash): `new` and `kept`. `kept` may be a scan of the lake's
Parquet files; DuckDB streams it through a semi join on the new rows' buckets and a
grouped aggregate of at most `reps + 1` orders per bucket, so memory grows with the new
rows and their buckets, not with the kept lake (and spills to the connection's
temp_directory past its memory_limit). `reps` is minhash.candidate_reps (filters/config.py).
"""

from __future__ import annotations

import duckdb
import polars as pl


def band_pairs_sql(new: str, kept: str | None, reps: int) -> str:
    """SQL giving distinct candidate pairs (u, v), u < v in order, v a new row, for one band.

    `new` and `kept` are table expressions with columns o, m, h (kept None: no kept rows)."""
    reps = int(reps)
    kept_part = ""
    if kept is not None:
        kept_part = f"""
        kin as (select k.o, k.m, k.h from ({kept}) k semi join (select distinct m, h from n) b using (m, h)),
        kb as (select m, h, min(o, {reps}) as firsts, max(o) as last from kin group by m, h),
        kr as (select m, h, unnest(list_distinct(list_append(firsts, last))) as o from kb),"""
    kept_rows = "union all select o, m, h, false from kr" if kept is not None else ""
    return f"""
        with n as (select o, m, h from ({new}) where h is not null),{kept_part}
        b as (select o, m, h, true as is_new from n {kept_rows}),
        r as (select o, m, h, is_new, row_number() over w as rk, lag(o) over w as prev
              from b window w as (partition by m, h order by o)),
        p as (select f.o as u, x.o as v from r x join r f on f.m = x.m and f.h = x.h and f.rk <= {reps} and f.o < x.o
              where x.is_new
              union all select prev as u, o as v from r where is_new and prev is not null)
        select distinct u, v from p"""


def band_pairs(con: duckdb.DuckDBPyConnection, new: str, kept: str | None, reps: int) -> pl.DataFrame:
    """The candidate pairs of one band: a frame (u, v) of int64 orders."""
    return con.sql(band_pairs_sql(new, kept, reps)).pl().select(pl.col("u").cast(pl.Int64), pl.col("v").cast(pl.Int64))
