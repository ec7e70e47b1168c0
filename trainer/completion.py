"""A finished training run's record: where every row of the shard build went, and the report.

The train stage reads every row of one shard build. Its counts (one ledger row per run):
rows_in = the build's rows; kept = the rows the run used (trained on: split "train"; or
held out and evaluated on: split "val"); quarantined = the rows it could not use, each
written to the quarantine table with a reason (`empty_row`, `token_ids_outside_vocabulary`,
`split_not_train_or_val`). Rejected and duplicate are always 0: earlier stages drop those.

The record lives in `<run>/done/` (ledger, quarantine, report.json). It is written in a hidden
folder and renamed into place when whole, after the final checkpoint: its presence means the
run finished, so a re-run with the same build and config skips training. Reading it needs no
torch (a skipped train must not pay seconds for importing it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distillery import tables as T
from distillery.lake import write_bytes_atomic, write_parquet_atomic
from trainer.shardset import ShardIndex

RECORD_DIR = "done"
REPORT_NAME = "report.json"
# Report keys that go to the record's tables, not to report.json.
ROW_KEYS = ("row_outcomes", "unusable_rows")


def finished_report(run_dir: Path) -> dict | None:
    """The report of a finished run in `run_dir`, or None when it has not finished (or its
    final checkpoint has since been lost: then it must be trained again)."""
    try:
        report = json.loads((Path(run_dir) / RECORD_DIR / REPORT_NAME).read_text())
    except FileNotFoundError:
        return None
    return report if (Path(run_dir) / Path(report["checkpoint"]).name).exists() else None


def discard_record(run_dir: Path) -> bool:
    """Remove a record that no longer holds (its checkpoint lost) before training again, so
    that a run killed while retraining is not taken as finished; True if there was one."""
    record = Path(run_dir) / RECORD_DIR
    if not record.exists():
        return False
    shutil.rmtree(record)
    return True


def row_outcomes(index: ShardIndex) -> tuple[dict, list[dict]]:
    """Counts {rows_in, kept, quarantined} over the build's rows, and a quarantine row for
    each row the trainer cannot use (ids read only from the row groups that hold one)."""
    usable = (index.split < 2) & (index.n_eff > 0)
    bad = np.flatnonzero(~usable)
    counts = {"rows_in": len(usable), "kept": int(usable.sum()), "quarantined": len(bad)}
    rows: list[dict] = []
    vocab = index.manifest.vocab_size
    for g in np.unique(index.doc_group[bad]):
        docs = bad[index.doc_group[bad] == g]
        fi, rg = (int(v) for v in index.groups[g])
        path = index.manifest.files[fi]
        t = pq.ParquetFile(path).read_row_group(rg, columns=["id", "source"])
        take = pa.array(docs - index.group_first[g])
        ids, sources = t.column("id").take(take).to_pylist(), t.column("source").take(take).to_pylist()
        for d, row_id, source in zip(docs, ids, sources):
            if index.length[d] == 0:
                reason, error = "empty_row", "the row has no tokens"
            elif index.n_eff[d] == 0:
                reason, error = "token_ids_outside_vocabulary", f"a token id is >= the manifest's vocab_size {vocab}"
            else:
                reason, error = "split_not_train_or_val", "its split is neither train nor val"
            rows.append(
                {"stage": "train", "source": source, "uri": str(path), "id": row_id, "reason": reason, "error": error}
            )
    return counts, rows


def commit_record(run_dir: Path, build_name: str, report: dict) -> dict:
    """Write the finished run's record (ledger, quarantine, report.json) and rename it into
    place; return the ledger row. `report` is train()'s, with its row_outcomes and unusable_rows."""
    run_dir = Path(run_dir)
    part = run_dir.name
    counts = report["row_outcomes"]
    row = {
        "stage": "train",
        "part": part,
        "inputs": [build_name],
        "rows_in": counts["rows_in"],
        "kept": counts["kept"],
        "rejected": 0,
        "duplicate": 0,
        "quarantined": counts["quarantined"],
    }
    tmp, final = run_dir / f".tmp-{RECORD_DIR}", run_dir / RECORD_DIR
    shutil.rmtree(tmp, ignore_errors=True)  # a killed earlier attempt's
    quarantine = pa.Table.from_pylist(report["unusable_rows"], schema=T.QUARANTINE)
    write_parquet_atomic(quarantine, tmp / f"quarantine-{part}.parquet")
    write_parquet_atomic(pa.Table.from_pylist([row], schema=T.LEDGER), tmp / f"ledger-{part}.parquet")
    kept = {k: v for k, v in report.items() if k not in ROW_KEYS}
    write_bytes_atomic(json.dumps(kept, indent=1, default=str).encode(), tmp / REPORT_NAME)
    if final.exists():  # only when the trainer was run again by hand into a finished folder
        shutil.rmtree(final)
    os.replace(tmp, final)  # the commit point
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return row
