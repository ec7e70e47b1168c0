"""Train: the bundled trainer on the lake's current shard build, with loss and throughput artifacts
(`train-loss-chart`: the loss per step as a chart; `train-loss`: the table of log steps).

The build is the one lake/shard/CURRENT names (distillery/generations.py `train_build`), the
same the catalog's `shards` view shows; when the config would make another build (shard has
not run since its inputs or shard config changed), the run says so and trains on the current one.

A run trains into `train/<build>-<key>/` (distillery/generations.py `train_gen`: the build's
identity and the train config) and commits a record there when it finishes
(trainer/completion.py). A re-run that finds the record skips training, without importing
torch, and says so; a new build or a changed train config trains into a new folder.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from distillery import catalog
from distillery.accounting import total
from distillery.config import PipelineConfig
from distillery.generations import shard_build_dir, train_build, train_gen
from distillery.lake import Lake
from flows.monitor import monitored
from flows.reporting import QuarantineShareExceeded, finish_stage, in_flow
from flows.run_identity import StageArgs, config_of
from trainer.completion import RECORD_DIR, ROW_KEYS, commit_record, discard_record, finished_report
from trainer.loss_chart import loss_markdown


def train_dir(cfg: PipelineConfig, lake: Lake) -> Path:
    """The folder of the training run for the current shard build and train config."""
    return train_gen(cfg, lake)


@flow(name="train", log_prints=True)
def train_flow(cfg: PipelineConfig | StageArgs, resume: bool = False) -> dict:
    """Train on the current shards, or find that build and config already trained.

    Returns the trainer's report (the finished run's, when skipped) and this run's counts
    (`finish_stage`'s summary: run_id, rows_in, kept, quarantined, skipped_partitions, note).
    In a flow run, the run is named and tagged like every stage run (flows/driver.py).
    """
    cfg = config_of(cfg)
    with monitored(cfg, "train", summarized=(QuarantineShareExceeded,)):
        return _train(cfg, resume)


def _train(cfg: PipelineConfig, resume: bool) -> dict:
    lake = Lake(cfg.lake_root)
    started = dt.datetime.now(dt.timezone.utc)
    with lake.writer_lock(cfg.run.lock_timeout_s):
        build = train_build(cfg, lake)
        if not (build / "manifest.json").exists():
            raise RuntimeError(f"no shard build in the lake (no {build}): run the shard stage first")
        if build.name != shard_build_dir(cfg, lake).name:
            print(
                f"train: the lake's current build {build.name} is not this config's (shard has not run "
                "since its inputs or shard config changed); training on the current build"
            )
        out = train_dir(cfg, lake)
        done = finished_report(out)
        if done is not None:
            print(
                f"train: {out.name} is already trained on this shard build with this config "
                f"({done.get('steps')} steps, final loss {done.get('train_loss')}); not retraining"
            )
            summary = finish_stage(cfg, lake, "train", started, total([], "train"), out.name, 1, note="already trained")
            return {**done, **summary}
        if discard_record(out):
            catalog.refresh(cfg, lake)  # the views must not list the discarded record's files
        from trainer.train import train  # imports torch (seconds): only a run that trains pays for it

        log: list[dict] = []
        report = train(build, cfg.train, out, resume=resume, on_log=log.append)
        ledger = commit_record(out, build.name, report)
        report = {k: v for k, v in report.items() if k not in ROW_KEYS}
        if in_flow():
            if report.get("loss_curve"):
                create_markdown_artifact(
                    loss_markdown(report["loss_curve"]), key="train-loss-chart", description="training loss per step"
                )
            if log:
                create_table_artifact(log, key="train-loss", description="training loss and throughput per log step")
            create_table_artifact(
                [{k: v for k, v in report.items() if not isinstance(v, (dict, list))}],
                key="train-report",
                description="final training report",
            )
        print(f"train: {report.get('steps')} steps, final loss {report.get('train_loss')}")
        summary = finish_stage(
            cfg,
            lake,
            "train",
            started,
            total([ledger], "train"),
            out.name,
            0,
            note=f"{report.get('steps')} steps",
            committed=[out / RECORD_DIR],
        )
        return {**report, **summary}
