"""Each run's summary: one markdown artifact a person reads first in the Prefect UI.

Key `<stage>-summary` for a stage run, `pipeline-summary` for a pipeline run (and a
deployment's stage run, which runs through the pipeline), so each forms a history.
It says where the lake is, which generation or build the run wrote, its counts (per stage
for a pipeline run), the top rejection rules with a few example rows and the exact
`distillery sql` command that fetches the rest, the top quarantine reasons, and, when the
run failed, the error and what to do next.

Example rows show text only where it went through curate's redaction (curate and distill
rejects; gather rejects when gather.redact is on), cut to `TEXT_CHARS`; gathered text that
was never redacted stays out of the UI (its `distillery sql` command is there).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager

from distillery.accounting import StageCounts
from distillery.config import PipelineConfig
from distillery.lake import Lake
from distillery.sql import query

TOP_RULES = 3  # rules (and quarantine reasons) listed: enough to act on the main cause
EXAMPLES = 3  # example rows per rule
TEXT_CHARS = 80  # characters of an example's text: with URI_CHARS, one table line on a laptop screen
URI_CHARS = 40  # an example's uri, its end (the file name) kept
COUNT_COLUMNS = ("rows_in", "kept", "rejected", "duplicate", "quarantined")


def cell(value: object, limit: int = TEXT_CHARS, keep_end: bool = False) -> str:
    """A value as a markdown table cell: one line, cut to `limit` characters (its start, or
    its end for a path), in a code span (no markdown or HTML inside it is interpreted)."""
    if value is None:
        return ""
    text = re.sub(r"\s+", " ", str(value)).strip()
    if len(text) > limit:
        text = "…" + text[1 - limit :] if keep_end else text[: limit - 1] + "…"
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`" if text else ""


def sql_command(lake: Lake, sql: str) -> str:
    """The `distillery sql` command line that runs `sql` on `lake` from any folder."""
    return f'distillery sql "{sql}" --lake {shlex.quote(str(lake.root))}'


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def counts_table(counts: list[StageCounts]) -> list[str]:
    lines = ["| stage | " + " | ".join(COUNT_COLUMNS) + " | adds up |", "|---" + "|---:" * len(COUNT_COLUMNS) + "|---|"]
    for c in counts:
        values = " | ".join(str(getattr(c, k)) for k in COUNT_COLUMNS)
        lines.append(f"| {c.stage} | {values} | {'yes' if c.balanced else '**NO**'} |")
    return lines + [""]


def _top(lake: Lake, view: str, columns: str, key: str, stage: str | None) -> list[tuple]:
    """The TOP_RULES most frequent `key`s of `view` (of `stage`, or of every stage): stage first."""
    where = f"where stage = {_quoted(stage)} " if stage else ""
    sql = f"select stage, {columns} from {view} {where}group by all order by n desc, stage, {key} limit {TOP_RULES}"
    return query(lake, sql)[1]


def rejections(cfg: PipelineConfig, lake: Lake, stage: str | None = None) -> list[str]:
    """The top rejection rules (of `stage`, or of every stage) in the lake's current
    generations, each with example rows and the command that fetches all of its rows."""
    top = _top(lake, "rejects", "rule, count(*) as n, round(avg(value), 4) as avg_value", "rule", stage)
    if not top:
        return ["No rejected rows" + (f" in {stage}." if stage else ".") + "", ""]
    lines = ["## Top rejection rules", ""]
    for st, rule, n, avg in top:
        fetch = (
            f"select uri, value, left(text, 200) as text from rejects "
            f"where stage = {_quoted(st)} and rule = {_quoted(rule)}"
        )
        _, rows = query(lake, f"{fetch} limit {EXAMPLES}")
        shown = st != "gather" or cfg.gather.redact
        head = f"### {st}: `{rule}`, {n} row{'s' * (n != 1)} (mean value {avg})"
        lines += [head, "", "| uri | value | text |", "|---|---:|---|"]
        for uri, value, text in rows:
            text = cell(text) if shown else "(gathered text is not redacted)"
            value = "" if value is None else f"{value:.4g}"
            lines.append(f"| {cell(uri, URI_CHARS, keep_end=True)} | {value} | {text} |")
        lines += ["", "All of them:", "", "```", sql_command(lake, fetch), "```", ""]
    return lines


def quarantines(lake: Lake, stage: str | None = None) -> list[str]:
    """The top quarantine reasons with the command that lists the rows and their errors."""
    top = _top(lake, "quarantine", "reason, count(*) as n", "reason", stage)
    if not top:
        return []
    lines = ["## Top quarantine reasons", "", "| stage | reason | rows |", "|---|---|---:|"]
    lines += [f"| {st} | `{reason}` | {n} |" for st, reason, n in top]
    fetch = "select stage, uri, reason, left(error, 200) as error from quarantine" + (
        f" where stage = {_quoted(stage)}" if stage else ""
    )
    return lines + ["", "```", sql_command(lake, fetch), "```", ""]


def next_steps(failure: BaseException | str | None) -> list[str]:
    """After a failure, its message and how to go on. `failure` is an error, or a verdict
    (str, e.g. the quarantine share's) that already says its own next step."""
    if failure is None:
        return []
    lines = ["## Failed", "", "```", str(failure), "```", "", "**Next:**", ""]
    if isinstance(failure, BaseException):
        lines.append(
            "- The traceback is in this run's **Logs** tab. Fix the cause (the config, the teacher, "
            "the sources) and run the same command or deployment again."
        )
    lines.append(
        "- Work committed before the failure stays in the lake; a re-run skips those partitions and does the rest."
    )
    return lines + [""]


def stage_markdown(
    cfg: PipelineConfig,
    stage: str,
    counts: StageCounts,
    batch: str | None,
    note: str = "",
    failure: BaseException | str | None = None,
) -> str:
    """The summary of one stage run (its own counts; the lake's rejections of that stage)."""
    lake = Lake(cfg.lake_root)
    head = [
        f"# {stage}: {'failed' if failure else 'done'}",
        "",
        f"- **pipeline** `{cfg.name}` · **lake** `{lake.root}`",
        f"- **wrote** `{batch or 'nothing new'}`" + (f" · {note}" if note else ""),
        "",
        "## This run's rows",
        "",
    ]
    body = head + counts_table([counts]) + next_steps(failure)
    if lake.catalog_path.exists():
        body += rejections(cfg, lake, stage) + quarantines(lake, stage)
    return "\n".join(body)


def pipeline_markdown(
    cfg: PipelineConfig,
    stages: list[StageCounts],
    generations: dict[str, str | None],
    pending: list[str],
    failure: BaseException | str | None = None,
) -> str:
    """The summary of a pipeline run: the lake's counts per stage, its generations, the top
    rejection rules across stages."""
    lake = Lake(cfg.lake_root)
    ran = ", ".join(f"{s} `{g}`" if g else s for s, g in generations.items())
    body = [
        f"# pipeline {cfg.name}: {'failed' if failure else 'done'}",
        "",
        f"- **lake** `{lake.root}`",
        f"- **stages** {ran}",
        "",
        "## Rows per stage (the lake's current generations)",
        "",
    ]
    body += counts_table(stages) if stages else ["(no counts: the run stopped before the lake was checked)", ""]
    body += [f"- pending: {p}" for p in pending] + ([""] if pending else [])
    body += next_steps(failure)
    if lake.catalog_path.exists():
        body += rejections(cfg, lake) + quarantines(lake)
    if failure is None:
        body += [
            "Query the lake from any folder:",
            "",
            "```",
            sql_command(lake, "select * from shards limit 10"),
            "```",
        ]
    return "\n".join(body)


def publish(key_stage: str, markdown: str) -> None:
    """The `<key_stage>-summary` markdown artifact of the current run (nothing outside a run)."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is not None:
        create_markdown_artifact(markdown, key=f"{key_stage}-summary", description=f"{key_stage}: summary of this run")


@contextmanager
def on_failure(cfg: PipelineConfig, stage: str, summarized: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Publish a failure summary for `stage` when the block raises (the error is re-raised);
    `summarized` are errors whose summary the block already published."""
    try:
        yield
    except summarized:
        raise
    except Exception as exc:
        try:
            markdown = (
                stage_markdown(cfg, stage, StageCounts(stage), None, failure=exc)
                if stage != "pipeline"
                else pipeline_markdown(cfg, [], {}, [], failure=exc)
            )
            publish(stage, markdown)
        except Exception:  # the summary must never hide the error it reports
            pass
        raise
