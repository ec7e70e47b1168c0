"""Train: the bundled trainer on the current shard build, with loss and throughput artifacts."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_table_artifact

from distillery.config import PipelineConfig
from distillery.generations import shard_build_dir
from distillery.lake import Lake, stable_hash
from flows.reporting import in_flow


def train_dir(cfg: PipelineConfig, lake: Lake) -> Path:
    build = shard_build_dir(cfg, lake)
    return lake.stage_dir("train") / f"{build.name}-{stable_hash(cfg.train.model_dump(mode='json'))}"


@flow(name="train", log_prints=True)
def train_flow(cfg: PipelineConfig, resume: bool = False) -> dict:
    """Train on the current shards; return the trainer's report."""
    lake = Lake(cfg.lake_root)
    build = shard_build_dir(cfg, lake)
    if not (build / "manifest.json").exists():
        raise RuntimeError(f"no shards for the current lake at {build}: run the shard stage first")
    from trainer.train import train  # imports torch (seconds): only a run that trains pays for it

    log: list[dict] = []
    report = train(build, cfg.train, train_dir(cfg, lake), resume=resume, on_log=log.append)
    if in_flow():
        if log:
            create_table_artifact(log, key="train-loss", description="training loss and throughput per log step")
        create_table_artifact([{k: v for k, v in report.items() if not isinstance(v, (dict, list))}],
                              key="train-report", description="final training report")
    print(f"train: {report.get('steps')} steps, final loss {report.get('final_loss')}")
    return report
