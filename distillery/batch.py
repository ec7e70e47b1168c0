"""Batches and partitions: how a stage writes so that a crash loses nothing and shows nothing half-done.

A stage run plans its new partitions, writes each one into a hidden folder
`<gen>/.tmp-<plan>/` (every file by temp-name-and-rename, the partition's ledger file last),
then renames the folder to `<gen>/b-<hash of its partitions>/`. Readers glob `b-*` only, so
they see whole batches or nothing. A crashed run leaves `.tmp-<plan>/`; the re-run with the
same plan finds the partitions already finished there and does not redo them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distillery import tables as T
from distillery.lake import KEPT_TABLE, ROW_GROUP_ROWS, STAGE_TABLES, stable_hash, write_parquet_atomic
from distillery.result import PartitionResult, conform


class AccountingError(RuntimeError):
    """A partition's rows do not add up: rows in != kept + rejected + duplicate + quarantined."""


def ledger_row(stage: str, part: str, inputs: list[str], result: PartitionResult) -> dict:
    """Count where a partition's rows went, and refuse a partition whose counts do not add up."""

    def rows(name: str) -> int:
        df = result.tables.get(name)
        return 0 if df is None else df.height

    kept_table = KEPT_TABLE[stage]
    kept = rows(kept_table) if kept_table else int(result.stats.get("kept", 0))
    row = {
        "stage": stage,
        "part": part,
        "inputs": list(inputs),
        "rows_in": int(result.rows_in),
        "kept": kept,
        "rejected": rows("rejects"),
        "duplicate": rows("duplicates"),
        "quarantined": rows("quarantine"),
    }
    out = row["kept"] + row["rejected"] + row["duplicate"] + row["quarantined"]
    if out != row["rows_in"]:
        raise AccountingError(
            f"{stage} partition {part}: {row['rows_in']} rows in but {out} out "
            f"(kept {kept}, rejected {row['rejected']}, duplicate {row['duplicate']}, "
            f"quarantined {row['quarantined']})"
        )
    return row


def committed_parts(gen_dir: Path) -> set[str]:
    """Names of the partitions already committed in a generation folder."""
    return {p.name[len("ledger-") : -len(".parquet")] for p in gen_dir.glob("b-*/ledger-*.parquet")}


class Batch:
    """One stage run's partitions, committed together by a single rename."""

    def __init__(self, gen_dir: Path, stage: str, plan_key: str, tmp: Path | None = None):
        """`tmp`: where the partitions are written when not `<gen>/.tmp-<plan_key>` (a shard
        build writes its samples inside the build's own hidden folder)."""
        self.gen_dir = gen_dir
        self.stage = stage
        self.tmp = tmp if tmp is not None else gen_dir / f".tmp-{plan_key}"

    @property
    def scratch(self) -> Path:
        """Intermediate files of multi-step stages; removed when the batch commits."""
        return self.tmp / ".work"

    def part_done(self, part: str) -> bool:
        """True when a previous attempt finished this partition (its ledger is written last)."""
        return (self.tmp / f"ledger-{part}.parquet").exists()

    def part_path(self, table: str, part: str) -> Path:
        return self.tmp / f"{table}-{part}.parquet"

    def ledger(self, part: str) -> dict:
        """The ledger row a finished partition wrote (see `ledger_row`)."""
        return pq.read_table(self.part_path("ledger", part)).to_pylist()[0]

    def write_part(self, part: str, inputs: list[str], result: PartitionResult) -> dict:
        """Write every table of one partition, then its ledger row; return the ledger row."""
        row = ledger_row(self.stage, part, inputs, result)
        for name, schema in STAGE_TABLES[self.stage].items():
            df = result.tables.get(name)
            if schema is None:
                table = df.to_arrow() if df is not None else pa.table({})
            else:
                table = conform(df, schema)
            write_parquet_atomic(table, self.part_path(name, part), ROW_GROUP_ROWS.get(name))
        write_parquet_atomic(pa.Table.from_pylist([row], schema=T.LEDGER), self.part_path("ledger", part))
        return row

    def parts(self) -> list[str]:
        return sorted(p.name[len("ledger-") : -len(".parquet")] for p in self.tmp.glob("ledger-*.parquet"))

    def commit(self) -> Path | None:
        """Make the batch visible by renaming it; None when it holds no partition."""
        parts = self.parts()
        if not parts:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return None
        # Scratch and stray temp files of a killed writer must not enter the committed batch.
        shutil.rmtree(self.scratch, ignore_errors=True)
        for stray in self.tmp.glob(".*.tmp"):
            stray.unlink(missing_ok=True)
        final = self.gen_dir / f"b-{stable_hash(self.stage, parts)}"
        if final.exists():  # the same partitions were committed by an earlier attempt
            shutil.rmtree(self.tmp, ignore_errors=True)
            return final
        os.replace(self.tmp, final)
        fd = os.open(self.gen_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return final


def task_groups(items: list, max_groups: int) -> list[list]:
    """Cut `items` into at most `max_groups` contiguous groups of near-equal size.

    A flow run hands each group to one task, so the number of task runs stays bounded
    (Prefect's local server drops events past a few thousand task runs in one flow run)
    however many partitions a lake accumulates.
    """
    if not items:
        return []
    n = min(len(items), max(1, max_groups))
    size, extra = divmod(len(items), n)
    groups, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        groups.append(items[start:end])
        start = end
    return groups
