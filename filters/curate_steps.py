"""Curate's steps on the batch of one run (the stage: flows/curate.py).

Each partition's intermediate is written atomically under the batch's work folder, so a
crash redoes only unfinished partitions:
1. filter   per partition: rules, PII redaction, decontamination -> candidates + rejects, and
            the candidates' exact and near-duplicate signatures
2. dedup    exact keys once, LSH candidates in one task per band range, verification once,
            against the kept rows' keys of earlier batches read out of core (filters/dedup_lake.py)
3. finish   per partition: candidates split into curated and duplicates
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

import filters
from distillery.generations import curate_gen, current_files
from distillery.lake import write_parquet_atomic
from distillery.result import PartitionResult
from distillery.stage import StepContext
from filters.dedup import KEY_SCHEMA, kept_keys
from filters.dedup_lake import KeptLake, Limits, band_ranges, band_step, exact_step, split_keys, verify_step


def filter_parts(ctx: StepContext, group: list[dict]) -> list[str]:
    """Filter each partition and compute its candidates' dedup keys; return the work folders."""
    return [filter_step(ctx, p["part"], p["input"]) for p in group]


def filter_step(ctx: StepContext, part: str, input_file: str) -> str:
    work = ctx.batch.scratch / part
    if (work / "keys.parquet").exists():
        return str(work)
    cfg, root = ctx.cfg, ctx.lake.root
    docs = pl.read_parquet(input_file)
    result = filters.filter_partition(docs, cfg.curate, root)
    keys = filters.dedup_keys(result.tables.get("curated", docs.clear()), cfg.curate, root)
    for name, df in (
        ("candidates", result.tables.get("curated")),
        ("rejects", result.tables.get("rejects")),
        ("quarantine", result.tables.get("quarantine")),
    ):
        write_parquet_atomic((df if df is not None else pl.DataFrame()).to_arrow(), work / f"{name}.parquet")
    write_parquet_atomic(pl.DataFrame({"rows_in": [result.rows_in]}).to_arrow(), work / "rows_in.parquet")
    write_parquet_atomic(keys.to_arrow(), work / "keys.parquet")  # written last: the step's commit point
    return str(work)


def _dedup_dir(ctx: StepContext) -> Path:
    return ctx.batch.scratch / "dedup"


def _limits(ctx: StepContext) -> Limits:
    return Limits(memory_mb=ctx.cfg.run.dedup_memory_mb, threads=ctx.cfg.run.workers or os.cpu_count() or 1)


def dedup_exact_step(ctx: StepContext) -> KeptLake:
    """The kept lake's key files, and the new candidates' exact duplicates against them and
    each other (filters/dedup_lake.py step 1); the kept lake is what the later steps read."""
    gen = curate_gen(ctx.cfg, ctx.lake)
    kept = KeptLake.of(current_files(gen, "dedup_keys"), current_files(gen, "dedup_sketches"))
    work = _dedup_dir(ctx)
    if (work / "exact.parquet").exists():
        return kept
    frames = []
    for i, p in enumerate(ctx.unit.parts):
        keys = pl.read_parquet(Path(p["work"]) / "keys.parquet")
        frames.append(keys.with_columns(_part=pl.lit(i, pl.Int32), _row=pl.int_range(pl.len(), dtype=pl.Int64)))
    new = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    new = new if new.height else pl.DataFrame(schema=KEY_SCHEMA | {"_part": pl.Int32, "_row": pl.Int64})
    exact_step(new, kept, ctx.cfg.curate, work, _limits(ctx))
    return kept


def band_tasks(ctx: StepContext) -> list[tuple[int, int]]:
    """The LSH band ranges, one candidate task each (none when MinHash is off)."""
    mh = ctx.cfg.curate.dedup.minhash
    if not (ctx.cfg.curate.dedup.enabled and mh.enabled):
        return []
    return band_ranges(mh.num_bands, ctx.cfg.run.dedup_band_tasks)


def dedup_band_step(ctx: StepContext, bands: tuple[int, int]) -> str:
    """Candidate pairs of one band range (filters/dedup_lake.py step 2)."""
    return band_step(bands[0], bands[1], ctx.state["kept"], ctx.cfg.curate, _dedup_dir(ctx), _limits(ctx))


def dedup_step(ctx: StepContext) -> str:
    """Verify the candidates and write every new candidate's duplicate row (by partition and
    row) for the finish step (filters/dedup_lake.py step 3)."""
    out = ctx.batch.scratch / "duplicates.parquet"
    if out.exists():
        return str(out)
    work = _dedup_dir(ctx)
    dups = verify_step(ctx.state.get("pairs", []), ctx.state["kept"], ctx.cfg.curate, work, _limits(ctx))
    placed = pl.read_parquet(work / "new.parquet", columns=["order", "_part", "_row"])
    dups = dups.join(placed, on="order").select("_part", "_row", "duplicate_of", "method", "similarity")
    write_parquet_atomic(dups.to_arrow(), out)
    return str(out)


def finish_parts(ctx: StepContext, group: list[dict]) -> list[dict]:
    """Split each partition's candidates into curated rows and duplicates, and write it."""
    return [finish_step(ctx, p["part"], p["index"], p["work"], p["input"], ctx.state["duplicates"]) for p in group]


def finish_step(ctx: StepContext, part: str, index: int, work: str, input_file: str, duplicates: str) -> dict:
    batch, num_bands = ctx.batch, ctx.cfg.curate.dedup.minhash.num_bands
    if batch.part_done(part):
        return batch.ledger(part)
    w = Path(work)
    cand = pl.read_parquet(w / "candidates.parquet").with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    keys = pl.read_parquet(w / "keys.parquet")
    dups = pl.read_parquet(duplicates).filter(pl.col("_part") == index).drop("_part")
    marked = cand.join(dups, on="_row", how="left", maintain_order="left")
    is_dup = pl.col("duplicate_of").is_not_null()
    curated = marked.filter(~is_dup).drop("_row", "duplicate_of", "method", "similarity")
    duplicate_rows = marked.filter(is_dup).drop("_row").with_columns(stage=pl.lit("curate"))
    result = PartitionResult(
        rows_in=pl.read_parquet(w / "rows_in.parquet")["rows_in"][0],
        tables={
            "curated": curated,
            "duplicates": duplicate_rows,
            "rejects": _nonempty(w / "rejects.parquet"),
            "quarantine": _nonempty(w / "quarantine.parquet"),
            **dict(zip(("dedup_keys", "dedup_sketches"), split_keys(kept_keys(keys, curated), num_bands))),
        },
    )
    return batch.write_part(part, [Path(input_file).stem], result)


def _nonempty(path: Path) -> pl.DataFrame | None:
    df = pl.read_parquet(path)
    return df if df.width else None
