"""Gather: read every configured source into `documents` (and `rejects`, `quarantine`).

Per source: list its items, drop the ones already gathered unchanged (same uri and
fingerprint in the source's `files` ledger), cut the rest into partitions, read each
partition in a task, commit them as one batch.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import sources
from distillery.accounting import total
from distillery.batch import Batch
from distillery.config import PipelineConfig
from distillery.generations import gather_gens
from distillery.lake import Lake
from distillery.plans import gather_plan
from filters import pii
from flows.reporting import Progress, finish_stage

def gather_partition(cfg: PipelineConfig, lake: Lake, source_name: str, batch: Batch, part: str, plan: str) -> dict:
    """Read one partition of items into the batch; a partition finished before is not redone."""
    if batch.part_done(part):
        return batch.ledger(part)
    src = next(s for s in cfg.sources if s.name == source_name)
    items = [
        sources.SourceItem(source=source_name, uri=r["uri"], path=r["path"], fingerprint=r["fingerprint"])
        for r in pl.read_parquet(plan).iter_rows(named=True)
    ]
    result = sources.read_items(src, items, lake.media_root)
    if cfg.gather.redact:
        result = pii.redact_tables(result, cfg.curate.pii)
    return batch.write_part(part, [plan_name(plan)], result)


def plan_name(plan: str) -> str:
    return Path(plan).stem


@task(name="plan_source", cache_policy=NO_CACHE)
def plan_source_task(cfg: PipelineConfig, lake_root: str, source_name: str) -> tuple[str, list[dict], int]:
    return gather_plan(cfg, Lake(lake_root), source_name)


@task(name="gather_partition", cache_policy=NO_CACHE)
def gather_partition_task(cfg: PipelineConfig, lake_root: str, source_name: str, gen: str, plan_key: str,
                          part: str, plan: str) -> dict:
    return gather_partition(cfg, Lake(lake_root), source_name, Batch(Path(gen), "gather", plan_key), part, plan)


@flow(name="gather", log_prints=True)
def gather_flow(cfg: PipelineConfig) -> dict:
    """Gather every source of `cfg` into the lake; return this run's counts."""
    lake = Lake(cfg.lake_root)
    started = dt.datetime.now(dt.timezone.utc)
    with lake.writer_lock(cfg.run.lock_timeout_s):
        gens = gather_gens(cfg, lake)
        plans = {name: plan_source_task.submit(cfg, str(lake.root), name) for name in gens}
        plans = {name: f.result() for name, f in plans.items()}
        progress = Progress("gather", sum(len(p[1]) for p in plans.values()))
        rows, skipped, batches, dirs = [], 0, [], []
        for name, (plan_key, parts, n_skipped) in plans.items():
            skipped += n_skipped
            if not parts:
                continue
            futures = [
                gather_partition_task.submit(cfg, str(lake.root), name, str(gens[name]), plan_key, p["part"], p["plan"])
                for p in parts
            ]
            for f in futures:
                rows.append(f.result())
                progress.advance()
            committed = Batch(gens[name], "gather", plan_key).commit()
            if committed is not None:
                batches.append(committed.name)
                dirs.append(committed)
        counts = total(rows, "gather")
        print(f"gather: {counts.rows_in} items in {counts.partitions} partitions, {skipped} unchanged items skipped")
        return finish_stage(cfg, lake, "gather", started, counts, ",".join(batches), skipped,
                            note=f"{skipped} unchanged items skipped", committed=dirs)
