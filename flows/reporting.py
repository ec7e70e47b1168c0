"""What every stage run leaves behind: a `runs` row, fresh catalog views, and Prefect artifacts.

Artifact keys are stable (`<stage>-counts`, `<stage>-progress`) so that runs form a history
in the Prefect UI. Outside a flow run (plain function calls in tests) artifacts are skipped.
"""

from __future__ import annotations

import datetime as dt

from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.context import FlowRunContext

from distillery import catalog
from distillery.accounting import StageCounts, record_run
from distillery.config import PipelineConfig
from distillery.lake import Lake


def in_flow() -> bool:
    return FlowRunContext.get() is not None


def run_id() -> str:
    ctx = FlowRunContext.get()
    if ctx is not None and ctx.flow_run is not None:
        return str(ctx.flow_run.id)
    return "local-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")


class Progress:
    """A progress artifact for one stage, advanced as partitions complete."""

    def __init__(self, stage: str, total: int):
        self.total, self.done = max(total, 1), 0
        self.id = None
        if in_flow():
            self.id = create_progress_artifact(0.0, key=f"{stage}-progress", description=f"{stage}: partitions done")

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.id is not None:
            update_progress_artifact(self.id, 100.0 * self.done / self.total)


def finish_stage(cfg: PipelineConfig, lake: Lake, stage: str, started: dt.datetime, counts: StageCounts,
                 batch: str | None, skipped: int, note: str = "", extra_rows: list[dict] | None = None) -> dict:
    """Record the run, refresh the views, publish the counts; return them as a small dict."""
    record_run(lake, run_id(), stage, batch, started, counts, skipped, note)
    catalog.refresh(cfg, lake)
    summary = {
        "stage": stage, "partitions": counts.partitions, "skipped_partitions": skipped,
        "rows_in": counts.rows_in, "kept": counts.kept, "rejected": counts.rejected,
        "duplicate": counts.duplicate, "quarantined": counts.quarantined,
        "balanced": counts.balanced, "note": note,
    }
    if in_flow():
        create_table_artifact([summary] + (extra_rows or []), key=f"{stage}-counts",
                              description=f"{stage}: rows in and where they went (this run)")
    return summary
