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

from prefect import flow

import teacher
from distillery.config import PipelineConfig
from distillery.plans import plan_distill
from distillery.stage import Report, Stage, Step
from flows.driver import run_stage
from flows.limits import TEACHER_LIMIT
from flows.run_identity import StageArgs
from flows.run_logs import warn
from teacher.distill_steps import distill_parts


def preflight(cfg: PipelineConfig, plan) -> None:
    if cfg.distill.tasks:  # online and batch mode alike; raises TeacherUnreachable
        from teacher.preflight import check_teacher  # the client stack loads only to distill

        if (doubt := check_teacher(cfg.distill)) is not None:
            warn(doubt)


def report(cfg, plan, counts, results, states, note) -> Report:
    stats: dict[str, int] = {}
    for r in results:
        for k, v in r.get("stats", {}).items():
            stats[k] = stats.get(k, 0) + v
    requests = {k: v for k, v in sorted(stats.items()) if not k.startswith(("kept", "rejected", "quarantined"))}
    return Report(
        f"distill: {counts.rows_in} prompts -> {counts.kept} with accepted traces, "
        f"{counts.rejected} failed verification, {counts.quarantined} failed requests",
        note=note,
        extra_tables={"teacher-requests": [requests]} if requests else None,
    )


DISTILL = Stage(
    "distill",
    plan_distill,
    (
        # The global limit caps the teacher's concurrency across every worker of a deployment.
        Step(
            "distill_partitions", distill_parts, sequential=True, limit=(TEACHER_LIMIT, lambda c: c.distill.concurrency)
        ),
    ),
    report,
    before=preflight,
    stop_on=(teacher.BudgetExhausted,),
    stop_note=lambda exc: f"stopped: budget reached ({exc}); re-run to continue",
)


@flow(name="distill", log_prints=True)
def distill_flow(cfg: PipelineConfig | StageArgs) -> dict:
    """Distill every new curated partition; return this run's counts."""
    return run_stage(DISTILL, cfg)
