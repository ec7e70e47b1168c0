"""Asset keys for Prefect's lineage graph: each source, each stage generation, each shard build.

The shard build is materialized as an asset whose upstream assets are the sources it was
built from and the curated and trace generations it read, so the Prefect UI's asset graph
leads from a source to the shards trained on. Keys are URIs: `file://` for lake folders,
`distillery://source/<name>` for a configured source.
"""

from __future__ import annotations

from pathlib import Path

from distillery.config import PipelineConfig
from distillery.generations import curate_gen, distill_gen
from distillery.lake import Lake


def file_key(path: Path) -> str:
    return "file://" + str(path).replace("\n", "_").replace("\r", "_").replace("\t", "_")


def source_keys(cfg: PipelineConfig) -> list[str]:
    return [f"distillery://source/{s.name}".replace(" ", "-") for s in cfg.sources]


def shard_lineage(cfg: PipelineConfig, lake: Lake, build: Path) -> tuple[str, list[str]]:
    """(the shard build's asset key, the keys of what it was built from)."""
    upstream = source_keys(cfg) + [file_key(curate_gen(cfg, lake)), file_key(distill_gen(cfg, lake))]
    return file_key(build), upstream
