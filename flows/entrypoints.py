"""One deployable flow per stage, each taking the path of a pipeline YAML.

`prefect.yaml` deploys these (and `flows/pipeline.py:pipeline` for the whole pipeline).
A deployment's parameters must be plain JSON, so they name the config by path rather than
passing the config itself; the typed signatures below become each deployment's parameter
schema, which Prefect enforces (`enforce_parameter_schema: true`) before a run starts.

Each stage runs through `run_pipeline`, so a stage run holds the lake's writer lock, leaves
the `pipeline-counts` artifact, and ends Failed when the lake's accounting does not add up,
exactly as a whole-pipeline run does.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow

from distillery.config import load_config
from flows.pipeline import run_pipeline


def run_stage(stage: str, config_path: str | None, lake: str | None) -> dict:
    """Run one stage of the config at `config_path` (the demo config when None)."""
    overrides = {"lake": os.path.abspath(lake)} if lake else None
    cfg = load_config(Path(config_path) if config_path else None, overrides)
    if stage not in cfg.stages:
        raise ValueError(f"stage {stage!r} is not among the config's stages {cfg.stages}")
    return run_pipeline(cfg, [stage])


@flow(name="gather-stage", log_prints=True)
def gather(config_path: str | None = None, lake: str | None = None) -> dict:
    """Gather the config's sources into the lake."""
    return run_stage("gather", config_path, lake)


@flow(name="curate-stage", log_prints=True)
def curate(config_path: str | None = None, lake: str | None = None) -> dict:
    """Filter and deduplicate the documents gathered since the last curate run."""
    return run_stage("curate", config_path, lake)


@flow(name="distill-stage", log_prints=True)
def distill(config_path: str | None = None, lake: str | None = None) -> dict:
    """Ask the teacher about the rows curated since the last distill run."""
    return run_stage("distill", config_path, lake)


@flow(name="shard-stage", log_prints=True)
def shard(config_path: str | None = None, lake: str | None = None) -> dict:
    """Tokenize the current lake into a shard build (skipped when already built)."""
    return run_stage("shard", config_path, lake)


@flow(name="train-stage", log_prints=True)
def train(config_path: str | None = None, lake: str | None = None) -> dict:
    """Train the bundled model on the current shard build."""
    return run_stage("train", config_path, lake)
