"""Distill's step on the batch of one run (the stage: flows/distill.py)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

import teacher
from distillery.stage import StepContext


def distill_parts(ctx: StepContext, group: list[dict]) -> list[dict]:
    """Ask the teacher about each partition's prompts; a partition finished before is not redone."""
    return [distill_partition(ctx, p["part"], p["input"]) for p in group]


def distill_partition(ctx: StepContext, part: str, input_file: str) -> dict:
    batch, lake = ctx.batch, ctx.lake
    if batch.part_done(part):
        return batch.ledger(part)
    result = teacher.distill_partition(
        pl.read_parquet(input_file), ctx.cfg.distill, lake.cache_dir("teacher"), lake.media_root
    )
    # Request counts (sent, cached, retried) go to the run's artifact, not the lake: a resumed
    # run pays fewer requests for the same rows, and the lake must not differ for it.
    return {**batch.write_part(part, [Path(input_file).stem], result), "stats": dict(result.stats)}
