"""The DuckDB catalog: `lake/catalog.duckdb` holds one view per lake table.

Views glob the committed partition files of the current generations, so they always show
the partitions present; a view over a stage that has not run yet is empty (backed by an
empty table of the right schema), not missing. Views are rewritten after every stage.

Shards come from the lake's one current build (lake/shard/CURRENT, distillery/shard_current.py),
the build train reads and `distillery shards verify|show|path` print, whatever config ran
last. That config may not have made it yet (its curate or distill generation, or its shard
section, changed and shard has not run since): the `shard_build` view says both names
(`current_build`, `config_build`), and the accounting reports the difference as pending.
"""

from __future__ import annotations

import glob
import json
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from distillery import tables as T
from distillery.config import PipelineConfig
from distillery.generations import curate_gen, distill_gen, gather_gens, shard_build_dir, train_gen
from distillery.lake import Lake
from distillery.shard_current import current_build

VIEW_SCHEMAS: dict[str, pa.Schema] = {
    "documents": T.DOCUMENT,
    "curated": T.DOCUMENT,
    "rejects": T.REJECT,
    "duplicates": T.DUPLICATE,
    "quarantine": T.QUARANTINE,
    "traces": T.TRACE,
    "shards": T.SHARD_ROW,
    "runs": T.RUN,
    # the ledger also says which file each row came from: accounting checks that every
    # table of a ledgered partition sits beside it (a lost file with no rows changes no count)
    "ledger": T.LEDGER.append(pa.field("filename", pa.string())),
    "gathered_files": T.GATHERED_FILE,
}


def view_patterns(cfg: PipelineConfig, lake: Lake) -> dict[str, list[str]]:
    """Glob patterns per view for the current generations of `cfg`."""
    gathers = list(gather_gens(cfg, lake).values())
    curate, distill = curate_gen(cfg, lake), distill_gen(cfg, lake)
    trained = train_gen(cfg, lake) / "done"  # a training run's record (trainer/completion.py)

    shard = current_build(lake)  # None until a shard run records one
    builds = [shard] if shard else []

    def globs(dirs: list[Path], table: str) -> list[str]:
        return [str(d / "b-*" / f"{table}-*.parquet") for d in dirs]

    def samples(table: str) -> list[str]:  # a build keeps its per-partition tables in samples/
        return [str(b / "samples" / f"{table}-*.parquet") for b in builds]

    every = gathers + [curate, distill]
    return {
        "documents": globs(gathers, "documents"),
        "gathered_files": globs(gathers, "files"),
        "curated": globs([curate], "curated"),
        "duplicates": globs([curate], "duplicates"),
        "traces": globs([distill], "traces"),
        "rejects": globs(every, "rejects") + samples("rejects"),
        "quarantine": globs(every, "quarantine") + samples("quarantine") + [str(trained / "quarantine-*.parquet")],
        "ledger": globs(every, "ledger") + samples("ledger") + [str(trained / "ledger-*.parquet")],
        "shards": [f for b in builds for f in _manifest_shards(b)],
        "runs": [str(lake.runs_dir / "*.parquet")],
    }


def _manifest_shards(build: Path) -> list[str]:
    """The shard files a build's manifest lists; none until the manifest (the commit point) exists."""
    try:
        manifest = json.loads((build / "manifest.json").read_text())
    except FileNotFoundError:
        return []
    return [str(build / s["file"]) for s in manifest["shards"]]


def _literal(text: str | None) -> str:
    return "NULL" if text is None else "'" + text.replace("'", "''") + "'"


def _matches(pattern: str) -> bool:
    return next(glob.iglob(pattern), None) is not None


def connect(lake: Lake, read_only: bool = False, attempts: int = 50) -> duckdb.DuckDBPyConnection:
    """Open the catalog, waiting briefly while another process holds it for writing."""
    for i in range(attempts):
        try:
            return duckdb.connect(str(lake.catalog_path), read_only=read_only)
        except duckdb.IOException:
            if i == attempts - 1:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def refresh(cfg: PipelineConfig, lake: Lake) -> None:
    """Rewrite every view for the current generations (call while holding the writer lock)."""
    patterns = view_patterns(cfg, lake)
    con = connect(lake)
    try:
        con.execute("BEGIN")
        for name, schema in VIEW_SCHEMAS.items():
            present = [p for p in patterns[name] if _matches(p)]
            if present:
                files = ", ".join(_literal(p) for p in present)
                options = ", filename = true" if "filename" in schema.names else ""
                if name == "runs":  # runs files written before a column was added lack it: NULL there
                    options += ", union_by_name = true"
                con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet([{files}]{options})")
            else:
                empty = schema.empty_table()  # noqa: F841 (read by DuckDB's replacement scan)
                con.execute(f"CREATE OR REPLACE TABLE _empty_{name} AS SELECT * FROM empty")
                con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _empty_{name}")
        current = current_build(lake)
        con.execute(
            "CREATE OR REPLACE VIEW shard_build AS SELECT "
            f"{_literal(current.name if current else None)}::VARCHAR AS current_build, "
            f"{_literal(shard_build_dir(cfg, lake).name)}::VARCHAR AS config_build"
        )
        con.execute("COMMIT")
    finally:
        con.close()
