"""The generic stage driver (flows/driver.py) on the smallest stage: a plan and one step.

What a new stage gets from the contract alone: its partitions are written into one batch that
commits by a rename, its run is recorded, a re-run skips what is committed, and an error the
stage names as a stop (distill's budget) ends the run with what finished committed.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from prefect import flow

from distillery.batch import committed_parts
from distillery.config import PipelineConfig
from distillery.generations import distill_gen
from distillery.lake import Lake, stable_hash
from distillery.result import PartitionResult
from distillery.stage import Report, Stage, StagePlan, Step, StepContext, Unit

N_PARTS = 5


class Stop(RuntimeError):
    """The toy stage's budget: raised at a partition whose stop marker exists."""


def toy_plan(cfg: PipelineConfig, lake: Lake) -> StagePlan:
    # The toy writes into the distill generation, so the catalog's ledger view lists it.
    gen = distill_gen(cfg, lake)
    done = committed_parts(gen)
    parts = [{"part": f"p{i}", "rows": 10 * (i + 1)} for i in range(N_PARTS)]
    new = [p for p in parts if p["part"] not in done]
    return StagePlan([Unit(str(gen), stable_hash([p["part"] for p in new]), new)], len(parts) - len(new))


def count_parts(ctx: StepContext, group: list[dict]) -> list[dict]:
    rows = []
    for p in group:
        if (Path(ctx.lake_root) / f"stop-at-{p['part']}").exists():
            raise Stop(f"stop marker at {p['part']}")
        result = PartitionResult(rows_in=p["rows"], stats={"kept": p["rows"]})
        rows.append(ctx.batch.write_part(p["part"], [p["part"]], result))
    return rows


def toy_report(cfg, plan, counts, results, states, note) -> Report:
    return Report(f"toy: {counts.rows_in} rows in {counts.partitions} partitions", note=note)


TOY = Stage(
    "distill",
    toy_plan,
    (Step("count_partitions", count_parts, sequential=True),),
    toy_report,
    stop_on=(Stop,),
    stop_note=lambda exc: f"stopped: {exc}",
)


@flow(name="toy-stage")
def toy_flow(cfg: PipelineConfig) -> dict:
    from flows.driver import run_stage

    return run_stage(TOY, cfg)


def _ledger(lake: Lake) -> tuple[int, int]:
    con = duckdb.connect(str(lake.catalog_path), read_only=True)
    try:
        n, rows = con.execute(
            "SELECT count(*), coalesce(sum(rows_in), 0) FROM ledger WHERE stage = 'distill'"
        ).fetchone()
    finally:
        con.close()
    return int(n), int(rows)


@pytest.mark.usefixtures("prefect_api")
def test_a_plan_and_one_step_commit_a_batch_stop_keeping_finished_parts_and_rerun_only_the_rest(tmp_path):
    cfg = PipelineConfig.model_validate({"lake": str(tmp_path / "lake"), "run": {"max_partitions": N_PARTS}})
    lake = Lake(cfg.lake_root)
    lake.root.mkdir(parents=True)
    (lake.root / "stop-at-p3").touch()

    first = toy_flow(cfg)
    gen = distill_gen(cfg, lake)
    assert first["note"] == "stopped: stop marker at p3"
    assert (first["partitions"], first["rows_in"], first["kept"]) == (3, 60, 60)
    assert committed_parts(gen) == {"p0", "p1", "p2"}
    assert [d.name for d in gen.glob(".tmp-*")] == []  # the stopped batch committed: nothing half-done left
    assert _ledger(lake) == (3, 60)

    (lake.root / "stop-at-p3").unlink()
    second = toy_flow(cfg)
    assert (second["partitions"], second["skipped_partitions"], second["rows_in"], second["note"]) == (2, 3, 90, "")
    assert committed_parts(gen) == {f"p{i}" for i in range(N_PARTS)}
    assert len(list(gen.glob("b-*"))) == 2
    assert _ledger(lake) == (5, 150)

    third = toy_flow(cfg)
    assert (third["partitions"], third["skipped_partitions"]) == (0, N_PARTS)
    assert len(list(gen.glob("b-*"))) == 2
    runs = sorted(lake.runs_dir.glob("*-distill.parquet"))
    assert len(runs) == 3  # every run recorded, the no-op one too
