"""Train as a pipeline stage: named from its build and config, skipped when both are unchanged,
counted in `runs`, in `distillery status` and in the pipeline-counts artifact."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_config

from distillery import accounting
from distillery.config import load_config
from distillery.generations import shard_build_dir, train_gen
from distillery.lake import Lake
from distillery.sql import query
from trainer.completion import row_outcomes
from trainer.shardset import build_index
from trainer.synthetic import layout, write_shards

REPO = Path(__file__).resolve().parents[1]


def test_rows_the_trainer_cannot_use_are_quarantined_with_a_reason(tmp_path):
    vocab = layout(50)
    eos = vocab["special"]["<|eos|>"]
    good = {"tokens": [1, 2, 3, eos], "spans": [("text", 0, 4, True)]}
    rows = (
        [good] * 5
        + [{**good, "split": "val"}] * 2
        + [
            {**good, "split": "test"},  # row 7
            {"tokens": [], "spans": []},  # row 8
            {"tokens": [1, vocab["size"] + 5], "spans": [("text", 0, 2, True)]},  # row 9
        ]
    )
    shard_dir = write_shards(tmp_path / "s", rows, vocab, rows_per_group=4, rows_per_file=6)
    counts, quarantine = row_outcomes(build_index(shard_dir))
    assert counts == {"rows_in": 10, "kept": 7, "quarantined": 3}
    ids = [hashlib.sha256(f"{i}".encode()).hexdigest()[:32] for i in range(10)]  # synthetic's ids
    assert [(q["id"], q["reason"]) for q in quarantine] == [
        (ids[7], "split_not_train_or_val"),
        (ids[8], "empty_row"),
        (ids[9], "token_ids_outside_vocabulary"),
    ]
    assert all(q["stage"] == "train" and q["source"] == "synthetic" and q["error"] for q in quarantine)


@pytest.fixture(scope="module")
def trained_lake(prefect_api, samples, teacher_server, tmp_path_factory):
    """One run of the `pipeline` flow, all stages, on a fresh lake: (config path, cfg, result,
    the pipeline's flow run id)."""
    from flows.pipeline import pipeline

    root = tmp_path_factory.mktemp("train-stage")
    path = write_config(root / "c.yaml", samples, root / "lake", teacher_server.url)
    state = pipeline(config_path=str(path), return_state=True)
    return path, load_config(path), state.result(), str(state.state_details.flow_run_id)


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def train_runs(lake: Lake) -> list[tuple]:
    return query(
        lake,
        "select batch, rows_in, kept, quarantined, skipped, balanced, note from runs "
        "where stage = 'train' order by finished_at",
    )[1]


def pipeline_counts(flow_run_id: str) -> list[dict]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    async def read() -> list[dict]:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["pipeline-counts"]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                )
            )
        assert len(found) == 1, found
        data = found[0].data
        return json.loads(data) if isinstance(data, str) else data

    return asyncio.run(read())


def test_first_run_trains_and_counts_every_shard_row(trained_lake):
    _, cfg, result, _ = trained_lake
    lake = Lake(cfg.lake_root)
    run = train_gen(cfg, lake)
    assert (run / "checkpoint.pt").exists() and (run / "done" / "report.json").exists()
    assert run.name.startswith(shard_build_dir(cfg, lake).name)
    shards = query(lake, "select count(*) from shards")[1][0][0]
    assert shards > 0
    assert train_runs(lake) == [(run.name, shards, shards, 0, 0, True, f"{cfg.train.steps} steps")]
    assert result["train"]["steps"] == cfg.train.steps and result["train"]["kept"] == shards
    status = accounting.check(lake)
    assert status.ok, status.render()
    train = next(s for s in status.stages if s.stage == "train")
    assert (train.partitions, train.rows_in, train.kept, train.balanced) == (1, shards, shards, True)
    assert not any(p.startswith("train") for p in status.pending)


def test_pipeline_counts_artifact_has_the_train_row(trained_lake):
    _, cfg, _, flow_run_id = trained_lake
    rows = {r["stage"]: r for r in pipeline_counts(flow_run_id)}
    shards = query(Lake(cfg.lake_root), "select count(*) from shards")[1][0][0]
    assert set(rows) == {"gather", "curate", "distill", "shard", "train"}
    assert rows["train"]["partitions"] == 1 and rows["train"]["rows_in"] == rows["train"]["kept"] == shards
    assert rows["train"]["adds_up"] is True


