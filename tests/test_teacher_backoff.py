"""Retry timing: a request waiting out Retry-After or its backoff holds no concurrency slot,
still waits at least what the server asked, and a retried prompt is paid for once.
Real HTTP against the reference teacher with a fault schedule (teacher/reference/faults.py)."""

from __future__ import annotations

from collections import Counter

from teacher import DistillConfig, distill_partition
from teacher.plan import plan_prompts
from teacher.reference.faults import SCHEDULE_KINDS, Fault, FaultSchedule, seeded_schedule
from teacher.reference.problems import arithmetic_problems, problems_frame
from teacher.reference.server import start_server

SOLVE = {"name": "solve", "template": "solve", "verify": "math"}


def test_retry_after_is_waited_out_without_holding_the_only_slot_and_billed_once(tmp_path):
    rows = problems_frame(arithmetic_problems(3, seed=5, digits=3))
    wait_s = 1.5
    cfg = DistillConfig(base_url="http://127.0.0.1:1/v1", tasks=[SOLVE], concurrency=1, timeout_s=5, max_retries=2)
    first, *others = [p.messages[-1]["content"] for p in plan_prompts(rows, cfg, tmp_path)]
    # the first prompt's first attempt gets a 429 asking for wait_s; the second a 503, whose
    # backoff (base 1 s) must be waited out too; then both succeed
    schedule = FaultSchedule(plan={
        first: [Fault("rate_limit", seconds=wait_s)],
        others[0]: [Fault("server_error", status=503)],
    })  # fmt: skip
    server = start_server(faults=schedule)
    try:
        cfg = cfg.model_copy(update={"base_url": server.url, "backoff_base_s": 1.0, "backoff_max_s": 1.0})
        result = distill_partition(rows, cfg, tmp_path / "cache", tmp_path)
    finally:
        server.stop()
    assert result.stats["kept"] == 3
    assert result.stats["retry_teacher_http_429"] == 1 and result.stats["retry_teacher_http_503"] == 1
    times = {p: [t for t, q in schedule.arrivals if q == p] for p in (first, *others)}
    # Retry-After honoured: the retry left no sooner than the server asked
    assert times[first][1] - times[first][0] >= wait_s
    # backoff of the 503 (base 1 s, jitter x0.5..1.5) honoured too
    assert times[others[0]][1] - times[others[0]][0] >= 0.5
    # with one slot, the other prompts went out while the first waited: the slot was free
    assert times[first][0] < times[others[1]][0] < times[first][1]
    assert times[first][0] < times[others[0]][0] < times[first][1]
    # every prompt paid for exactly once
    assert server.stats.completed == 3 and max(server.stats.by_request.values()) == 1
    assert server.stats.requests == 5


def test_an_attempt_that_stalled_to_the_timeout_is_retried_without_further_backoff(tmp_path):
    rows = problems_frame(arithmetic_problems(1, seed=6, digits=3))
    # backoff base = max = 1 s, jittered to 0.5..1.5 s: never more than the 1.5 s timeout the
    # stalled attempt already took, so the backoff (spacing attempts' starts) is spent
    cfg = DistillConfig(base_url="http://127.0.0.1:1/v1", tasks=[SOLVE], timeout_s=1.5, max_retries=1,
                        backoff_base_s=1.0, backoff_max_s=1.0)  # fmt: skip
    (prompt,) = [p.messages[-1]["content"] for p in plan_prompts(rows, cfg, tmp_path)]
    schedule = FaultSchedule(plan={prompt: [Fault("timeout", seconds=3.0)]})
    server = start_server(faults=schedule)
    try:
        result = distill_partition(rows, cfg.model_copy(update={"base_url": server.url}), tmp_path / "c", tmp_path)
    finally:
        server.stop()
    assert result.stats["kept"] == 1 and result.stats["retry_teacher_timeout"] == 1
    (t0, _), (t1, _) = schedule.arrivals
    assert 1.5 <= t1 - t0 < 1.9  # the timeout enforced; no backoff (>= 0.5 s) added after it
    assert server.stats.completed == 1


def test_seeded_schedule_is_reproducible_and_fails_the_asked_share_of_first_attempts():
    prompts = [f"What is {i} + {i}?" for i in range(2000)]
    a, b = seeded_schedule(prompts, seed=3), seeded_schedule(prompts, seed=3)
    assert a.plan == b.plan
    assert seeded_schedule(prompts, seed=4).plan != a.plan
    failed_first = sum(bool(f) for f in a.plan.values())
    assert 0.55 < failed_first / len(prompts) < 0.65
    failed_second = sum(len(f) == 2 for f in a.plan.values())
    assert 0.15 < failed_second / failed_first < 0.3  # 25 % of the non-truncated first failures
    assert set(Counter(f.kind for fs in a.plan.values() for f in fs)) == set(SCHEDULE_KINDS)
    assert all(fs[0].kind != "truncated" for fs in a.plan.values() if len(fs) == 2)  # a paid answer ends it
    # attempts are counted per prompt: the n-th request of a prompt meets its n-th fault
    p = next(q for q, fs in a.plan.items() if len(fs) == 2)
    assert [a.pick(p), a.pick(p), a.pick(p)] == [*a.plan[p], None]
    assert a.attempts[p] == 3
