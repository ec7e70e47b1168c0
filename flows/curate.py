"""Curate: filter every new `documents` partition, then deduplicate them against each other
and against everything already kept in the lake.

Steps (each partition's intermediate is written atomically under the batch's work folder,
so a crash redoes only unfinished partitions):
1. filter   per partition: rules, PII redaction, decontamination -> candidates + rejects
2. keys     per partition: exact and near-duplicate signatures of the candidates
3. dedup    once: clusters over new keys and the kept rows' keys of earlier batches
4. finish   per partition: candidates split into curated and duplicates; commit the batch
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import filters
from distillery.accounting import total
from distillery.batch import Batch, task_groups
from distillery.config import PipelineConfig
from distillery.generations import curate_gen, current_files
from distillery.lake import Lake, write_parquet_atomic
from distillery.plans import curate_plan
from distillery.result import PartitionResult
from filters.dedup import kept_keys, survivor_order
from flows.reporting import Progress, finish_stage

WORK_TABLES = ("candidates", "rejects", "quarantine", "keys")


def filter_step(cfg: PipelineConfig, lake: Lake, batch: Batch, part: str, input_file: str) -> str:
    """Filter one partition and compute its candidates' dedup keys; return the work folder."""
    work = batch.scratch / part
    if (work / "keys.parquet").exists():
        return str(work)
    docs = pl.read_parquet(input_file)
    result = filters.filter_partition(docs, cfg.curate, lake.root)
    keys = filters.dedup_keys(result.tables.get("curated", docs.clear()), cfg.curate, lake.root)
    for name, df in (("candidates", result.tables.get("curated")), ("rejects", result.tables.get("rejects")),
                     ("quarantine", result.tables.get("quarantine"))):
        write_parquet_atomic((df if df is not None else pl.DataFrame()).to_arrow(), work / f"{name}.parquet")
    write_parquet_atomic(pl.DataFrame({"rows_in": [result.rows_in]}).to_arrow(), work / "rows_in.parquet")
    write_parquet_atomic(keys.to_arrow(), work / "keys.parquet")  # written last: the step's commit point
    return str(work)


def dedup_step(cfg: PipelineConfig, lake: Lake, batch: Batch, works: list[str]) -> str:
    """Find duplicates among the new candidates and against kept rows of earlier batches."""
    out = batch.scratch / "duplicates.parquet"
    if out.exists():
        return str(out)
    existing_files = current_files(curate_gen(cfg, lake), "dedup_keys")
    existing = None
    if existing_files:
        existing = pl.concat([pl.read_parquet(f) for f in existing_files], how="diagonal_relaxed")
    frames = []
    for i, w in enumerate(works):
        keys = pl.read_parquet(Path(w) / "keys.parquet")
        frames.append(keys.with_columns(_part=pl.lit(i, pl.Int32), _row=pl.int_range(pl.len(), dtype=pl.Int64)))
    new = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    if new.height == 0:
        write_parquet_atomic(pl.DataFrame({"_part": [], "_row": [], "duplicate_of": [], "method": [], "similarity": []},
                                          schema={"_part": pl.Int32, "_row": pl.Int64, "duplicate_of": pl.String,
                                                  "method": pl.String, "similarity": pl.Float64}).to_arrow(), out)
        return str(out)
    existing, new = survivor_order(existing, new)
    dups = filters.find_duplicates(new.drop("_part", "_row"), existing, cfg.curate)
    dups = dups.join(new.select("order", "_part", "_row"), on="order").select(
        "_part", "_row", "duplicate_of", "method", "similarity")
    write_parquet_atomic(dups.to_arrow(), out)
    return str(out)


