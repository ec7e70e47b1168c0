"""Shard: tokenize the current curated rows and traces into one build of Parquet shards.

A build is named from its inputs and the shard config (`shard/build-<key>/`), written in a
hidden folder and renamed when whole; its `manifest.json` is written last by the writer.
An unchanged lake maps to the same build, which is then skipped.
"""

from __future__ import annotations

from prefect import flow
from prefect.assets import add_asset_metadata
from prefect.context import TaskRunContext

from distillery.config import PipelineConfig
from distillery.plans import plan_shard
from distillery.stage import Report, Stage, Step, StepContext
from flows.assets import file_key, shard_lineage
from flows.driver import run_stage
from flows.run_identity import StageArgs
from flows.run_logs import warn
from shards.steps import build_dir as _build
from shards.steps import drop_leftover_samples, fit_step, tokenize_parts, write_build


def write_step(ctx: StepContext) -> dict:
    """Commit the build (shards/steps.py write_build), then record the asset's facts in Prefect."""
    written = write_build(ctx)
    if written.get("warning"):  # on the terminal and as a WARNING in the run's logs
        warn(f"shard: WARNING: {written['warning']}")
    if TaskRunContext.get() is not None:
        add_asset_metadata(file_key(_build(ctx)), {k: written[k] for k in ("rows", "tokens", "tokens_by_modality")})
    return written


def report(cfg, plan, counts, results, states, note) -> Report:
    w = states[0]["written"]
    return Report(
        f"shard: {w['rows']} samples, {w['tokens']} tokens in {w['shards']} shard files",
        note=f"warning: {w['warning']}" if w.get("warning") else "",
        extra_rows=[{"stage": "shard", "note": f"{w['tokens']} tokens in {w['shards']} files"}],
        extra_tables={"tokens-by-modality": [{"modality": m, "tokens": n} for m, n in w["tokens_by_modality"].items()]},
    )


SHARD = Stage(
    "shard",
    plan_shard,
    (
        Step("fit_codebooks", fit_step, per_part=False, output="spec"),
        Step("tokenize_partitions", tokenize_parts),
        Step(
            "write_shards",
            write_step,
            per_part=False,
            output="written",
            asset=lambda ctx: shard_lineage(ctx.cfg, ctx.lake, _build(ctx)),
        ),
    ),
    report,
    committed=lambda ctx: [_build(ctx)],
    run_empty=True,
    when_done=drop_leftover_samples,
)


@flow(name="shard", log_prints=True)
def shard_flow(cfg: PipelineConfig | StageArgs) -> dict:
    """Build the shards for the current lake (or find them built); return this run's counts."""
    return run_stage(SHARD, cfg)
