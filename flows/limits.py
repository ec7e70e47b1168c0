"""The teacher's request rate, governed across every worker of a deployment.

Two layers: the teacher client's own limiter keeps one process under `distill.concurrency`
concurrent requests and `distill.rpm` / `distill.tpm` per minute; this module adds the
coarse cap across processes and machines, a Prefect global concurrency limit named
`teacher-requests`. A distill partition holds `distill.concurrency` slots of it while it
runs (the most requests its client can have in flight), so however many workers run
distill at once, the requests in flight against the endpoint stay under the limit.

The limit is created on first use with room for one partition; an operator raises it
where the endpoint allows more (`prefect gcl update teacher-requests --limit 64`, or the
UI's Concurrency page), and it is never lowered or overwritten here. Outside a flow or task
run (plain function calls, tests of the stage logic) there is no Prefect API to ask, and
the wrapper does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

TEACHER_LIMIT = "teacher-requests"
LEASE_S = 60.0


def ensure_limit(name: str, limit: int) -> int:
    """The slots of global concurrency limit `name`, creating it with `limit` when missing."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(name).limit
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
        except ObjectAlreadyExists:  # another worker created it first: theirs stands
            pass
        return client.read_global_concurrency_limit_by_name(name).limit


@contextmanager
def teacher_requests(slots: int, name: str = TEACHER_LIMIT, timeout_s: float | None = None) -> Iterator[int]:
    """Hold `slots` slots of the global teacher limit for the duration of the block.

    Call it around each distill partition with `cfg.distill.concurrency`. Blocks while
    other holders fill the limit (up to `timeout_s`; None waits). Yields the slots held:
    `slots`, or fewer when an operator set the limit below that (holding more than the
    limit would wait forever), or 0 outside a flow run, where it does nothing.
    """
    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        yield 0
        return
    held = max(1, min(slots, ensure_limit(name, slots)))
    # A short lease (renewed while held): slots of a SIGKILLed run free up within a minute,
    # not after Prefect's default five.
    with concurrency(name, occupy=held, timeout_seconds=timeout_s, lease_duration=LEASE_S, strict=True):
        yield held
