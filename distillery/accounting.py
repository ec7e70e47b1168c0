"""Nothing vanishes: the accounting identity, checked from what is on disk.

A train "partition" is one finished training run over the current shard build: rows in =
the build's rows, kept = rows trained or evaluated on, quarantined = rows it could not use
(trainer/completion.py).

For every stage and partition: rows in = kept + rejected + duplicate + quarantined.
`check` verifies four things through the catalog, so it catches a lost file as well as
a wrong count:
1. each ledger row adds up;
2. every table file of each ledgered partition is still beside its ledger file (a lost
   file that held no rows changes no count);
3. the ledger's totals equal the rows actually present in each outcome table;
4. each stage consumed every row its upstream kept (or the gap is reported as pending).

Shard's rows are those of the lake's current build (lake/shard/CURRENT), which train reads
too. When the config that last refreshed the catalog makes another build (its curate or
distill generation or its shard section changed, and shard has not run since), the current
build was made from other inputs: comparing its rows with today's curated rows and traces
would be meaningless, so instead of that comparison the status says
`pending: shard: not yet run for this config ...`, naming both builds (the catalog's
`shard_build` view).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from distillery import tables as T
from distillery.catalog import connect
from distillery.lake import STAGE_TABLES, STAGES, Lake, write_parquet_atomic

# The files each committed partition keeps; a shard build drops its samples files once the
# shards hold them (flows/shard.py), so those are not required. A training run's record
# keeps its quarantine beside its ledger (trainer/completion.py).
PARTITION_FILES = {
    stage: [t for t in tables if (stage, t) != ("shard", "samples")] for stage, tables in STAGE_TABLES.items()
}
PARTITION_FILES["train"] = ["quarantine"]
OUTCOME_SQL = {
    # stage -> {ledger column: SQL counting the rows actually present}
    "gather": {"kept": "SELECT count(*) FROM documents"},
    "curate": {"kept": "SELECT count(*) FROM curated", "duplicate": "SELECT count(*) FROM duplicates"},
    # A prompt is a (source row, task); identical prompts share one trace listing every source row.
    "distill": {"kept": "SELECT count(*) FROM (SELECT DISTINCT unnest(source_ids), task FROM traces WHERE accepted)"},
    "shard": {"kept": "SELECT count(*) FROM shards"},
    # Train keeps the rows it trained or evaluated on; they stay in the shards, no table of its own.
    "train": {},
}
UPSTREAM_SQL = {
    "curate": "SELECT count(*) FROM documents",
    "shard": "SELECT (SELECT count(*) FROM curated) + (SELECT count(*) FROM traces)",
    "train": "SELECT count(*) FROM shards",
}


@dataclass
class StageCounts:
    stage: str
    rows_in: int = 0
    kept: int = 0
    rejected: int = 0
    duplicate: int = 0
    quarantined: int = 0
    partitions: int = 0

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.kept + self.rejected + self.duplicate + self.quarantined


@dataclass
class Status:
    stages: list[StageCounts]
    problems: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        head = (
            f"{'stage':<8} {'parts':>5} {'in':>8} {'kept':>8} {'rejected':>8} {'duplicate':>9} {'quarant.':>8}  adds up"
        )
        lines = [head, "-" * len(head)]
        for s in self.stages:
            lines.append(
                f"{s.stage:<8} {s.partitions:>5} {s.rows_in:>8} {s.kept:>8} {s.rejected:>8} "
                f"{s.duplicate:>9} {s.quarantined:>8}  {'yes' if s.balanced else 'NO'}"
            )
        lines += [f"pending: {p}" for p in self.pending]
        lines += [f"PROBLEM: {p}" for p in self.problems]
        lines.append("accounting: OK" if self.ok else f"accounting: {len(self.problems)} problem(s)")
        return "\n".join(lines)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, *params) -> int:
    return int(con.execute(sql, list(params)).fetchone()[0] or 0)


def _stale_build(con: duckdb.DuckDBPyConnection) -> str | None:
    """The pending line when the current build is not the one the catalog's config makes, else None."""
    try:
        current, wanted = con.execute("SELECT current_build, config_build FROM shard_build").fetchone()
    except duckdb.CatalogException:  # a catalog refreshed before the view existed
        return None
    if current is None or current == wanted:
        return None
    return (
        f"shard: not yet run for this config (it makes {wanted}); the shards view and train read "
        f"the lake's current build {current} (lake/shard/CURRENT), made from other inputs or shard config"
    )


