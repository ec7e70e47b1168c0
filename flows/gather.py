"""Gather: read every configured source into `documents` (and `rejects`, `quarantine`).

Per source: list its items, drop the ones already gathered unchanged (same uri and
fingerprint in the source's `files` ledger), cut the rest into partitions (plans.plan_gather),
read each partition in a task, commit them as one batch per source.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import flow

import sources
from distillery.config import PipelineConfig
from distillery.plans import plan_gather
from distillery.stage import Report, Stage, Step, StepContext
from filters import pii
from flows.driver import run_stage
from flows.run_identity import StageArgs


def gather_partitions(ctx: StepContext, group: list[dict]) -> list[dict]:
    """Read partitions of items into the batch; a partition finished before is not redone."""
    return [gather_partition(ctx, p["source"], p["part"], p["plan"]) for p in group]


def gather_partition(ctx: StepContext, source_name: str, part: str, plan: str) -> dict:
    batch, cfg = ctx.batch, ctx.cfg
    if batch.part_done(part):
        return batch.ledger(part)
    src = next(s for s in cfg.sources if s.name == source_name)
    items = [
        sources.SourceItem(
            source=source_name,
            uri=r["uri"],
            path=r["path"],
            fingerprint=r["fingerprint"],
            span=(r["span_start"], r["span_stop"], r["span_row"]) if r.get("span_start") is not None else None,
        )
        for r in pl.read_parquet(plan).iter_rows(named=True)
    ]
    result = sources.read_items(src, items, ctx.lake.media_root)
    if cfg.gather.redact:
        result = pii.redact_tables(result, cfg.curate.pii)
    return batch.write_part(part, [Path(plan).stem], result)


def report(cfg, plan, counts, results, states, note) -> Report:
    return Report(
        f"gather: {counts.rows_in} items in {counts.partitions} partitions, {plan.skipped} unchanged items skipped",
        note=f"{plan.skipped} unchanged items skipped",
    )


GATHER = Stage(
    "gather",
    plan_gather,
    (Step("gather_partition", gather_partitions),),
    report,
    plan_task="plan_source",
    join_batches=True,
)


@flow(name="gather", log_prints=True)
def gather_flow(cfg: PipelineConfig | StageArgs) -> dict:
    """Gather every source of `cfg` into the lake; return this run's counts."""
    return run_stage(GATHER, cfg)
