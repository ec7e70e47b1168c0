"""Each stage's plan: the parts a run of it still has to do, read from the lake alone.

A plan is a pure function of the config and the lake's committed files, so the stage flows
and `pending_stage` ask the same question the same way. Nothing here imports Prefect: the
CLI asks `pending_stage` before it starts a Prefect server, and a re-run that finds every
chosen stage up to date costs a few file listings instead of a server and a flow run per
stage (bench/overhead.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from distillery.batch import committed_parts
from distillery.config import PipelineConfig
from distillery.generations import (
    curate_gen,
    current_files,
    distill_gen,
    gather_gens,
    record_upstream,
    shard_build_dir,
    train_gen,
)
from distillery.lake import Lake, stable_hash, write_parquet_atomic
from distillery.shard_current import current_build
from distillery.stage import StagePlan, StepContext, Unit

ITEM_COLUMNS = ("uri", "path", "fingerprint")


def _new_items(cfg: PipelineConfig, lake: Lake, source_name: str):
    """A source's items not yet gathered unchanged (same uri and fingerprint), and how many were."""
    import polars as pl

    import sources

    src = next(s for s in cfg.sources if s.name == source_name)
    schema = dict.fromkeys(ITEM_COLUMNS, pl.String)
    chunks, rows = [], []
    for item in sources.discover(src, cfg.base_dir):
        rows.append((item.uri, item.path, item.fingerprint))
        if len(rows) >= 100_000:
            chunks.append(pl.DataFrame(rows, schema=schema, orient="row"))
            rows = []
    chunks.append(pl.DataFrame(rows, schema=schema, orient="row"))
    items = pl.concat(chunks)
    seen = sorted(gather_gens(cfg, lake)[source_name].glob("b-*/files-*.parquet"))
    if not seen or not items.height:
        return items, 0
    done = pl.scan_parquet(seen).select("uri", "fingerprint").collect()
    new = items.join(done, on=["uri", "fingerprint"], how="anti", maintain_order="left")
    return new, items.height - new.height


SPAN_COLUMNS = ("span_start", "span_stop", "span_row")


def _split_large(src, items, max_rows: int) -> list:
    """`items` (a frame of ITEM_COLUMNS) as frames in item order: runs of items read whole, and
    one one-row frame (with SPAN_COLUMNS) per span of each large JSONL/CSV/Parquet/WARC file
    (sources/spans.py)."""
    import polars as pl

    from sources.spans import SPLITTABLE, row_spans

    if src.kind not in SPLITTABLE:
        return [items]
    # A file's size is in its fingerprint ("size:mtime_ns"); flagged items have no number there.
    size = pl.col("fingerprint").str.extract(r"^(\d+):\d+$").cast(pl.Int64)
    items = items.with_columns(_size=size)
    out, start = [], 0
    for i, (path, n) in enumerate(items.select("path", "_size").iter_rows()):
        spans = row_spans(src, path, n, max_rows) if n is not None else []
        if not spans:
            continue
        if i > start:
            out.append(items.slice(start, i - start).drop("_size"))
        one = items.slice(i, 1).drop("_size")
        for a, b, row in spans:
            out.append(one.with_columns(span_start=pl.lit(a), span_stop=pl.lit(b), span_row=pl.lit(row)))
        start = i + 1
    if start < items.height:
        out.append(items.slice(start).drop("_size"))
    return out


