"""What every stage run leaves behind: a `runs` row, fresh catalog views, and Prefect artifacts.

Artifact keys are stable (`<stage>-counts`, `<stage>-progress`) so that runs form a history
in the Prefect UI. Outside a flow run (plain function calls in tests) artifacts are skipped.

A stage run that quarantined more than `run.max_quarantine_share` of its rows ends Failed
(QuarantineShareExceeded, raised by finish_stage once the run is recorded): its work stays
committed and the accounting adds up, but such a run is broken, not done.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import TextIO

import duckdb
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.context import FlowRunContext

from distillery import catalog
from distillery.accounting import StageCounts, record_run
from distillery.config import PipelineConfig
from distillery.lake import Lake
from flows.run_summary import publish, stage_markdown


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
    is also a bar on stderr, redrawn in place. When stderr is not a terminal (cron, CI, a
    worker's subprocess) there is no bar, so logs get no carriage-return clutter; instead
    a plain, flushed line goes there when the stage starts and each time another tenth of
    its partitions is done (finish_stage writes the stage's end line), so a long run is
    never silent for minutes.
    """

    def __init__(self, stage: str, total: int, stream: TextIO | None = None):
        self.stage, self.total, self.done = stage, max(total, 1), 0
        self.id = None
        if in_flow():
            self.id = create_progress_artifact(0.0, key=f"{stage}-progress", description=f"{stage}: partitions done")
        stream = sys.stderr if stream is None else stream
        tty = _is_tty(stream)
        self.stream = stream if total > 0 and tty else None  # nothing to do: no bar
        self.lines = None if tty else stream
        self.every = max(1, -(-total // 10))  # a line per tenth of the partitions (rounded up)
        log_line(f"{stage}: started, {total} partition{'s' * (total != 1)} to do", self.lines)
        self._draw()

    def advance(self, n: int = 1) -> None:
        before, self.done = self.done, self.done + n
        if self.id is not None:
            update_progress_artifact(self.id, 100.0 * self.done / self.total)
        if before // self.every != self.done // self.every or self.done >= self.total:
            log_line(
                f"{self.stage}: {self.done}/{self.total} partitions ({100 * self.done // self.total}%)", self.lines
            )
        self._draw()

    def _draw(self) -> None:
        if self.stream is None:
            return
        end = "\n" if self.done >= self.total else ""
        self.stream.write("\r" + render_bar(self.stage, self.done, self.total) + end)
        self.stream.flush()


def log_line(text: str, stream: TextIO | None) -> None:
    """One timestamped, flushed line for logs that are not a terminal (None: write nothing)."""
    if stream is not None:
        stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        stream.flush()


def plain_stream() -> TextIO | None:
    """stderr when it is not a terminal (where plain progress lines go), else None."""
    return None if _is_tty(sys.stderr) else sys.stderr


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
        "rejects-by-rule": (
            "rejects",
            "SELECT rule, count(*) AS n, round(min(value), 4) AS min_value, "
            "round(avg(value), 4) AS avg_value, round(max(value), 4) AS max_value "
            "FROM read_parquet(?) GROUP BY rule ORDER BY n DESC, rule",
        ),
        "duplicates-by-method": (
            "duplicates",
            "SELECT method, count(*) AS n, round(avg(similarity), 4) AS avg_similarity "
            "FROM read_parquet(?) GROUP BY method ORDER BY n DESC, method",
        ),
        "quarantine-by-reason": (
            "quarantine",
            "SELECT reason, count(*) AS n FROM read_parquet(?) GROUP BY reason ORDER BY n DESC, reason",
        ),
        # meta.redactions of the rows curate wrote: {"api_key": 2, "email": 1, ...} per row.
        "redactions-by-kind": (
            "curated+rejects+duplicates",
            "SELECT kind, sum(n)::BIGINT AS n, count(*) AS rows FROM (SELECT k AS kind, "
            "CAST(json_extract(meta, '$.redactions.\"' || k || '\"') AS BIGINT) AS n FROM "
            "(SELECT unnest(json_keys(meta, '$.redactions')) AS k, meta FROM read_parquet(?, union_by_name = true) "
            "WHERE json_type(meta, '$.redactions') = 'OBJECT')) GROUP BY kind ORDER BY n DESC, kind",
        ),
        "teacher-usage": (
            "traces",
            "SELECT model, count(*) AS traces, count(*) FILTER (WHERE accepted) AS accepted, "
            "sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens, "
            "round(sum(cost), 6) AS cost FROM read_parquet(?) GROUP BY model",
        ),
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


class QuarantineShareExceeded(RuntimeError):
    """A stage run quarantined more than run.max_quarantine_share of its rows (its work is committed)."""


def quarantine_verdict(stage: str, counts: StageCounts, max_share: float, reasons: list[dict]) -> str | None:
    """The one-line failure message when `counts` quarantined over `max_share` of the rows, else None.

    `reasons` are quarantine-by-reason rows ({"reason", "n"}, most frequent first)."""
    if counts.rows_in == 0 or counts.quarantined <= max_share * counts.rows_in:
        return None
    top = ", ".join(f"{r['reason']} x{r['n']}" for r in reasons[:3]) or "none recorded"
    # a committed distill partition is never asked again on a plain re-run (see distill.retry_round)
    again = "raise distill.retry_round by one to ask again" if stage == "distill" else "re-run"
    return (
        f"{stage} failed: {counts.quarantined} of {counts.rows_in} rows quarantined "
        f"({counts.quarantined / counts.rows_in:.0%}, over run.max_quarantine_share {max_share:.0%}); "
        f"top reasons: {top}. What it did is committed; fix the cause, then {again} "
        f"(distillery sql \"select reason, count(*) from quarantine where stage = '{stage}' group by all\")"
    )


def finish_stage(
    cfg: PipelineConfig,
    lake: Lake,
    stage: str,
    started: dt.datetime,
    counts: StageCounts,
    batch: str | None,
    skipped: int,
    note: str = "",
    extra_rows: list[dict] | None = None,
    committed: list[Path] | None = None,
    extra_tables: dict[str, list[dict]] | None = None,
) -> dict:
    """Record the run, refresh the views, publish the counts; return them as a small dict.

    `committed` are the folders this run committed: their rejects, duplicates, quarantine
    and traces become per-rule, per-method, per-reason and usage artifacts (stable keys
    `<stage>-<table>`, so each forms a history in the UI), and the run's markdown summary
    `<stage>-summary` (flows/run_summary.py). Off a terminal, a line with
    the counts goes to stderr. Raises QuarantineShareExceeded, after all of that, when the
    run quarantined more than run.max_quarantine_share of its rows."""
    rid = run_id()
    record_run(lake, rid, stage, batch, started, counts, skipped, note, cfg.env_overrides)
    catalog.refresh(cfg, lake)
    summary = {
        "run_id": rid,
        "stage": stage,
        "partitions": counts.partitions,
        "skipped_partitions": skipped,
        "rows_in": counts.rows_in,
        "kept": counts.kept,
        "rejected": counts.rejected,
        "duplicate": counts.duplicate,
        "quarantined": counts.quarantined,
        "balanced": counts.balanced,
        "note": note,
    }
    over = counts.rows_in > 0 and counts.quarantined > cfg.run.max_quarantine_share * counts.rows_in
    tables = outcome_tables(committed or []) if in_flow() or over else {}
    if in_flow():
        create_table_artifact(
            [summary] + (extra_rows or []),
            key=f"{stage}-counts",
            description=f"{stage}: rows in and where they went (this run)",
        )
        for name, rows in {**tables, **(extra_tables or {})}.items():
            create_table_artifact(
                rows, key=f"{stage}-{name}", description=f"{stage}: {name.replace('-', ' ')} (this run)"
            )
    failure = quarantine_verdict(stage, counts, cfg.run.max_quarantine_share, tables.get("quarantine-by-reason", []))
    if in_flow():
        publish(stage, stage_markdown(cfg, stage, counts, batch, note, failure))
    log_line(
        f"{stage}: finished, {counts.rows_in} rows in: {counts.kept} kept, {counts.rejected} rejected, "
        f"{counts.duplicate} duplicate, {counts.quarantined} quarantined",
        plain_stream(),
    )
    if failure is not None:
        raise QuarantineShareExceeded(failure)
    return summary
