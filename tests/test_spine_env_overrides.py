"""Environment overrides: applied once, by load_config, with one precedence; recorded in `runs`.

Precedence: a CLI flag (load_config's `overrides`) > the environment (DISTILLERY_LAKE,
DISTILLERY_TASK_RUNNER, DISTILLERY_RAY_ADDRESS) > the config file. The CLI test is the
user's path: `distillery run` as a subprocess with no PREFECT_API_URL (one Prefect server start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from distillery import tables as T
from distillery.config import ConfigError, load_config
from distillery.lake import write_parquet_atomic

REPO = Path(__file__).resolve().parents[1]


def _config(folder: Path) -> Path:
    rows = [{"text": f"Row {i} of a small corpus, long enough to keep its words together."} for i in range(6)]
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = folder / "pipeline.yaml"
    cfg.write_text(
        "lake: file-lake\nstages: [gather]\nsources: [{name: rows, kind: jsonl, paths: ['rows.jsonl']}]\n"
        "run: {task_runner: threads, workers: 1}\n"
    )
    return cfg


def test_flag_beats_environment_beats_file_and_only_deciding_variables_are_recorded(tmp_path, monkeypatch):
    cfg = _config(tmp_path)
    monkeypatch.chdir(tmp_path / "..")  # a relative DISTILLERY_LAKE is relative to the current folder
    for var in ("DISTILLERY_LAKE", "DISTILLERY_TASK_RUNNER", "DISTILLERY_RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    plain = load_config(cfg)
    assert plain.lake_root == tmp_path / "file-lake" and plain.env_overrides == {}

    monkeypatch.setenv("DISTILLERY_LAKE", "env-lake")
    monkeypatch.setenv("DISTILLERY_TASK_RUNNER", "processes")
    monkeypatch.setenv("DISTILLERY_RAY_ADDRESS", "")  # empty is unset
    from_env = load_config(cfg)
    env_lake = str(tmp_path.parent / "env-lake")
    assert str(from_env.lake_root) == env_lake and from_env.run.task_runner == "processes"
    assert from_env.env_overrides == {"DISTILLERY_LAKE": env_lake, "DISTILLERY_TASK_RUNNER": "processes"}

    flagged = load_config(cfg, {"lake": str(tmp_path / "flag-lake")})  # --lake wins; the variable decided nothing
    assert flagged.lake_root == tmp_path / "flag-lake"
    assert flagged.env_overrides == {"DISTILLERY_TASK_RUNNER": "processes"}

    monkeypatch.setenv("DISTILLERY_TASK_RUNNER", "gpu")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    msg = str(err.value)
    assert "\n" not in msg and "DISTILLERY_TASK_RUNNER" in msg and "run.task_runner" in msg and "'gpu'" in msg


def _env(folder: Path, lake: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), DISTILLERY_RUN_DIR=str(folder / ".run"), DISTILLERY_LAKE=lake)
    for key in ("PREFECT_API_URL", "PREFECT_HOME", "DISTILLERY_TASK_RUNNER", "DISTILLERY_RAY_ADDRESS"):
        env.pop(key, None)
    return env


def _cli(folder: Path, lake: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distillery.cli", *args],
        cwd=folder,
        env=_env(folder, lake),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_distillery_lake_is_honoured_by_run_sql_and_status_and_the_runs_row_records_it(tmp_path):
    cfg = _config(tmp_path)
    lake = tmp_path / "env-lake"
    # A runs file written before the `overrides` column existed: the runs view still reads it.
    old_schema = pa.schema([f for f in T.RUN if f.name != "overrides"])
    old = {f.name: None for f in old_schema} | {"run_id": "old", "stage": "gather", "batch": ""}
    write_parquet_atomic(pa.Table.from_pylist([old], schema=old_schema), lake / "runs" / "old-gather.parquet")

    run = _cli(tmp_path, "env-lake", "run", str(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    assert not (tmp_path / "file-lake").exists() and (lake / "catalog.duckdb").exists()

    sql = _cli(
        tmp_path,
        "env-lake",
        "sql",
        "select run_id, overrides from runs order by run_id = 'old', run_id",
        "--format",
        "json",
    )
    assert sql.returncode == 0, sql.stderr
    rows = [json.loads(line) for line in sql.stdout.splitlines()]
    assert [r["run_id"] == "old" for r in rows] == [False, True] and rows[1]["overrides"] is None
    assert json.loads(rows[0]["overrides"]) == {"DISTILLERY_LAKE": str(lake)}
    docs = _cli(tmp_path, "env-lake", "sql", "select count(*) n from documents", "--format", "json")
    assert json.loads(docs.stdout) == {"n": 6}

    status = _cli(tmp_path, "env-lake", "status")
    assert status.returncode == 0, status.stderr
    elsewhere = _cli(tmp_path, "no-lake-here", "status")  # the variable, not a default, picks the lake
    assert elsewhere.returncode == 1 and str(tmp_path / "no-lake-here") in elsewhere.stderr
