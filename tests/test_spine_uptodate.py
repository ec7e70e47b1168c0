"""A re-run with nothing to do ends without Prefect; one with new input runs in full.

The user's path: `distillery run CONFIG` as a subprocess with no PREFECT_API_URL. The first
run gathers and curates; the same command again finds both stages up to date
(distillery/plans.py), records their `runs` rows as the stages would and prints the summary,
without importing Prefect (so no server and no flow run); after a new file appears in a
source, the same command runs the pipeline again and gathers it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import user_env

from distillery.lake import Lake
from distillery.sql import query
from tests.test_reliability_default_path import write_config


def cli(cfg: Path, folder: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *flags, "-m", "distillery.cli", "run", str(cfg), "--stages", "gather,curate"],
        cwd=folder,
        env=user_env(folder),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_noop_rerun_skips_prefect_records_runs_and_new_input_runs_in_full(tmp_path, samples):
    cfg = write_config(tmp_path, samples, "http://127.0.0.1:9/v1", articles=True)
    lake = Lake(tmp_path / "lake")
    first = cli(cfg, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "up to date" not in first.stdout
    docs = query(lake, "select count(*) from documents")[1][0][0]

    again = cli(cfg, tmp_path, "-X", "importtime")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "up to date: gather, curate have nothing new to do" in again.stdout
    assert "accounting: OK" in again.stdout
    imported = {line.split("|")[-1].strip() for line in again.stderr.splitlines() if line.startswith("import time:")}
    assert "prefect" not in imported and "prefect.flows" not in imported
    runs = query(lake, "select run_id, stage, rows_in, skipped, note from runs order by finished_at, stage")[1]
    noop = [r for r in runs if r[0] == runs[-1][0]]
    assert sorted(r[1] for r in noop) == ["curate", "gather"] and all(r[2] == 0 for r in noop)
    gather_row = next(r for r in noop if r[1] == "gather")
    assert gather_row[3] > 0 and gather_row[4] == f"{gather_row[3]} unchanged items skipped"

    (samples / "samples" / "text" / "zz-new-article.txt").write_text(
        "A new article arrives after the first run. " * 40 + "\nIt must be gathered by the next run.\n"
    )
    try:
        third = cli(cfg, tmp_path)
    finally:
        (samples / "samples" / "text" / "zz-new-article.txt").unlink()
    assert third.returncode == 0, third.stderr[-3000:]
    assert "up to date" not in third.stdout
    assert query(lake, "select count(*) from documents")[1][0][0] == docs + 1
