"""Shard: tokenize the current curated rows and traces into one build of Parquet shards.

A build is named from its inputs and the shard config (`shard/build-<key>/`), written in a
hidden folder and renamed when whole; its `manifest.json` is written last by the writer.
An unchanged lake maps to the same build, which is then skipped.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

from prefect import flow, task
from prefect.assets import add_asset_metadata, materialize
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

import shards
from distillery.accounting import total
from distillery.batch import Batch, task_groups
from distillery.config import PipelineConfig
from distillery.generations import curate_gen, current_files
from distillery.lake import Lake
from distillery.plans import shard_plan
from distillery.shard_current import record_current
from distillery.trace_coverage import trace_coverage
from flows.assets import file_key, shard_lineage
from flows.reporting import Progress, finish_stage
from shards.card import write_card


def _samples_batch(build: Path) -> Batch:
    batch = Batch(build.parent, "shard", build.name)
    batch.tmp = build.parent / f".tmp-{build.name}" / "samples"
    return batch


@task(name="fit_codebooks", cache_policy=NO_CACHE)
def fit_task(cfg: PipelineConfig, lake_root: str, build: str, curated: list[str]) -> dict:
    out = Path(build).parent / f".tmp-{Path(build).name}"
    out.mkdir(parents=True, exist_ok=True)
    return shards.fit_codebooks([Path(c) for c in curated], cfg.shard, Path(lake_root), out)


def tokenize_one(cfg: PipelineConfig, lake_root: str, batch: Batch, spec: dict, part: str, kind: str,
                 input_file: str) -> dict:
    if batch.part_done(part):
        return batch.ledger(part)
    parents = current_files(curate_gen(cfg, Lake(lake_root)), "curated") if kind == "traces" else ()  # for uri, license
    result = shards.tokenize_partition(Path(input_file), kind, spec, cfg.shard, Path(lake_root), parent_files=parents)
    return batch.write_part(part, [Path(input_file).stem], result)


@task(name="tokenize_partitions", cache_policy=NO_CACHE)
def tokenize_task(cfg: PipelineConfig, lake_root: str, build: str, spec: dict, group: list[dict]) -> list[dict]:
    batch = _samples_batch(Path(build))
    return [tokenize_one(cfg, lake_root, batch, spec, p["part"], p["kind"], p["input"]) for p in group]


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


@flow(name="shard", log_prints=True)
def shard_flow(cfg: PipelineConfig) -> dict:
    """Build the shards for the current lake (or find them built); return this run's counts."""
    lake = Lake(cfg.lake_root)
    started = dt.datetime.now(dt.timezone.utc)
    with lake.writer_lock(cfg.run.lock_timeout_s):
        build, parts = shard_plan(cfg, lake)
        if (build / "manifest.json").exists():
            for leftover in (build / "samples").glob("samples-*.parquet"):  # a kill just after the rename
                leftover.unlink()
            print(f"shard: {build.name} is already built for these inputs")
            record_current(lake, build)
            return finish_stage(cfg, lake, "shard", started, total([], "shard"), build.name, len(parts),
                                note="already built")
        progress = Progress("shard", len(parts) + 2)
        spec = fit_task(cfg, str(lake.root), str(build), [p["input"] for p in parts if p["kind"] == "curated"])
        progress.advance()
        groups = task_groups(parts, cfg.run.max_partitions - 2)  # plus fit and write
        futures = [tokenize_task.submit(cfg, str(lake.root), str(build), spec, g) for g in groups]
        rows = []
        for g, f in zip(groups, futures):
            rows += f.result()
            progress.advance(len(g))
        key, upstream = shard_lineage(cfg, lake, build)
        write_task = materialize(key, asset_deps=upstream, name="write_shards", cache_policy=NO_CACHE)(write_build)
        written = write_task(cfg, str(build), spec)
        progress.advance()
        for old in build.parent.glob(".tmp-build-*"):  # leftovers of builds for inputs that changed since
            shutil.rmtree(old, ignore_errors=True)
        counts = total(rows, "shard")
        print(f"shard: {written['rows']} samples, {written['tokens']} tokens in {written['shards']} shard files")
        by_modality = [{"modality": m, "tokens": n} for m, n in written["tokens_by_modality"].items()]
        return finish_stage(cfg, lake, "shard", started, counts, build.name, 0,
                            note=f"warning: {written['warning']}" if written["warning"] else "",
                            extra_rows=[{"stage": "shard", "note": f"{written['tokens']} tokens in {written['shards']} files"}],
                            committed=[build], extra_tables={"tokens-by-modality": by_modality})