def test_unchanged_rerun_from_the_cli_does_not_train_nor_import_torch(trained_lake, tmp_path):
    """The user's path: `distillery run CONFIG` with no PREFECT_API_URL, from another folder."""
    path, cfg, _, _ = trained_lake
    lake = Lake(cfg.lake_root)
    run = train_gen(cfg, lake)
    before = fingerprint(run / "checkpoint.pt")
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        DISTILLERY_RUN_DIR=str(tmp_path / "run"),
        PREFECT_HOME=str(tmp_path / "prefect"),
    )
    env.pop("PREFECT_API_URL", None)
    env["PREFECT_LOGGING_LEVEL"] = "INFO"  # flow prints are logged at INFO; the CLI's default shows warnings only
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "distillery.cli", "run", str(path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert fingerprint(run / "checkpoint.pt") == before
    assert sorted(p.name for p in run.parent.iterdir()) == [run.name]  # no new training folder
    assert f"{run.name} is already trained" in out.stdout + out.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" not in imported
    assert "up to date:" in out.stdout  # nothing changed: the run ended before any Prefect server (distillery/plans.py)
    last = train_runs(lake)[-1]
    assert last == (run.name, 0, 0, 0, 1, True, "already trained")
    status = subprocess.run(
        [sys.executable, "-m", "distillery.cli", "status", "--lake", str(cfg.lake_root)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    shards = query(lake, "select count(*) from shards")[1][0][0]
    train_line = next(line.split() for line in status.stdout.splitlines() if line.startswith("train"))
    assert train_line[1:4] == ["1", str(shards), str(shards)] and train_line[-1] == "yes"


def test_changed_train_config_trains_anew_and_keeps_the_old_run(trained_lake, tmp_path):
    from flows.pipeline import pipeline

    path, cfg, _, _ = trained_lake
    lake = Lake(cfg.lake_root)
    old = train_gen(cfg, lake)
    before = fingerprint(old / "checkpoint.pt")
    changed = tmp_path / "c.yaml"
    changed.write_text(path.read_text().replace("steps: 3", "steps: 4"))
    cfg2 = load_config(changed)
    assert cfg2.train.steps == 4
    new = train_gen(cfg2, lake)
    assert new != old and new.name.startswith(shard_build_dir(cfg2, lake).name)
    result = pipeline(config_path=str(changed), stages=["train"])
    assert result["train"]["steps"] == 4 and result["train"]["skipped_partitions"] == 0
    assert (new / "done" / "report.json").exists()
    assert fingerprint(old / "checkpoint.pt") == before and (old / "done" / "report.json").exists()
    shards = query(lake, "select count(*) from shards")[1][0][0]
    assert train_runs(lake)[-1] == (new.name, shards, shards, 0, 0, True, "4 steps")
    assert accounting.check(lake).ok


class Crash(Exception):
    pass


def test_resume_finishes_a_crashed_run_in_its_own_folder_and_records_it(trained_lake):
    """A run killed before its record is committed is not taken as finished; `--resume`
    (train_flow(resume=True)) continues it from its checkpoint and commits the record."""
    from flows.train import train_flow
    from trainer.train import train

    _, cfg, _, _ = trained_lake
    cfg3 = cfg.model_copy(
        update={"train": cfg.train.model_copy(update={"steps": 6, "checkpoint_every": 3, "log_every": 1})}
    )
    lake = Lake(cfg3.lake_root)
    run = train_gen(cfg3, lake)

    def crash_at_3(entry):
        if entry["step"] == 3:
            raise Crash

    with pytest.raises(Crash):
        train(shard_build_dir(cfg3, lake), cfg3.train, run, on_log=crash_at_3)
    assert (run / "checkpoint.pt").exists() and not (run / "done").exists()
    result = train_flow(cfg3, resume=True)
    assert (result["steps"], result["steps_this_run"], result["skipped_partitions"]) == (6, 3, 0)
    assert (run / "done" / "report.json").exists()
    assert train_runs(lake)[-1][0] == run.name and train_runs(lake)[-1][4] == 0

    (run / "checkpoint.pt").unlink()  # a finished run whose checkpoint was lost is trained again
    again = train_flow(cfg3)
    assert (again["steps_this_run"], again["skipped_partitions"]) == (6, 0) and (run / "checkpoint.pt").exists()
    assert train_flow(cfg3)["skipped_partitions"] == 1
    assert accounting.check(lake).ok
