"""Faults, budgets and secrets: every prompt ends somewhere, nothing is paid twice, no key leaks."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from distillery.result import conform
from distillery.tables import QUARANTINE, REJECT, TRACE
from teacher import BudgetExhausted, DistillConfig, distill_partition
from teacher.cache import cached_spend
from teacher.reference.faults import Fault, FaultPlan
from teacher.reference.problems import arithmetic_problems, problems_frame
from teacher.reference.server import start_server

SOLVE = {"name": "solve", "template": "solve", "verify": "math"}


def config(url, **kw):
    base = {"timeout_s": 1.5, "max_retries": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05}
    return DistillConfig(base_url=url, tasks=[SOLVE], **(base | kw))


def test_faults_end_every_prompt_once_without_paying_twice(tmp_path):
    problems = arithmetic_problems(10, seed=11, digits=3)
    q = [p["question"] for p in problems]
    plan = FaultPlan([
        Fault("rate_limit", q[0], times=2, seconds=0.02),
        Fault("server_error", q[1], times=1),
        Fault("timeout", q[2], times=1, seconds=3.0),
        Fault("malformed", q[3], times=1),
        Fault("empty", q[4], times=1),
        Fault("truncated", q[5], times=None),
        Fault("disconnect", q[6], times=1),
        Fault("server_error", q[7], times=None, status=503),
        Fault("empty_content", q[8], times=1),
        Fault("delay", q[9], times=1, seconds=0.05),
    ])  # fmt: skip
    server = start_server(faults=plan)
    try:
        rows = problems_frame(problems)
        cfg = config(server.url)
        result = distill_partition(rows, cfg, tmp_path / "cache", tmp_path)
        s = result.stats
        assert result.rows_in == 10 == s["kept"] + s["rejected"] + s["quarantined"]
        kept_ids = set(result.tables["traces"]["source_ids"].list.first())
        assert kept_ids == {rows["id"][i] for i in (0, 1, 2, 3, 4, 6, 9)}
        reasons = dict(zip(result.tables["quarantine"]["id"], result.tables["quarantine"]["reason"]))
        assert reasons == {
            rows["id"][5]: "teacher_truncated",
            rows["id"][7]: "teacher_http_503",
            rows["id"][8]: "teacher_empty_response",
        }
        assert all(e.startswith("task solve: sample 0:") for e in result.tables["quarantine"]["error"])
        # paid answers: 7 good + the truncated + the empty one, each exactly once
        assert server.stats.completed == 9
        assert max(server.stats.by_request.values()) == 1
        assert s["retry_teacher_http_429"] == 2 and s["retry_teacher_timeout"] == 1
        assert s["retry_teacher_malformed"] == 1 and s["retry_teacher_empty_response"] == 1
        assert s["retry_teacher_connection_error"] == 1

        requests = server.stats.requests
        again = distill_partition(rows, cfg, tmp_path / "cache", tmp_path)
        # only the always-503 prompt is asked again; truncated and empty answers were paid: cached
        assert server.stats.requests - requests == cfg.max_retries + 1
        assert server.stats.completed == 9
        assert again.tables["traces"].equals(result.tables["traces"])
        assert again.tables["quarantine"].equals(result.tables["quarantine"])
    finally:
        server.stop()


def test_truncated_answer_retried_once_with_larger_budget(tmp_path):
    problems = arithmetic_problems(2, seed=2, digits=3)
    server = start_server(faults=FaultPlan([Fault("truncated", problems[0]["question"], times=1)]))
    try:
        cfg = config(server.url, max_tokens=512, truncation_retry_max_tokens=2048)
        result = distill_partition(problems_frame(problems), cfg, tmp_path / "c", tmp_path)
        assert result.stats["kept"] == 2
        assert server.stats.completed == 3 and max(server.stats.by_request.values()) == 1
        requests = server.stats.requests
        distill_partition(problems_frame(problems), cfg, tmp_path / "c", tmp_path)
        assert server.stats.requests == requests
    finally:
        server.stop()


def test_budget_stops_and_next_run_resumes_without_repaying(tmp_path):
    server = start_server()
    try:
        rows = problems_frame(arithmetic_problems(10, seed=4, digits=3))
        capped = config(server.url, max_tokens=200, budget_tokens=700, concurrency=2)
        with pytest.raises(BudgetExhausted):
            distill_partition(rows, capped, tmp_path / "c", tmp_path)
        paid = server.stats.completed
        # worst case 200 + ~40 tokens is held per request in flight, actual use is ~140: the
        # budget fits 4 answers; holding worst cases for all 10 queued prompts would allow 2
        assert 3 <= paid < 10
        # same budget again: the spend is recomputed from the cache, so at most what is left
        # of the limit is spent, and nothing is paid twice
        with pytest.raises(BudgetExhausted):
            distill_partition(rows, capped, tmp_path / "c", tmp_path)
        assert cached_spend(tmp_path / "c", {}).tokens <= 700
        assert max(server.stats.by_request.values()) == 1
        paid = server.stats.completed
        result = distill_partition(
            rows, config(server.url, max_tokens=200, budget_tokens=100_000), tmp_path / "c", tmp_path
        )
        assert result.stats["kept"] == 10 and result.stats["cache_hits"] == paid
        assert server.stats.completed == 10 and max(server.stats.by_request.values()) == 1
    finally:
        server.stop()


def test_budget_in_dollars(tmp_path):
    server = start_server()
    try:
        rows = problems_frame(arithmetic_problems(4, seed=4, digits=3))
        prices = {"distillery-reference": {"input": 1.0, "output": 2.0}}
        cfg = config(server.url, max_tokens=200, budget_usd=0.0005, prices=prices, concurrency=1)
        with pytest.raises(BudgetExhausted):
            distill_partition(rows, cfg, tmp_path / "c", tmp_path)
        ok = distill_partition(rows, config(server.url, max_tokens=200, prices=prices), tmp_path / "c", tmp_path)
        costs = ok.tables["traces"]["cost"].to_list()
        tokens = ok.tables["traces"].select("prompt_tokens", "completion_tokens").rows()
        assert costs == [pytest.approx((p * 1.0 + c * 2.0) / 1e6) for p, c in tokens]
        with pytest.raises(ValueError):
            config(server.url, budget_usd=1.0)  # a money budget needs a price
    finally:
        server.stop()


def test_planted_key_never_leaks(tmp_path, monkeypatch):
    key = "sk-planted-Secret-0123456789abcdefXYZ"
    monkeypatch.setenv("DISTILLERY_TEACHER_API_KEY", key)
    problems = arithmetic_problems(3, seed=8, digits=2)
    plan = FaultPlan(
        [
            Fault("echo_auth", problems[0]["question"], times=None),
            Fault("disconnect", problems[1]["question"], times=None),
        ]
    )
    server = start_server(faults=plan)
    try:
        result = distill_partition(
            problems_frame(problems), config(server.url, max_retries=1), tmp_path / "c", tmp_path
        )
    finally:
        server.stop()
    quarantine = result.tables["quarantine"]
    assert sorted(quarantine["reason"]) == ["teacher_connection_error", "teacher_http_401"]
    assert "[REDACTED]" in " ".join(quarantine["error"])  # the server did echo it; we scrubbed it
    for name, schema in (("traces", TRACE), ("rejects", REJECT), ("quarantine", QUARANTINE)):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(conform(result.tables[name], schema), path)
        assert key.encode() not in path.read_bytes()
        assert key not in str(result.tables[name].to_dicts())
    assert key not in repr(result.stats)
    for f in (tmp_path / "c").rglob("*"):
        assert not f.is_file() or key.encode() not in f.read_bytes()


def test_retry_after_forms():
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    from teacher.client import retry_after_s

    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_s({"retry-after": "3"}) == 3.0
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 20 < retry_after_s({"retry-after": later}) <= 30
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s({}) is None


def test_persistent_malformed_and_empty_bodies_are_quarantined_and_set_aside(tmp_path):
    problems = arithmetic_problems(3, seed=13, digits=2)
    plan = FaultPlan(
        [Fault("malformed", problems[0]["question"], times=None), Fault("empty", problems[1]["question"], times=None)]
    )
    server = start_server(faults=plan)
    try:
        rows = problems_frame(problems)
        result = distill_partition(rows, config(server.url, max_retries=1), tmp_path / "c", tmp_path)
    finally:
        server.stop()
    reasons = dict(zip(result.tables["quarantine"]["id"], result.tables["quarantine"]["reason"]))
    assert reasons == {rows["id"][0]: "teacher_malformed", rows["id"][1]: "teacher_empty_response"}
    assert result.stats["kept"] == 1
    set_aside = list((tmp_path / "c").rglob("_set_aside/*.json"))
    assert len(set_aside) == 2  # both malformed attempts kept for inspection, never served as answers


def test_prompt_too_long_is_quarantined_unsent(tmp_path):
    server = start_server()
    try:
        problems = arithmetic_problems(2, seed=14, digits=2)
        problems[0]["question"] += " Please. " * 200
        rows = problems_frame(problems)
        result = distill_partition(rows, config(server.url, max_prompt_tokens=200), tmp_path / "c", tmp_path)
        assert result.tables["quarantine"]["reason"].to_list() == ["prompt_too_long"]
        assert server.stats.requests == 1 and result.stats["kept"] == 1
    finally:
        server.stop()


def test_server_side_n_reserves_n_times_max_tokens(tmp_path):
    server = start_server()
    try:
        rows = problems_frame(arithmetic_problems(1, seed=15, digits=2))
        # one answer would fit in the budget, four samples of max_tokens would not
        cfg = config(server.url, n_samples=4, server_side_n=True, max_tokens=100, budget_tokens=300)
        with pytest.raises(BudgetExhausted):
            distill_partition(rows, cfg, tmp_path / "c", tmp_path)
        assert server.stats.requests == 0
    finally:
        server.stop()
