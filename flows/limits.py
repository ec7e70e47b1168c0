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

**Only on a shared server.** The limit is there for several processes that share one Prefect
server (`prefect server start` / `distillery ui` with workers). On a server private to one
run -- the one `distillery run` starts for itself when no PREFECT_API_URL is set, or Prefect's
own temporary server -- this process is the only holder, its client already caps its
requests, and the limit could only do harm: the slots live in the database in the run folder,
which outlives the server, while the leases that would free them live in the server's memory
(Prefect's default lease storage, `prefect.server.concurrency.lease_storage.memory`) and no
lease reaper runs there (the repossessor is not an ephemeral-server service). A killed run's
slots would then stay taken for good and every later run from that folder would wait on them.
So on a private server the wrapper holds nothing.

**Every wait is bounded and said.** When the slots are not free at once, a warning (on the
terminal and in the run's logs: flows/run_logs.py `warn`) names the limit, what it holds and how long we wait (`SLOT_WAIT_S`); after that the partition
fails with one line saying how to inspect the limit. On a shared server the slots of a killed
holder come back when its lease (`LEASE_S`, renewed while held) expires and the server's
repossessor (every `server.services.repossessor.loop_seconds`) revokes it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit, urlunsplit

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

from distillery.owned_server import OWNED_URL_ENV
from flows.run_logs import warn

TEACHER_LIMIT = "teacher-requests"
LEASE_S = 60.0
# How long a partition waits for slots held by other runs: ten leases, so a killed holder's
# slots (freed within LEASE_S plus the repossessor's loop) come back well inside it, while a
# limit that stays full that long is something to look at, not to wait on silently.
SLOT_WAIT_S = 10 * LEASE_S


# The first, short try for the slots: when they are free it gets them at once; when not, we
# say that we wait before waiting (SLOT_WAIT_S).
FIRST_TRY_S = 1.0


class FirstTryTimeoutFilter(logging.Filter):
    """Drops the ERROR Prefect's slot-acquisition service logs when a request of ours with the
    FIRST_TRY_S timeout times out ("Service ... failed to process item (..., 1.0, ...)"):
    that timeout is expected, and the warning that we now wait says it instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        first_try = (
            len(args) == 2
            and str(args[0]).startswith("ConcurrencySlotAcquisition")
            and isinstance(args[1], tuple)
            and len(args[1]) > 2
            and args[1][2] == FIRST_TRY_S
        )
        return not first_try


class SlotWaitTimeout(RuntimeError):
    """The global limit stayed full for the whole bounded wait."""


def shared_server() -> bool:
    """Whether Prefect's API is a server other processes may share (see the module docstring)."""
    url = PREFECT_API_URL.value()
    return bool(url) and url != os.environ.get(OWNED_URL_ENV)


def _api_shown() -> str:
    """Prefect's API URL for a message, without any user:password@ it may carry."""
    url = urlsplit(PREFECT_API_URL.value() or "")
    return urlunsplit(url._replace(netloc=url.hostname + (f":{url.port}" if url.port else ""))) if url.hostname else ""


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
    other holders fill the limit, up to `timeout_s` (default `SLOT_WAIT_S`), saying so on
    stderr, then raises SlotWaitTimeout. Yields the slots held: `slots`, or fewer when an
    operator set the limit below that (holding more than the limit would wait forever), or 0
    outside a flow run or on a server private to this run, where it does nothing.
    """
    if (FlowRunContext.get() is None and TaskRunContext.get() is None) or not shared_server():
        yield 0
        return
    held = max(1, min(slots, ensure_limit(name, slots)))
    service_log = logging.getLogger("prefect._internal.concurrency")
    if not any(isinstance(f, FirstTryTimeoutFilter) for f in service_log.filters):
        service_log.addFilter(FirstTryTimeoutFilter())
    wait_s = SLOT_WAIT_S if timeout_s is None else timeout_s
    # A short lease (renewed while held): slots of a SIGKILLed run free up within a minute,
    # not after Prefect's default five.
    with ExitStack() as stack:
        try:
            stack.enter_context(
                concurrency(name, occupy=held, timeout_seconds=FIRST_TRY_S, lease_duration=LEASE_S, strict=True)
            )
        except TimeoutError:
            warn(
                f"waiting up to {wait_s:.0f} s for {held} slot(s) of Prefect's global concurrency limit "
                f"{name!r} at {_api_shown()} (other runs hold it)..."
            )
            try:
                stack.enter_context(
                    concurrency(name, occupy=held, timeout_seconds=wait_s, lease_duration=LEASE_S, strict=True)
                )
            except TimeoutError:
                raise SlotWaitTimeout(
                    f"the global concurrency limit {name!r} stayed full for {wait_s:.0f} s; see who holds it "
                    f"with `prefect gcl inspect {name}` (PREFECT_API_URL={_api_shown()})"
                ) from None
        yield held
