"""Shard: tokenize the current curated rows and traces into one build of Parquet shards.

A build is named from its inputs and the shard config (`shard/build-<key>/`), written in a
hidden folder and renamed when whole; its `manifest.json` is written last by the writer.
An unchanged lake maps to the same build, which is then skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prefect import flow
from prefect.assets import add_asset_metadata
from prefect.context import TaskRunContext

import shards
from distillery.batch import Batch
from distillery.config import PipelineConfig
from distillery.lake import Lake
from distillery.plans import plan_shard
from distillery.shard_current import record_current
from distillery.stage import Report, Stage, Step, StepContext
from distillery.trace_coverage import trace_coverage
from flows.assets import file_key, shard_lineage
from flows.driver import run_stage
from shards.card import write_card
from shards.steps import build_dir as _build
from shards.steps import drop_leftover_samples, fit_step, tokenize_parts


def _samples_batch(build: Path) -> Batch:
    return Batch(build.parent, "shard", build.name, tmp=build.parent / f".tmp-{build.name}" / "samples")


def write_step(ctx: StepContext) -> dict:
    written = write_build(ctx.cfg, str(_build(ctx)), ctx.state["spec"])
    for old in Path(ctx.unit.gen).glob(".tmp-build-*"):  # leftovers of builds for inputs that changed since
        shutil.rmtree(old, ignore_errors=True)
    return written


def write_build(cfg: PipelineConfig, build: str, spec: dict) -> dict:
    """Pack the samples into shards, commit the build by renaming it, record the asset's facts."""
    batch = _samples_batch(Path(build))
    samples = sorted(batch.tmp.glob("samples-*.parquet"))
    out = batch.tmp.parent
    lake = Lake(cfg.lake_root)
    coverage = trace_coverage(cfg, lake)
    if coverage["warning"]:
        print(f"shard: WARNING: {coverage['warning']}")
    manifest = shards.write_shards(samples, spec, cfg.shard, out, inputs=coverage)
    write_card(cfg, lake, out, manifest)
    for stray in out.rglob(".*.tmp"):  # temp files of a killed earlier attempt must not enter the build
        stray.unlink(missing_ok=True)
    os.replace(out, build)  # the commit point: the build appears whole
    record_current(lake, Path(build))
    # Only now drop the samples the shards hold (keep ledger, rejects, quarantine): deleted
    # before the rename, a kill in between lost rows whose ledgers said they were done.
    for f in samples:
        (Path(build) / "samples" / f.name).unlink(missing_ok=True)
    if TaskRunContext.get() is not None:
        add_asset_metadata(file_key(Path(build)), {"rows": manifest["totals"]["rows"],
                                                     "tokens": manifest["totals"]["tokens"],
                                                     "tokens_by_modality": manifest["totals"]["tokens_by_modality"]})
    return {**manifest["totals"], "warning": coverage["warning"]}


def report(cfg, plan, counts, results, states, note) -> Report:
    w = states[0]["written"]
    return Report(f"shard: {w['rows']} samples, {w['tokens']} tokens in {w['shards']} shard files",
                  note=f"warning: {w['warning']}" if w.get("warning") else "",
                  extra_rows=[{"stage": "shard", "note": f"{w['tokens']} tokens in {w['shards']} files"}],
                  extra_tables={"tokens-by-modality": [{"modality": m, "tokens": n}
                                                       for m, n in w["tokens_by_modality"].items()]})


SHARD = Stage("shard", plan_shard, (
    Step("fit_codebooks", fit_step, per_part=False, output="spec"),
    Step("tokenize_partitions", tokenize_parts),
    Step("write_shards", write_step, per_part=False, output="written",
         asset=lambda ctx: shard_lineage(ctx.cfg, ctx.lake, _build(ctx))),
), report, committed=lambda ctx: [_build(ctx)], run_empty=True, when_done=drop_leftover_samples)


@flow(name="shard", log_prints=True)
def shard_flow(cfg: PipelineConfig) -> dict:
    """Build the shards for the current lake (or find them built); return this run's counts."""
    return run_stage(SHARD, cfg)
