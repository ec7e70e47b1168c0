"""Distill: ask the teacher about every new curated partition; write `traces`.

Partitions run one after another because the teacher client already runs its requests
concurrently under the configured rate limits; running partitions side by side would
multiply the concurrency past what the endpoint allows. When the budget runs out, the
partitions finished so far are committed, the run ends with a note, and the next run
continues with the rest (the request cache means nothing is paid for twice).

Before any prompt is sent, and only when there is something to distill, the teacher is
checked (teacher/preflight.py): an unreachable one stops the run with one line naming the
URL and the cause, instead of every prompt being quarantined after its retries.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import polars as pl
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import teacher
from distillery.accounting import total
from distillery.batch import Batch, task_groups
from distillery.config import PipelineConfig
from distillery.generations import distill_gen
from distillery.lake import Lake
from distillery.plans import distill_plan
from flows.limits import teacher_requests
from flows.reporting import Progress, finish_stage


def distill_partition(cfg: PipelineConfig, lake: Lake, batch: Batch, part: str, input_file: str) -> dict:
    if batch.part_done(part):
        return batch.ledger(part)
    rows = pl.read_parquet(input_file)
    result = teacher.distill_partition(rows, cfg.distill, lake.cache_dir("teacher"), lake.media_root)
    # Request counts (sent, cached, retried) go to the run's artifact, not the lake: a resumed
    # run pays fewer requests for the same rows, and the lake must not differ for it.
    return {**batch.write_part(part, [Path(input_file).stem], result), "stats": dict(result.stats)}


@task(name="distill_partitions", cache_policy=NO_CACHE)
def distill_task(cfg: PipelineConfig, lake_root: str, plan_key: str, group: list[dict]) -> list[dict]:
    lake = Lake(lake_root)
    batch = Batch(distill_gen(cfg, lake), "distill", plan_key)
    # The global limit caps the teacher's concurrency across every worker of a deployment.
    with teacher_requests(cfg.distill.concurrency):
        return [distill_partition(cfg, lake, batch, p["part"], p["input"]) for p in group]


@flow(name="distill", log_prints=True)
def distill_flow(cfg: PipelineConfig) -> dict:
    """Distill every new curated partition; return this run's counts."""
    lake = Lake(cfg.lake_root)
    started = dt.datetime.now(dt.timezone.utc)
    with lake.writer_lock(cfg.run.lock_timeout_s):
        plan_key, parts, skipped = distill_plan(cfg, lake)
        if parts and cfg.distill.tasks:  # online and batch mode alike; raises TeacherUnreachable
            from teacher.preflight import check_teacher  # the client stack loads only to distill
            if (doubt := check_teacher(cfg.distill)) is not None:
                print(doubt, file=sys.stderr, flush=True)
        progress = Progress("distill", len(parts))
        batch, note, stats = Batch(distill_gen(cfg, lake), "distill", plan_key), "", {}
        for group in task_groups(parts, cfg.run.max_partitions):
            try:
                for r in distill_task(cfg, str(lake.root), plan_key, group):
                    for k, v in r.get("stats", {}).items():
                        stats[k] = stats.get(k, 0) + v
            except teacher.BudgetExhausted as exc:
                note = f"stopped: budget reached ({exc}); re-run to continue"
                print(note)
                break
            progress.advance(len(group))
        # The partitions finished before a budget stop are committed; the rest wait for the next run.
        rows = [batch.ledger(part) for part in batch.parts()] if parts else []
        committed = batch.commit() if parts else None
        counts = total(rows, "distill")
        print(f"distill: {counts.rows_in} prompts -> {counts.kept} with accepted traces, "
              f"{counts.rejected} failed verification, {counts.quarantined} failed requests")
        requests = {k: v for k, v in sorted(stats.items()) if not k.startswith(("kept", "rejected", "quarantined"))}
        return finish_stage(cfg, lake, "distill", started, counts, committed.name if committed else None,
                            skipped, note=note, committed=[committed] if committed else [],
                            extra_tables={"teacher-requests": [requests]} if requests else None)
