"""Shard's steps on one build (the stage: flows/shard.py).

The build's samples are written as a batch inside the build's hidden folder
(`shard/.tmp-<build>/samples/`, plans.plan_shard), its codebooks beside them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import shards  # its public names load lazily: importing the stage costs no codec imports
from distillery.config import PipelineConfig
from distillery.generations import curate_gen, current_files
from distillery.lake import Lake
from distillery.shard_current import record_current
from distillery.stage import StagePlan, StepContext
from distillery.trace_coverage import trace_coverage
from shards.card import write_card


def build_dir(ctx: StepContext) -> Path:
    """The build folder this run writes (it appears when write_build renames it)."""
    return Path(ctx.unit.gen) / ctx.unit.key


def fit_step(ctx: StepContext) -> dict:
    out = Path(ctx.unit.gen) / f".tmp-{ctx.unit.key}"
    out.mkdir(parents=True, exist_ok=True)
    curated = [Path(p["input"]) for p in ctx.unit.parts if p["kind"] == "curated"]
    return shards.fit_codebooks(curated, ctx.cfg.shard, ctx.lake.root, out)


def tokenize_parts(ctx: StepContext, group: list[dict]) -> list[dict]:
    batch, spec = ctx.batch, ctx.state["spec"]
    rows = []
    for p in group:
        if batch.part_done(p["part"]):
            rows.append(batch.ledger(p["part"]))
            continue
        # trace rows take uri and license from their first source document's curated row
        parents = current_files(curate_gen(ctx.cfg, ctx.lake), "curated") if p["kind"] == "traces" else ()
        result = shards.tokenize_partition(
            Path(p["input"]), p["kind"], spec, ctx.cfg.shard, ctx.lake.root, parent_files=parents
        )
        rows.append(batch.write_part(p["part"], [Path(p["input"]).stem], result))
    return rows


def drop_leftover_samples(cfg: PipelineConfig, plan: StagePlan) -> None:
    """An existing build keeps no samples files (a kill just after its rename left them), and
    is the lake's current build (a config switched back to it finds it already made)."""
    build = Path(plan.units[0].gen) / plan.units[0].key
    for leftover in (build / "samples").glob("samples-*.parquet"):
        leftover.unlink()
    record_current(Lake(cfg.lake_root), build)


def write_build(ctx: StepContext) -> dict:
    """Pack the samples into shards with their card, commit the build by renaming it, make it
    the lake's current build; return the manifest's totals (and the traces warning, if any)."""
    build = build_dir(ctx)
    batch = ctx.batch  # the samples, inside the build's hidden folder
    samples = sorted(batch.tmp.glob("samples-*.parquet"))
    out = batch.tmp.parent
    coverage = trace_coverage(ctx.cfg, ctx.lake)
    manifest = shards.write_shards(samples, ctx.state["spec"], ctx.cfg.shard, out, inputs=coverage)
    write_card(ctx.cfg, ctx.lake, out, manifest)
    for stray in out.rglob(".*.tmp"):  # temp files of a killed earlier attempt must not enter the build
        stray.unlink(missing_ok=True)
    os.replace(out, build)  # the commit point: the build appears whole
    record_current(ctx.lake, build)
    # Only now drop the samples the shards hold (keep ledger, rejects, quarantine): deleted
    # before the rename, a kill in between lost rows whose ledgers said they were done.
    for f in samples:
        (build / "samples" / f.name).unlink(missing_ok=True)
    for old in build.parent.glob(".tmp-build-*"):  # leftovers of builds for inputs that changed since
        shutil.rmtree(old, ignore_errors=True)
    return {**manifest["totals"], "warning": coverage["warning"]}