def finish_step(cfg: PipelineConfig, batch: Batch, part: str, index: int, work: str, input_file: str,
                duplicates: str) -> dict:
    """Split one partition's candidates into curated rows and duplicates, and write it."""
    if batch.part_done(part):
        return batch.ledger(part)
    w = Path(work)
    cand = pl.read_parquet(w / "candidates.parquet").with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    keys = pl.read_parquet(w / "keys.parquet")
    dups = pl.read_parquet(duplicates).filter(pl.col("_part") == index).drop("_part")
    marked = cand.join(dups, on="_row", how="left", maintain_order="left")
    is_dup = pl.col("duplicate_of").is_not_null()
    curated = marked.filter(~is_dup).drop("_row", "duplicate_of", "method", "similarity")
    duplicate_rows = marked.filter(is_dup).drop("_row").with_columns(stage=pl.lit("curate"))
    result = PartitionResult(
        rows_in=pl.read_parquet(w / "rows_in.parquet")["rows_in"][0],
        tables={
            "curated": curated,
            "duplicates": duplicate_rows,
            "rejects": _nonempty(w / "rejects.parquet"),
            "quarantine": _nonempty(w / "quarantine.parquet"),
            "dedup_keys": kept_keys(keys, curated),
        },
    )
    return batch.write_part(part, [Path(input_file).stem], result)


def _nonempty(path: Path) -> pl.DataFrame | None:
    df = pl.read_parquet(path)
    return df if df.width else None


@task(name="filter_partitions", cache_policy=NO_CACHE)
def filter_task(cfg: PipelineConfig, lake_root: str, plan_key: str, group: list[dict]) -> list[str]:
    lake = Lake(lake_root)
    batch = Batch(curate_gen(cfg, lake), "curate", plan_key)
    return [filter_step(cfg, lake, batch, p["part"], p["input"]) for p in group]


@task(name="find_duplicates", cache_policy=NO_CACHE)
def dedup_task(cfg: PipelineConfig, lake_root: str, plan_key: str, works: list[str]) -> str:
    lake = Lake(lake_root)
    return dedup_step(cfg, lake, Batch(curate_gen(cfg, lake), "curate", plan_key), works)


@task(name="write_curated_partitions", cache_policy=NO_CACHE)
def finish_task(cfg: PipelineConfig, lake_root: str, plan_key: str, group: list[dict], duplicates: str) -> list[dict]:
    batch = Batch(curate_gen(cfg, Lake(lake_root)), "curate", plan_key)
    return [finish_step(cfg, batch, p["part"], p["index"], p["work"], p["input"], duplicates) for p in group]


@flow(name="curate", log_prints=True)
def curate_flow(cfg: PipelineConfig) -> dict:
    """Curate every new documents partition; return this run's counts."""
    lake = Lake(cfg.lake_root)
    started = dt.datetime.now(dt.timezone.utc)
    with lake.writer_lock(cfg.run.lock_timeout_s):
        plan_key, parts, skipped = curate_plan(cfg, lake)
        # Two task runs per group plus one for dedup: keep the total under the cap.
        groups = task_groups(parts, max(1, (cfg.run.max_partitions - 1) // 2))
        progress = Progress("curate", 2 * len(parts) + 1)
        rows, batch_name, committed = [], None, None
        if parts:
            futures = [filter_task.submit(cfg, str(lake.root), plan_key, g) for g in groups]
            works = []
            for g, f in zip(groups, futures):
                works += f.result()
                progress.advance(len(g))
            dups = dedup_task.submit(cfg, str(lake.root), plan_key, works).result()
            progress.advance()
            for i, p in enumerate(parts):
                p.update(index=i, work=works[i])
            futures = [finish_task.submit(cfg, str(lake.root), plan_key, g, dups) for g in groups]
            for g, f in zip(groups, futures):
                rows += f.result()
                progress.advance(len(g))
            committed = Batch(curate_gen(cfg, lake), "curate", plan_key).commit()
            batch_name = committed.name if committed else None
        counts = total(rows, "curate")
        print(f"curate: {counts.rows_in} rows -> {counts.kept} kept, {counts.rejected} rejected, "
              f"{counts.duplicate} duplicates, {counts.quarantined} quarantined ({skipped} partitions done before)")
        return finish_stage(cfg, lake, "curate", started, counts, batch_name, skipped,
                            committed=[committed] if committed else [])
