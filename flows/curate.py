"""Curate: filter every new `documents` partition, then deduplicate them against each other
and against everything already kept in the lake.

Steps (filters/curate_steps.py): filter per partition -> exact duplicates once -> LSH
candidates, one task per band range -> verify once -> write the curated partitions; the
batch commits when all are written.
"""

from __future__ import annotations

from prefect import flow

from distillery.config import PipelineConfig
from distillery.plans import commit_curate, plan_curate
from distillery.stage import Report, Stage, Step
from filters.curate_steps import band_tasks, dedup_band_step, dedup_exact_step, dedup_step, filter_parts, finish_parts
from flows.driver import run_stage
from flows.run_identity import StageArgs


def report(cfg, plan, counts, results, states, note) -> Report:
    return Report(
        f"curate: {counts.rows_in} rows -> {counts.kept} kept, {counts.rejected} rejected, "
        f"{counts.duplicate} duplicates, {counts.quarantined} quarantined "
        f"({plan.skipped} partitions done before)"
    )


CURATE = Stage(
    "curate",
    plan_curate,
    (
        Step("filter_partitions", filter_parts, output="work"),
        Step("find_exact_duplicates", dedup_exact_step, per_part=False, output="kept"),
        Step("find_candidates", dedup_band_step, per_part=False, output="pairs", fan_out=band_tasks),
        Step("find_duplicates", dedup_step, per_part=False, output="duplicates"),
        Step("write_curated_partitions", finish_parts),
    ),
    report,
    committed=commit_curate,
)


@flow(name="curate", log_prints=True)
def curate_flow(cfg: PipelineConfig | StageArgs) -> dict:
    """Curate every new documents partition; return this run's counts."""
    return run_stage(CURATE, cfg)
