"""What every stage run leaves behind: a `runs` row, fresh catalog views, and Prefect artifacts.

Artifact keys are stable (`<stage>-counts`, `<stage>-progress`) so that runs form a history
in the Prefect UI. Outside a flow run (plain function calls in tests) artifacts are skipped.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TextIO

import duckdb
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


def render_bar(stage: str, done: int, total: int, width: int = 30) -> str:
    """One line of text: `gather  [#########.....]  12/40 partitions  30%`."""
    total = max(total, 1)
    filled = min(width, width * done // total)
    return f"{stage:<8}[{'#' * filled}{'.' * (width - filled)}] {done:>{len(str(total))}}/{total} partitions {100 * done // total:3d}%"


class Progress:
    """A stage's progress, advanced as partitions complete.

    In a flow run it is a progress artifact (the UI shows it filling up); on a terminal it
    is also a bar on stderr, redrawn in place. When stderr is not a terminal (logs, CI,
    a worker's subprocess) no bar is drawn, so logs get no carriage-return clutter.
    """

    def __init__(self, stage: str, total: int, stream: TextIO | None = None):
        self.stage, self.total, self.done = stage, max(total, 1), 0
        self.id = None
        if in_flow():
            self.id = create_progress_artifact(0.0, key=f"{stage}-progress", description=f"{stage}: partitions done")
        stream = sys.stderr if stream is None else stream
        self.stream = stream if total > 0 and _is_tty(stream) else None  # nothing to do: no bar
        self._draw()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.id is not None:
            update_progress_artifact(self.id, 100.0 * self.done / self.total)
        self._draw()

    def _draw(self) -> None:
        if self.stream is None:
            return
        end = "\n" if self.done >= self.total else ""
        self.stream.write("\r" + render_bar(self.stage, self.done, self.total) + end)
        self.stream.flush()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def outcome_tables(dirs: list[Path]) -> dict[str, list[dict]]:
    """Why rows left a stage, from the files a run committed: rejections per rule (with the
    measured values), duplicates per method, quarantines per reason, redactions per kind
    (curate: secrets and PII replaced in the rows it wrote), teacher usage."""
    def files(table: str) -> list[str]:
        return [str(f) for d in dirs for f in sorted(d.rglob(f"{table}-*.parquet"))]

    queries = {
        "rejects-by-rule": ("rejects", "SELECT rule, count(*) AS n, round(min(value), 4) AS min_value, "
                            "round(avg(value), 4) AS avg_value, round(max(value), 4) AS max_value "
                            "FROM read_parquet(?) GROUP BY rule ORDER BY n DESC, rule"),
        "duplicates-by-method": ("duplicates", "SELECT method, count(*) AS n, round(avg(similarity), 4) AS avg_similarity "
                                 "FROM read_parquet(?) GROUP BY method ORDER BY n DESC, method"),
        "quarantine-by-reason": ("quarantine", "SELECT reason, count(*) AS n FROM read_parquet(?) "
                                 "GROUP BY reason ORDER BY n DESC, reason"),
        # meta.redactions of the rows curate wrote: {"api_key": 2, "email": 1, ...} per row.
        "redactions-by-kind": ("curated+rejects+duplicates",
                               "SELECT kind, sum(n)::BIGINT AS n, count(*) AS rows FROM (SELECT k AS kind, "
                               "CAST(json_extract(meta, '$.redactions.\"' || k || '\"') AS BIGINT) AS n FROM "
                               "(SELECT unnest(json_keys(meta, '$.redactions')) AS k, meta FROM read_parquet(?, union_by_name = true) "
                               "WHERE json_type(meta, '$.redactions') = 'OBJECT')) GROUP BY kind ORDER BY n DESC, kind"),
        "teacher-usage": ("traces", "SELECT model, count(*) AS traces, count(*) FILTER (WHERE accepted) AS accepted, "
                          "sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens, "
                          "round(sum(cost), 6) AS cost FROM read_parquet(?) GROUP BY model"),
    }
    out: dict[str, list[dict]] = {}
    con = duckdb.connect()
    try:
        for name, (table, sql) in queries.items():
            paths = [f for t in table.split("+") for f in files(t)]
            if paths:
                cur = con.execute(sql, [paths])
                cols = [d[0] for d in cur.description]
                rows = [dict(zip(cols, r)) for r in cur.fetchall()]
                if rows:
                    out[name] = rows
    finally:
        con.close()
    return out


def finish_stage(cfg: PipelineConfig, lake: Lake, stage: str, started: dt.datetime, counts: StageCounts,
                 batch: str | None, skipped: int, note: str = "", extra_rows: list[dict] | None = None,
                 committed: list[Path] | None = None, extra_tables: dict[str, list[dict]] | None = None) -> dict:
    """Record the run, refresh the views, publish the counts; return them as a small dict.

    `committed` are the folders this run committed: their rejects, duplicates, quarantine
    and traces become per-rule, per-method, per-reason and usage artifacts (stable keys
    `<stage>-<table>`, so each forms a history in the UI)."""
    rid = run_id()
    record_run(lake, rid, stage, batch, started, counts, skipped, note)
    catalog.refresh(cfg, lake)
    summary = {
        "run_id": rid, "stage": stage, "partitions": counts.partitions, "skipped_partitions": skipped,
        "rows_in": counts.rows_in, "kept": counts.kept, "rejected": counts.rejected,
        "duplicate": counts.duplicate, "quarantined": counts.quarantined,
        "balanced": counts.balanced, "note": note,
    }
    if in_flow():
        create_table_artifact([summary] + (extra_rows or []), key=f"{stage}-counts",
                              description=f"{stage}: rows in and where they went (this run)")
        tables = outcome_tables(committed or [])
        tables.update(extra_tables or {})
        for name, rows in tables.items():
            create_table_artifact(rows, key=f"{stage}-{name}", description=f"{stage}: {name.replace('-', ' ')} (this run)")
    return summary
