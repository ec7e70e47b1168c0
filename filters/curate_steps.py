"""Curate's steps on the batch of one run (the stage: flows/curate.py).

Each partition's intermediate is written atomically under the batch's work folder, so a
crash redoes only unfinished partitions:
1. filter   per partition: rules, PII redaction, decontamination -> candidates + rejects, and
            the candidates' exact and near-duplicate signatures
2. dedup    once: clusters over new keys and the kept rows' keys of earlier batches
3. finish   per partition: candidates split into curated and duplicates
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

import filters
from distillery.generations import curate_gen, current_files
from distillery.lake import write_parquet_atomic
from distillery.result import PartitionResult
from distillery.stage import StepContext
from filters.dedup import kept_keys, survivor_order


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


def dedup_step(ctx: StepContext) -> str:
    """Find duplicates among the new candidates and against kept rows of earlier batches."""
    cfg, works = ctx.cfg, [p["work"] for p in ctx.unit.parts]
    out = ctx.batch.scratch / "duplicates.parquet"
    if out.exists():
        return str(out)
    existing_files = current_files(curate_gen(cfg, ctx.lake), "dedup_keys")
    existing = None
    if existing_files:
        existing = pl.concat([pl.read_parquet(f) for f in existing_files], how="diagonal_relaxed")
    frames = []
    for i, w in enumerate(works):
        keys = pl.read_parquet(Path(w) / "keys.parquet")
        frames.append(keys.with_columns(_part=pl.lit(i, pl.Int32), _row=pl.int_range(pl.len(), dtype=pl.Int64)))
    new = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    if new.height == 0:
        write_parquet_atomic(
            pl.DataFrame(
                {"_part": [], "_row": [], "duplicate_of": [], "method": [], "similarity": []},
                schema={
                    "_part": pl.Int32,
                    "_row": pl.Int64,
                    "duplicate_of": pl.String,
                    "method": pl.String,
                    "similarity": pl.Float64,
                },
            ).to_arrow(),
            out,
        )
        return str(out)
    existing, new = survivor_order(existing, new)
    dups = filters.find_duplicates(new.drop("_part", "_row"), existing, cfg.curate)
    dups = dups.join(new.select("order", "_part", "_row"), on="order").select(
        "_part", "_row", "duplicate_of", "method", "similarity"
    )
    write_parquet_atomic(dups.to_arrow(), out)
    return str(out)


def finish_parts(ctx: StepContext, group: list[dict]) -> list[dict]:
    """Split each partition's candidates into curated rows and duplicates, and write it."""
    return [finish_step(ctx, p["part"], p["index"], p["work"], p["input"], ctx.state["duplicates"]) for p in group]


def finish_step(ctx: StepContext, part: str, index: int, work: str, input_file: str, duplicates: str) -> dict:
    batch = ctx.batch
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
            "dedup_keys": kept_keys(keys, curated),
        },
    )
    return batch.write_part(part, [Path(input_file).stem], result)


def _nonempty(path: Path) -> pl.DataFrame | None:
    df = pl.read_parquet(path)
    return df if df.width else None
