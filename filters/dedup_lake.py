"""Duplicates of a run's new rows against the kept lake, out of core.

The kept rows' keys are stored in two row-aligned tables per partition (`split_keys`):
  dedup_keys      what candidate generation reads: id, modality, exact, one UInt64 column
                  per LSH band (band_0 ...), phash, frame_phashes: about 150 bytes a text row
  dedup_sketches  what verification reads, only for candidate rows: signature, sketch, in
                  row groups of 256 rows (distillery.lake.ROW_GROUP_ROWS)
A kept row's survivor order is its position in the concatenation of the generation's
dedup_keys files (sorted by name), as before: file start (from the Parquet footers) + row.

A run goes in three steps (filters/curate_steps.py makes them stage steps):
1. `exact_step`      new rows' exact keys against the kept ones: a DuckDB semi join that
                     streams the kept `exact` column; writes the new rows (with their
                     exact-duplicate flag) and the exact duplicates to the work folder.
2. `band_step`       one task per band range: `lsh_candidates.band_pairs` on the new rows
                     and a scan of the kept band column; writes candidate pairs.
3. `verify_step`     reads the sketches of the candidate rows only, verifies the pairs and
                     resolves survivors (`dedup.cluster_verified`); adds the media
                     near-duplicates (images, videos) of the new rows and writes the
                     duplicates file the finish step reads.
Every DuckDB connection runs under `memory_limit` with a `temp_directory` under the work
folder, so its memory is bounded by configuration, not by the lake; what Python holds is
O(new rows + candidate pairs). Output is that of `dedup.find_duplicates` on the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow.parquet as pq

from filters.config import CurateConfig
from filters.dedup import DUP_SCHEMA, KEY_SCHEMA, cluster_verified, image_duplicates, video_duplicates
from filters.lsh_candidates import band_pairs

SKETCH_COLUMNS = ("signature", "sketch")
MEDIA_COLUMNS = ("phash", "frame_phashes")


@dataclass(frozen=True)
class Limits:
    """DuckDB's budget for one dedup task: memory (MiB) and threads."""

    memory_mb: int = 1024
    threads: int = 2


def sql_string(value: object) -> str:
    """A SQL string literal of `value` (a lake path may hold a quote)."""
    return "'" + str(value).replace("'", "''") + "'"


def band_column(b: int) -> str:
    return f"band_{b}"


