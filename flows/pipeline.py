"""The whole pipeline: each stage a subflow, then the accounting check that can fail the run.

Before any stage work, every source input must exist (a glob that matches nothing, a
repository folder that is not there: ConfigError, one line). A stage that quarantines
more than run.max_quarantine_share of its rows stops the pipeline there (its work stays
committed); the accounting is still checked and published, then the run ends Failed.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from distillery import accounting
from distillery.config import ConfigError, PipelineConfig, load_config
from distillery.lake import Lake, StageName
from flows.curate import curate_flow
from flows.distill import distill_flow
from flows.gather import gather_flow
from flows.monitor import monitored
from flows.reporting import QuarantineShareExceeded, in_flow, log_line, plain_stream
from flows.run_identity import StageArgs
from flows.run_summary import pipeline_markdown, publish
from flows.runner import make_task_runner
from flows.shard import shard_flow
from flows.train import train_flow
from sources.discovery import missing_inputs

STAGE_FLOWS = {"gather": gather_flow, "curate": curate_flow, "distill": distill_flow, "shard": shard_flow}


class AccountingFailed(RuntimeError):
    """The lake's counts do not add up after a run."""


def run_pipeline(cfg: PipelineConfig, stages: list[str] | None = None) -> dict:
    """Run the chosen stages in order; fail when a source input is missing (before any work),
    when a stage quarantines too much (after its work is committed; the later stages do not
    run), or when the lake's accounting does not add up.

    In a flow run (the pipeline, or a deployment's stage flow) the run is named
    `<flow> <pipeline>` and tagged, each stage subflow is named by its generation and shows
    only what identifies it as parameters (flows/run_identity.py), log lines reach the UI,
    and the run ends with a `pipeline-summary` artifact, failed or not."""
    with monitored(cfg, summarized=(AccountingFailed, QuarantineShareExceeded)):
        return _run(cfg, stages)


def _run(cfg: PipelineConfig, stages: list[str] | None) -> dict:
    lake = Lake(cfg.lake_root)
    chosen = [s for s in cfg.stages if not stages or s in stages]
    if "gather" in chosen and (missing := missing_inputs(cfg.sources, cfg.base_dir)):
        raise ConfigError("nothing to gather: " + "; ".join(missing))
    runner = make_task_runner(cfg.run)
    results, generations = {}, {}
    stopped: QuarantineShareExceeded | None = None
    with lake.writer_lock(cfg.run.lock_timeout_s):
        for stage in chosen:
            args = StageArgs(cfg, stage)
            generations[stage] = args.get("generation")
            try:
                if stage == "train":  # not partitioned: no Progress, so its start line here (finish_stage ends it)
                    log_line("train: started", plain_stream())
                    results["train"] = train_flow(args)
                else:
                    results[stage] = STAGE_FLOWS[stage].with_options(task_runner=runner)(args)
            except QuarantineShareExceeded as exc:
                stopped = exc
                break
        status = accounting.check(lake)
    failure = (
        None if status.ok else AccountingFailed("the lake's accounting does not add up:\n" + "\n".join(status.problems))
    )
    if in_flow():
        create_table_artifact(
            [
                {
                    "stage": s.stage,
                    "partitions": s.partitions,
                    "rows_in": s.rows_in,
                    "kept": s.kept,
                    "rejected": s.rejected,
                    "duplicate": s.duplicate,
                    "quarantined": s.quarantined,
                    "adds_up": s.balanced,
                }
                for s in status.stages
            ],
            key="pipeline-counts",
            description="rows per stage across the lake, and whether they add up",
        )
        get_run_logger().info("the lake's accounting after this run:\n%s", status.render())
        said = failure or (str(stopped) if stopped is not None else None)
        publish("pipeline", pipeline_markdown(cfg, status.stages, generations, status.pending, said))
    results["status"] = status.render()
    if failure is not None:
        raise failure
    if stopped is not None:
        raise stopped
    return results


@flow(name="pipeline", log_prints=True)
def pipeline(config_path: str | None = None, stages: list[StageName] | None = None, lake: str | None = None) -> dict:
    """Run the pipeline for a config file (the demo config when none is given)."""
    overrides = {"lake": os.path.abspath(lake)} if lake else None
    cfg = load_config(Path(config_path) if config_path else None, overrides)
    return run_pipeline(cfg, stages)