def check(lake: Lake) -> Status:
    """Recount the lake's current generations and report every place the counts disagree."""
    con = connect(lake, read_only=True)
    try:
        stages, problems, pending = [], [], []
        stale = _stale_build(con)
        if stale:
            pending.append(stale)
        for stage in STAGES:
            row = con.execute(
                "SELECT count(*), coalesce(sum(rows_in),0), coalesce(sum(kept),0), coalesce(sum(rejected),0), "
                "coalesce(sum(duplicate),0), coalesce(sum(quarantined),0) FROM ledger WHERE stage = ?",
                [stage],
            ).fetchone()
            sc = StageCounts(
                stage,
                partitions=int(row[0]),
                rows_in=int(row[1]),
                kept=int(row[2]),
                rejected=int(row[3]),
                duplicate=int(row[4]),
                quarantined=int(row[5]),
            )
            stages.append(sc)
            for part, r_in, out in con.execute(
                "SELECT part, rows_in, kept + rejected + duplicate + quarantined FROM ledger "
                "WHERE stage = ? AND rows_in <> kept + rejected + duplicate + quarantined",
                [stage],
            ).fetchall():
                problems.append(f"{stage} partition {part}: {r_in} rows in, {out} out")
            for filename, part in con.execute("SELECT filename, part FROM ledger WHERE stage = ?", [stage]).fetchall():
                folder = Path(filename).parent
                missing = [t for t in PARTITION_FILES[stage] if not (folder / f"{t}-{part}.parquet").exists()]
                if missing:
                    problems.append(f"{stage} partition {part}: {', '.join(missing)} file missing from {folder}")
            actual = {
                "rejected": _scalar(con, "SELECT count(*) FROM rejects WHERE stage = ?", stage),
                "quarantined": _scalar(con, "SELECT count(*) FROM quarantine WHERE stage = ?", stage),
            }
            for column, sql in OUTCOME_SQL[stage].items():
                actual[column] = _scalar(con, sql)
            for column, n in actual.items():
                recorded = getattr(sc, column)
                if n != recorded:
                    problems.append(f"{stage}: the ledger records {recorded} {column} rows but {n} are present")
            if stage in UPSTREAM_SQL and sc.partitions and not (stage == "shard" and stale):
                upstream = _scalar(con, UPSTREAM_SQL[stage])
                if sc.rows_in > upstream:
                    problems.append(f"{stage}: consumed {sc.rows_in} rows but only {upstream} exist upstream")
                elif sc.rows_in < upstream:
                    pending.append(f"{stage}: {upstream - sc.rows_in} upstream rows not yet processed")
        return Status(stages, problems, pending)
    finally:
        con.close()


def record_run(
    lake: Lake,
    run_id: str,
    stage: str,
    batch: str | None,
    started: dt.datetime,
    counts: StageCounts,
    skipped: int,
    note: str = "",
    overrides: dict[str, str] | None = None,
) -> None:
    """Append one row to the `runs` table: what this run of this stage did, and the
    environment overrides (PipelineConfig.env_overrides) its config was read with."""
    row = {
        "run_id": run_id,
        "stage": stage,
        "batch": batch or "",
        "started_at": started,
        "finished_at": dt.datetime.now(dt.timezone.utc),
        "rows_in": counts.rows_in,
        "kept": counts.kept,
        "rejected": counts.rejected,
        "duplicate": counts.duplicate,
        "quarantined": counts.quarantined,
        "skipped": skipped,
        "balanced": counts.balanced,
        "note": note,
        "overrides": json.dumps(overrides or {}, sort_keys=True),
    }
    write_parquet_atomic(pa.Table.from_pylist([row], schema=T.RUN), lake.runs_dir / f"{run_id}-{stage}.parquet")


def total(rows: list[dict], stage: str) -> StageCounts:
    """Sum ledger rows of one run into a StageCounts."""
    sc = StageCounts(stage)
    for r in rows:
        sc.partitions += 1
        sc.rows_in += r["rows_in"]
        sc.kept += r["kept"]
        sc.rejected += r["rejected"]
        sc.duplicate += r["duplicate"]
        sc.quarantined += r["quarantined"]
    return sc
