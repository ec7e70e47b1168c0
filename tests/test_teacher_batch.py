"""Batch API mode: request file -> upload -> batch -> poll -> output into the same cache."""

from __future__ import annotations

import pytest

from teacher import BatchPending, DistillConfig, distill_partition
from teacher.reference.faults import Fault, FaultPlan
from teacher.reference.problems import arithmetic_problems, problems_frame
from teacher.reference.server import start_server

SOLVE = {"name": "solve", "template": "solve", "verify": "math"}


def test_batch_round_trip_and_resume(tmp_path):
    problems = arithmetic_problems(5, seed=21, digits=3)
    server = start_server(faults=FaultPlan([Fault("server_error", problems[2]["question"], times=2)]))
    try:
        rows = problems_frame(problems)
        cfg = DistillConfig(base_url=server.url, tasks=[SOLVE], mode="batch", batch_poll_s=0.02, n_samples=2)
        first = distill_partition(rows, cfg, tmp_path / "cache", tmp_path)
        assert first.rows_in == 5 and first.stats["batches_created"] == 1
        assert first.stats["kept"] == 4 and first.stats["quarantined"] == 1
        assert first.tables["quarantine"]["reason"].to_list() == ["teacher_http_500"]  # both samples failed
        assert sorted(set(first.tables["traces"]["verdict"])) == ["pass"]
        assert server.stats.completed == 8
        files = sorted(p.name for p in (tmp_path / "cache" / "_batches").iterdir())
        assert len(files) == 1 and files[0].endswith(".jsonl")  # state file removed once collected

        second = distill_partition(rows, cfg, tmp_path / "cache", tmp_path)  # resubmits only the failure
        assert second.stats["kept"] == 5 and second.stats["batches_created"] == 1
        assert server.stats.completed == 10 and max(server.stats.by_request.values()) == 1
        requests = server.stats.requests
        third = distill_partition(rows, cfg, tmp_path / "cache", tmp_path)
        assert server.stats.requests == requests and "batches_created" not in third.stats
        assert third.tables["traces"].equals(second.tables["traces"])

        online = cfg.model_copy(update={"mode": "online"})  # same keys: online reuses batch answers
        fourth = distill_partition(rows, online, tmp_path / "cache", tmp_path)
        assert server.stats.requests == requests and fourth.tables["traces"].equals(third.tables["traces"])
    finally:
        server.stop()


def test_pending_batch_is_resumed_not_resubmitted(tmp_path):
    server = start_server(latency_s=0.1)
    try:
        rows = problems_frame(arithmetic_problems(4, seed=22, digits=2))
        impatient = DistillConfig(
            base_url=server.url, tasks=[SOLVE], mode="batch", batch_poll_s=0.02, batch_wait_s=0.01
        )
        with pytest.raises(BatchPending):
            distill_partition(rows, impatient, tmp_path / "cache", tmp_path)
        states = [p for p in (tmp_path / "cache" / "_batches").iterdir() if p.suffix == ".json"]
        assert len(states) == 1  # the batch id is remembered
        patient = impatient.model_copy(update={"batch_wait_s": None})
        result = distill_partition(rows, patient, tmp_path / "cache", tmp_path)
        assert result.stats["kept"] == 4 and "batches_created" not in result.stats  # same batch, collected
        assert server.stats.completed == 4 and len(server.stats.by_request) == 4
    finally:
        server.stop()