def split_keys(keys: pl.DataFrame, num_bands: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A KEY_SCHEMA frame as stored: (dedup_keys, dedup_sketches), row-aligned."""
    bands = [
        pl.col("bands").list.get(b, null_on_oob=True).cast(pl.UInt64).alias(band_column(b)) for b in range(num_bands)
    ]
    compact = keys.select("id", "modality", "exact", *bands, *MEDIA_COLUMNS)
    return compact, keys.select(*SKETCH_COLUMNS)


@dataclass(frozen=True)
class KeptLake:
    """The kept rows' key files (aligned pairs) and the survivor order each file starts at."""

    keys: tuple[str, ...]
    sketches: tuple[str, ...]
    starts: tuple[int, ...]
    total: int

    @staticmethod
    def of(keys: list[Path], sketches: list[Path]) -> KeptLake:
        if [p.name.split("-", 1)[1] for p in keys] != [p.name.split("-", 1)[1] for p in sketches]:
            raise ValueError("dedup_keys and dedup_sketches files do not pair up")
        counts = [pq.ParquetFile(p).metadata.num_rows for p in keys]
        starts = np.r_[0, np.cumsum(counts)].astype(int)
        return KeptLake(tuple(map(str, keys)), tuple(map(str, sketches)), tuple(starts[:-1].tolist()), int(starts[-1]))

    def scan(self, select: str, columns: list[str], where: str) -> str:
        """A DuckDB table expression over the kept keys: `o` (survivor order) and `select`
        (over `k`, from `columns`) of the rows matching `where` (over the file's columns,
        e.g. a semi join on the new rows' keys). The order is attached after the filter, so
        the scan itself reads `columns` and nothing else (no per-row join on file names)."""
        files = ", ".join(sql_string(f) for f in self.keys)
        cols = ", ".join(["filename", "file_row_number", *columns])
        return (
            f"select s.start + k.file_row_number as o, {select} from "
            f"(select {cols} from read_parquet([{files}], filename = true, file_row_number = true) r where {where}) k "
            "join kept_starts s using (filename)"
        )


def connect(work: Path, limits: Limits, kept: KeptLake | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection bounded by `limits`, spilling under `work`; with `kept_starts`."""
    tmp = work / "duckdb-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"memory_limit": f"{int(limits.memory_mb)}MB", "threads": int(limits.threads)})
    con.execute(f"set temp_directory = {sql_string(tmp)}")
    con.execute("set preserve_insertion_order = false")
    if kept is not None and kept.keys:
        starts = pl.DataFrame(
            {"filename": list(kept.keys), "start": list(kept.starts)}, schema={"filename": pl.Utf8, "start": pl.Int64}
        )
        con.register("kept_starts", starts.to_arrow())
    return con


def exact_step(new: pl.DataFrame, kept: KeptLake, cfg: CurateConfig, work: Path, limits: Limits) -> None:
    """Write `new.parquet` (the new key rows, `order` after the kept rows', `_exact_dup`)
    and `exact.parquet` (their exact duplicates, DUP_SCHEMA) under `work`."""
    work.mkdir(parents=True, exist_ok=True)
    new = new.with_columns(order=pl.int_range(pl.len(), dtype=pl.Int64) + kept.total)
    dups = pl.DataFrame(schema=DUP_SCHEMA)
    if cfg.dedup.enabled and cfg.dedup.exact and new.height:
        con = connect(work, limits, kept)
        try:
            con.register("new_keys", new.select("order", "id", "modality", "exact").to_arrow())
            kept_part = ""
            if kept.keys:
                scan = kept.scan(
                    "coalesce(k.modality, '') as m, k.id, k.exact",
                    ["id", "modality", "exact"],
                    "r.exact in (select exact from n)",
                )
                kept_part = f"""k as (select k.o, k.id, k.m, k.exact from ({scan}) k
                                      semi join (select distinct m, exact from n) b using (m, exact)),
                                a as (select o, id, m, exact from k union all select o, id, m, exact from n),"""
            else:
                kept_part = "a as (select o, id, m, exact from n),"
            dups = con.sql(f"""
                with n as (select "order" as o, id, coalesce(modality, '') as m, exact from new_keys where exact is not null),
                {kept_part}
                f as (select m, exact, arg_min(id, o) as first_id, min(o) as first_o from a group by m, exact)
                select n.o as "order", n.id, f.first_id as duplicate_of,
                       case when starts_with(n.exact, 'audio:') then 'audio' else 'exact' end as method, 1.0 as similarity
                from n join f using (m, exact) where n.o > f.first_o order by n.o""").pl()
        finally:
            con.close()
    flagged = new.with_columns(_exact_dup=pl.col("order").is_in(dups["order"].implode()))
    flagged.write_parquet(work / "new.parquet")
    dups.select([pl.col(c).cast(t) for c, t in DUP_SCHEMA.items()]).write_parquet(work / "exact.parquet")


def band_ranges(num_bands: int, tasks: int) -> list[tuple[int, int]]:
    """`num_bands` cut into at most `tasks` contiguous ranges (lo, hi)."""
    edges = np.linspace(0, num_bands, min(max(tasks, 1), num_bands) + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]


def band_step(lo: int, hi: int, kept: KeptLake, cfg: CurateConfig, work: Path, limits: Limits) -> str:
    """Candidate pairs of bands [lo, hi) to `pairs-<lo>-<hi>.parquet`; returns its path."""
    out = work / f"pairs-{lo}-{hi}.parquet"
    con = connect(work / f"band-{lo}", limits, kept)
    try:
        frames = []
        rows = pl.read_parquet(work / "new.parquet", columns=["order", "modality", "bands", "_exact_dup"])
        rows = rows.filter(~pl.col("_exact_dup") & pl.col("bands").is_not_null())
        for b in range(lo, hi):
            new = rows.select(
                pl.col("order").alias("o"),
                pl.col("modality").fill_null("").alias("m"),
                pl.col("bands").list.get(b, null_on_oob=True).alias("h"),
            )
            con.register("new_band", new.to_arrow())
            col = band_column(b)
            kept_rel = None
            if kept.keys:
                kept_rel = kept.scan(
                    f"coalesce(k.modality, '') as m, k.{col} as h",
                    ["modality", col],
                    f"r.{col} in (select h from new_band)",
                )
            frames.append(band_pairs(con, "select * from new_band", kept_rel, cfg.dedup.minhash.candidate_reps))
            con.unregister("new_band")
    finally:
        con.close()
    pl.concat(frames).unique().write_parquet(out)
    return str(out)


def _kept_rows(kept: KeptLake, orders: np.ndarray, columns: list[str]) -> pl.DataFrame:
    """The kept rows at `orders` (sorted): `order`, id and `columns` of dedup_sketches, read
    file by file and row group by row group, only the groups that hold a wanted row."""
    starts = np.asarray(kept.starts)
    file_of = np.searchsorted(starts, orders, side="right") - 1
    frames = []
    for f in np.unique(file_of):
        rows = orders[file_of == f] - starts[f]
        parts = []
        for path, cols in ((kept.keys[f], ["id"]), (kept.sketches[f], columns)):
            pf = pq.ParquetFile(path)
            bounds = np.r_[0, np.cumsum([pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])]
            group = np.searchsorted(bounds, rows, side="right") - 1
            # one row group at a time: memory holds one group (ROW_GROUP_ROWS), not the file
            parts.append(
                pl.concat(
                    [
                        pl.from_arrow(pf.read_row_group(int(g), columns=cols))[rows[group == g] - bounds[g]]
                        for g in np.unique(group)
                    ]
                )
            )
        frames.append(pl.concat(parts, how="horizontal").with_columns(order=pl.Series(orders[file_of == f])))
    schema = {"order": pl.Int64, "id": pl.Utf8} | {c: KEY_SCHEMA[c] for c in columns}
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat(frames).select([pl.col(c).cast(t) for c, t in schema.items()])


def _kept_media(kept: KeptLake, work: Path, limits: Limits) -> pl.DataFrame | None:
    """The kept image and video rows' keys (rows of a text lake: none)."""
    if not kept.keys:
        return None
    con = connect(work, limits, kept)
    try:
        cols = ["id", "modality", *MEDIA_COLUMNS]
        scan = kept.scan(", ".join(f"k.{c}" for c in cols), cols, "r.phash is not null or r.frame_phashes is not null")
        media = con.sql(f'select o as "order", * exclude (o) from ({scan})').pl()
    finally:
        con.close()
    return media if media.height else None


def verify_step(pair_files: list[str], kept: KeptLake, cfg: CurateConfig, work: Path, limits: Limits) -> pl.DataFrame:
    """All duplicates among the new rows (DUP_SCHEMA, sorted by order)."""
    out: list[pl.DataFrame] = [pl.read_parquet(work / "exact.parquet")]
    new_all = pl.scan_parquet(work / "new.parquet").filter(~pl.col("_exact_dup"))
    if cfg.dedup.enabled and pair_files:
        pairs = pl.concat([pl.read_parquet(f) for f in pair_files]).unique().sort("u", "v")
        u, v = pairs["u"].to_numpy(), pairs["v"].to_numpy()
        wanted = np.unique(np.r_[u, v])
        cols = list(SKETCH_COLUMNS)
        new_rows = new_all.filter(pl.col("order").is_in(pl.Series(wanted[wanted >= kept.total]).implode()))
        new_rows = new_rows.select("order", "id", *cols).collect()
        rows = pl.concat([_kept_rows(kept, wanted[wanted < kept.total], cols), new_rows]).sort("order")
        rows = rows.with_columns(is_new=pl.col("order") >= kept.total)
        if len(u):
            out.append(cluster_verified(rows, u, v, cfg))
    media_new = new_all.filter(pl.col("phash").is_not_null() | pl.col("frame_phashes").is_not_null())
    media_new = media_new.select("order", "id", "modality", *MEDIA_COLUMNS).collect()
    if cfg.dedup.enabled and media_new.height:
        kept_media = _kept_media(kept, work, limits)
        media = pl.concat([f for f in (kept_media, media_new) if f is not None], how="diagonal_relaxed").sort("order")
        media = media.with_columns(is_new=pl.col("order") >= kept.total)
        out += [image_duplicates(media, cfg), video_duplicates(media, cfg)]
    found = [o.select([pl.col(c).cast(t) for c, t in DUP_SCHEMA.items()]) for o in out if o is not None and o.height]
    return pl.concat(found).sort("order") if found else pl.DataFrame(schema=DUP_SCHEMA)
