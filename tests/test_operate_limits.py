"""The teacher's global concurrency limit, and the progress bar a terminal user sees."""

from __future__ import annotations

import io
import os
import select
import threading
import time

from flows.limits import teacher_requests
from flows.reporting import Progress, render_bar


def read_limit(name: str):
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return None


def test_teacher_limit_is_created_held_and_released(prefect_api):
    from prefect import flow

    name = "teacher-requests-test-held"

    @flow
    def distill_like(slots: int) -> tuple[int, int]:
        with teacher_requests(slots, name=name) as held:
            during = read_limit(name).active_slots
        return held, during

    assert read_limit(name) is None
    held, during = distill_like(3)
    assert held == 3 and during == 3
    limit = read_limit(name)
    assert limit.limit == 3 and limit.active_slots == 0  # created with room for one partition, released

    # An operator lowered it: a partition holds what there is rather than waiting forever.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=2))
    held, during = distill_like(8)
    assert held == 2 and during == 2
    assert read_limit(name).limit == 2  # never raised or overwritten by the wrapper


def test_teacher_limit_held_from_a_task_on_the_task_runner(prefect_api):
    """Where the lead wraps the distill partition task: a task submitted to the runner."""
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    name = "teacher-requests-test-task"

    @task
    def distill_partition_like(slots: int) -> tuple[int, int]:
        with teacher_requests(slots, name=name) as held:
            return held, read_limit(name).active_slots

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def distill_like() -> tuple[int, int]:
        return distill_partition_like.submit(2).result()

    assert distill_like() == (2, 2)
    assert read_limit(name).active_slots == 0


def test_teacher_limit_makes_partitions_take_turns(prefect_api):
    """Two flows at once, each wanting the whole limit: the second waits for the first."""
    from prefect import flow

    name = "teacher-requests-test-turns"
    spans: list[tuple[float, float]] = []

    @flow
    def partition(slots: int) -> None:
        with teacher_requests(slots, name=name):
            start = time.monotonic()
            time.sleep(1.0)
            spans.append((start, time.monotonic()))

    partition(2)  # creates the limit with 2 slots
    spans.clear()
    threads = [threading.Thread(target=partition, args=(2,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (_, a1), (b0, _) = sorted(spans)
    assert b0 >= a1  # no overlap: the slots were held by one partition at a time


def test_teacher_limit_does_nothing_outside_a_flow(prefect_api):
    name = "teacher-requests-test-outside"
    with teacher_requests(4, name=name) as held:
        assert held == 0
    assert read_limit(name) is None


def _read_until_newline(fd: int) -> str:
    """All a pty has buffered up to the final newline: one read may return only part of it."""
    out = b""
    while not out.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], 5)
        assert ready, f"the terminal went quiet before the bar finished: {out!r}"
        out += os.read(fd, 10_000)
    return out.decode()


def test_progress_bar_on_a_terminal_only():
    assert render_bar("gather", 0, 4, width=8) == "gather  [........] 0/4 partitions   0%"
    assert render_bar("gather", 2, 4, width=8) == "gather  [####....] 2/4 partitions  50%"
    assert render_bar("curate", 4, 4, width=8).startswith("curate  [########] 4/4")

    primary, secondary = os.openpty()  # a real terminal
    try:
        with os.fdopen(secondary, "w", closefd=False) as tty:
            p = Progress("gather", 3, stream=tty)
            for _ in range(3):
                p.advance()
        out = _read_until_newline(primary)
    finally:
        os.close(primary)
        os.close(secondary)
    frames = out.replace("\r\n", "\n").split("\r")
    assert frames[0] == ""
    assert [f.split("]")[1].split("partitions")[0].strip() for f in frames[1:]] == ["0/3", "1/3", "2/3", "3/3"]
    assert out.endswith("\n")  # the finished bar leaves the cursor on a fresh line

    log = io.StringIO()  # not a terminal: no bar (plain lines instead: tests/test_reliability_loud.py)
    p = Progress("gather", 3, stream=log)
    p.advance(3)
    assert "[" not in log.getvalue() and "\r" not in log.getvalue()


def test_progress_with_nothing_to_do_draws_nothing():
    primary, secondary = os.openpty()
    try:
        with os.fdopen(secondary, "w", closefd=False) as tty:
            Progress("gather", 0, stream=tty)
            tty.write("x")
        assert os.read(primary, 100) == b"x"
    finally:
        os.close(primary)
        os.close(secondary)


def test_teacher_limit_wait_is_bounded_and_says_what_it_waits_for(prefect_api, capfd):
    """A limit held elsewhere (a killed run's slots, a busy worker): the wait names the limit on
    stderr and ends after its bound with SlotWaitTimeout, instead of blocking silently."""
    import pytest
    from prefect import flow

    from flows.limits import SlotWaitTimeout

    name = "teacher-requests-test-bounded"
    holding, release = threading.Event(), threading.Event()

    @flow
    def holder() -> None:
        with teacher_requests(1, name=name):
            holding.set()
            release.wait(60)

    @flow
    def waiter() -> int:
        with teacher_requests(1, name=name, timeout_s=2) as held:
            return held

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert holding.wait(60)
        start = time.monotonic()
        with pytest.raises(SlotWaitTimeout, match=name):
            waiter()
        assert time.monotonic() - start < 30
    finally:
        release.set()
        t.join()
    err = capfd.readouterr().err
    assert f"slot(s) of Prefect's global concurrency limit '{name}'" in err
    assert "failed to process item" not in err  # the first, 1-s try's timeout is no ERROR
    assert read_limit(name).active_slots == 0


def test_teacher_limit_is_not_used_on_a_server_private_to_the_run(prefect_api, monkeypatch):
    """On the server `distillery run` starts for itself, the run is the only holder and a killed
    run's slots would never be freed there: the wrapper holds nothing and creates nothing."""
    from prefect import flow
    from prefect.settings import PREFECT_API_URL

    from distillery.owned_server import OWNED_URL_ENV

    name = "teacher-requests-test-private"
    monkeypatch.setenv(OWNED_URL_ENV, PREFECT_API_URL.value())

    @flow
    def distill_like() -> int:
        with teacher_requests(4, name=name) as held:
            return held

    assert distill_like() == 0
    assert read_limit(name) is None
