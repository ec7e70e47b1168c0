"""The process of a `distillery run` (or `train`): its own Prefect server and its signals.

With no PREFECT_API_URL the run starts a Prefect server of its own (local_server.py) that dies
with it; SIGTERM and Ctrl-C end the run at once with one line (committed work is kept), and
Prefect's queued logs and events are flushed before its server stops.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

INTERRUPTED = "interrupted: committed work is kept; re-run the same command to continue"


@contextmanager
def own_prefect_server():
    """With no PREFECT_API_URL, start the run's own Prefect server (distillery/app/local_server.py)
    first thing: its start (mostly importing Prefect's server) is the longest wait of a run,
    and everything the command does before it needs Prefect overlaps it. Yields the server,
    or None when the user points us at one; stops it after the block, reports flushed first."""
    from distillery.app import local_server

    spawned = None if os.environ.get("PREFECT_API_URL") else local_server.start(Path(os.environ["PREFECT_HOME"]))
    try:
        yield spawned
    finally:
        if spawned is not None:
            if "prefect.events.worker" in sys.modules:
                flush_prefect_reports()  # queued logs and events go before the server does
            spawned.stop()
            if os.environ.get(local_server.OWNED_URL_ENV):  # this process may run again (tests call main)
                os.environ.pop("PREFECT_API_URL", None)
                os.environ.pop(local_server.OWNED_URL_ENV, None)


def prefect_ready(spawned) -> bool:
    """Point Prefect at our server and wait (bounded, said on stderr) until it answers; False,
    after one line on stderr, when it did not come up."""
    own = use_own_prefect_server(spawned)
    keep_our_sigterm_handler_in_flows()
    if own is None:
        return True
    from distillery.app.local_server import ServerStartError
    from distillery.app.prefect_env import server_startup_timeout_s

    try:
        own.wait_healthy(server_startup_timeout_s())
    except ServerStartError as exc:
        print(str(exc), file=sys.stderr)
        return False
    return True


def use_own_prefect_server(own):
    """Point Prefect at the run's own server (distillery/app/local_server.py), unless a profile
    or prefect.toml names a server (then None: that one is used). Prefect reads its settings
    once, at import, so the URL goes into the environment and they are read again."""
    if own is None:
        return None
    import prefect.context
    from prefect.settings import get_current_settings

    from distillery.app import local_server

    if get_current_settings().api.url:
        own.stop()
        return None
    os.environ["PREFECT_API_URL"] = os.environ[local_server.OWNED_URL_ENV] = own.api_url
    prefect.context.refresh_global_settings_context()
    # Flow-run heartbeats let a shared server mark a run whose process died as Crashed; on a
    # server that dies with us nobody reads them, and each flow's exit waits on its heartbeat
    # thread (about half a second per stage). There is no environment value for "off".
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    ctx = prefect.context.GLOBAL_SETTINGS_CONTEXT
    prefect.context.GLOBAL_SETTINGS_CONTEXT = prefect.context.SettingsContext(
        profile=ctx.profile, settings=ctx.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
    )
    return own


def _interrupted(signum: int, frame) -> None:
    os.write(2, (INTERRUPTED + "\n").encode())
    os._exit(128 + signum)


@contextmanager
def interrupts_end_the_run() -> Iterator[None]:
    """While the block runs, SIGINT / SIGTERM end the process at once with one line: committed
    work is safe by design (a partition commits by rename), so stopping now is the same as a
    kill, minus the noise (and minus the wait for running tasks). Our Prefect server dies with
    us (PR_SET_PDEATHSIG). The previous handlers come back after the block (tests call main)."""
    if threading.current_thread() is not threading.main_thread():  # signals are the main thread's
        yield
        return
    previous = {s: signal.signal(s, _interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        engine = sys.modules.get("prefect.utilities.engine")
        if engine is not None and _PREFECT_SIGTERM_HANDLER:
            engine._prefect_sigterm_handler = _PREFECT_SIGTERM_HANDLER.pop()


_PREFECT_SIGTERM_HANDLER: list = []


def keep_our_sigterm_handler_in_flows() -> None:
    """Prefect swaps in its own SIGTERM handler while a flow runs (it raises TerminationSignal,
    then waits for running tasks and reports); it installs whatever
    `prefect.utilities.engine._prefect_sigterm_handler` names at that moment, so ours goes
    there. tests/test_reliability_default_path.py fails if a Prefect upgrade changes that."""
    import prefect.utilities.engine as engine

    if (
        threading.current_thread() is threading.main_thread()
        and hasattr(engine, "_prefect_sigterm_handler")
        and not _PREFECT_SIGTERM_HANDLER
    ):
        _PREFECT_SIGTERM_HANDLER.append(engine._prefect_sigterm_handler)
        engine._prefect_sigterm_handler = _interrupted


def flush_prefect_reports(timeout_s: float = 30.0) -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout_s)