def gather_plan(cfg: PipelineConfig, lake: Lake, source_name: str) -> tuple[str, list[dict], int]:
    """List a source's new items and cut them into partitions written as plan files.

    Whole items are cut into runs of `size` items; a JSONL, CSV, Parquet or WARC file with more than
    `run.partition_rows` records is read in spans of that many records, a partition each
    (named from the span too), so a task's memory does not grow with the file.
    Returns (plan key, [{part, plan}], items skipped as already gathered).
    """
    items, skipped = _new_items(cfg, lake, source_name)
    if items.height == 0:
        return "", [], skipped
    src = next(s for s in cfg.sources if s.name == source_name)
    # The task-run cap is shared by all sources of one flow run.
    cap = max(1, cfg.run.max_partitions // max(1, len(cfg.sources)))
    size = max(cfg.run.partition_rows, math.ceil(items.height / cap))
    src_key = stable_hash(src.model_dump(mode="json"))
    parts = []
    plans_dir = lake.cache_dir("plans") / "gather"
    for run in _split_large(src, items, cfg.run.partition_rows):
        for start in range(0, run.height, size):
            chunk = run.slice(start, size)
            if "span_start" in chunk.columns:
                part = stable_hash(src_key, chunk.select("uri", "fingerprint", *SPAN_COLUMNS).rows())
            else:  # named as before spans existed: lakes gathered then find their partitions
                part = stable_hash(src_key, chunk.select("uri", "fingerprint").rows())
            plan = plans_dir / f"{part}.parquet"
            if not plan.exists():
                write_parquet_atomic(chunk.to_arrow(), plan)
            parts.append({"part": part, "plan": str(plan)})
    return stable_hash([p["part"] for p in parts]), parts, skipped


def _item_order(documents: Path) -> tuple:
    """Where a gather partition's rows stand in its source: its first document's uri, as path
    components and row (or record) number, since a source's items are discovered in path order
    and a partition holds a run of them (or one span of a file). A partition with no documents
    has nothing to deduplicate and sorts first."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(documents)
    if pf.metadata.num_rows == 0:
        return ((), 0)
    uri = pf.read_row_group(0, columns=["uri"]).column(0)[0].as_py()
    where, _, tail = uri.rpartition("#")
    number = tail.lstrip("abcdefghijklmnopqrstuvwxyz")
    if where and tail and number.isdigit():
        return (tuple(where.split("/")), int(number))
    return (tuple(uri.split("/")), 0)


def curate_plan(cfg: PipelineConfig, lake: Lake) -> tuple[str, list[dict], int]:
    """New documents partitions to curate: [{part, input}] in survivor order, plus how many
    were done before.

    The order decides which row of a duplicate cluster survives among the new ones (rows
    already kept always win: filters/dedup_lake.py KeptLake gives them the first orders): the sources in config order,
    then each source's partitions in item order (`_item_order`). It depends on neither file
    names nor earlier runs, so survivors do not move when sources are added or the lake is
    rebuilt. A part is named from its gather generation and documents file: the same file
    under another gather config is another part.
    """
    done = committed_parts(curate_gen(cfg, lake))
    parts, skipped = [], 0
    for rank, gen in enumerate(gather_gens(cfg, lake).values()):  # config order
        new = []
        for f in current_files(gen, "documents"):
            part = stable_hash("curate", gen.name, f.name)
            if part in done:
                skipped += 1
            else:
                new.append(((rank, *_item_order(f), part), {"part": part, "input": str(f)}))
        parts += [p for _, p in sorted(new, key=lambda kp: kp[0])]
    return stable_hash([p["part"] for p in parts]), parts, skipped


def distill_plan(cfg: PipelineConfig, lake: Lake) -> tuple[str, list[dict], int]:
    """Curated partitions not yet distilled in this generation: [{part, input}], plus how many were."""
    done = committed_parts(distill_gen(cfg, lake))
    parts = [
        {"part": stable_hash("distill", f.name), "input": str(f)}
        for f in current_files(curate_gen(cfg, lake), "curated")
    ]
    new = [p for p in parts if p["part"] not in done]
    return stable_hash([p["part"] for p in new]), new, len(parts) - len(new)


def shard_plan(cfg: PipelineConfig, lake: Lake) -> tuple[Path, list[dict]]:
    """The build folder for the current curated rows and traces, and its input parts."""
    build = shard_build_dir(cfg, lake)
    inputs = [{"kind": "curated", "input": str(f)} for f in current_files(curate_gen(cfg, lake), "curated")]
    inputs += [{"kind": "traces", "input": str(f)} for f in current_files(distill_gen(cfg, lake), "traces")]
    for p in inputs:
        p["part"] = stable_hash("shard", p["kind"], Path(p["input"]).name)
    return build, inputs


def plan_gather(cfg: PipelineConfig, lake: Lake) -> StagePlan:
    """One unit per source with new items (the batch goes into the source's generation)."""
    gens, units, skipped = gather_gens(cfg, lake), [], 0
    for name, gen in gens.items():
        key, parts, n_skipped = gather_plan(cfg, lake, name)
        skipped += n_skipped
        units.append(Unit(str(gen), key, [{**p, "source": name} for p in parts]))
    return StagePlan(
        units,
        skipped,
        idle={
            "stage": "gather",
            "batch": "",
            "skipped": skipped,
            "note": f"{skipped} unchanged items skipped",
            "says": f"gather: no new items, {skipped} unchanged items skipped",
        },
    )


def commit_curate(ctx: StepContext) -> list[Path]:
    """Commit curate's batch, its generation first recording the sources it now curates
    (generations.curate_gen). Recorded at the commit, not when the run starts, so a run that
    fails (a full disk, a kill) leaves the lake as it was; recorded just before the batch's
    rename, so a committed batch's sources are always on the record."""
    record_upstream(ctx.cfg, ctx.lake, Path(ctx.unit.gen))
    done = ctx.batch.commit()
    return [] if done is None else [done]


def plan_curate(cfg: PipelineConfig, lake: Lake) -> StagePlan:
    key, parts, skipped = curate_plan(cfg, lake)
    for i, p in enumerate(parts):
        p["index"] = i  # the part's number in the dedup step's frame
    return StagePlan([Unit(str(curate_gen(cfg, lake)), key, parts)], skipped, idle=_idle("curate", skipped))


def plan_distill(cfg: PipelineConfig, lake: Lake) -> StagePlan:
    key, parts, skipped = distill_plan(cfg, lake)
    return StagePlan([Unit(str(distill_gen(cfg, lake)), key, parts)], skipped, idle=_idle("distill", skipped))


def _idle(stage: str, skipped: int) -> dict:
    return {
        "stage": stage,
        "batch": None,
        "skipped": skipped,
        "note": "",
        "says": f"{stage}: no new partitions, {skipped} done before",
    }


def plan_shard(cfg: PipelineConfig, lake: Lake) -> StagePlan:
    """The build's samples batch is written inside the build's hidden folder; an existing
    build (its manifest is written last) is done."""
    build, parts = shard_plan(cfg, lake)
    unit = Unit(str(build.parent), build.name, parts, tmp=str(build.parent / f".tmp-{build.name}" / "samples"))
    idle = {
        "stage": "shard",
        "batch": build.name,
        "skipped": len(parts),
        "note": "already built",
        "says": f"shard: {build.name} is already built for these inputs",
    }
    if (build / "manifest.json").exists():
        return StagePlan([unit], len(parts), done="already built", batch=build.name, idle=idle)
    return StagePlan([unit], 0, idle=idle, must_run=True)


def plan_train(cfg: PipelineConfig, lake: Lake) -> StagePlan:
    """Train is not partitioned: it is done when the run for this build and config finished."""
    from trainer.completion import finished_report

    out = train_gen(cfg, lake)
    idle = {
        "stage": "train",
        "batch": out.name,
        "skipped": 1,
        "note": "already trained",
        "says": f"train: {out.name} is already trained on this shard build with this config",
    }
    if finished_report(out) is not None:
        return StagePlan([], 1, done="already trained", batch=out.name, idle=idle)
    return StagePlan([], 0, idle=idle, must_run=True)


# Every stage's plan, by name (lake.STAGES): the flows' driver and up_to_date ask the same.
PLANS: dict[str, Callable[[PipelineConfig, Lake], StagePlan]] = {
    "gather": plan_gather,
    "curate": plan_curate,
    "distill": plan_distill,
    "shard": plan_shard,
    "train": plan_train,
}


def up_to_date(cfg: PipelineConfig, stages: list[str]) -> list[dict] | None:
    """When every one of `stages` has nothing to do on this lake, what each would record in
    `runs` (stage, batch, skipped, note: as its flow records a run that found nothing new)
    and the line it says; None as soon as one stage has work.

    Each earlier stage being up to date means its outputs will not change, so asking each
    stage against the lake as it is now gives the answer a full run would find. What this
    cannot judge (no lake yet, a source input that is missing) counts as work, so the full
    run reports it; so does a shard build already made that is not the lake's current one
    (a config switched back): the shard stage makes it current and train must read it.
    """
    lake = Lake(cfg.lake_root)
    if not lake.catalog_path.exists():
        return None
    from sources.discovery import missing_inputs

    rows = []
    for stage in stages:
        if stage == "gather" and missing_inputs(cfg.sources, cfg.base_dir):
            return None
        plan = PLANS[stage](cfg, lake)
        if plan.has_work:
            return None
        if stage == "shard" and (current_build(lake) or Path()).name != plan.batch:
            return None  # its build is made but not current: the run makes it so, and train follows
        rows.append(plan.idle)
    return rows
