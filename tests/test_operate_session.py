"""The test session's Prefect set-up: one server for everything, heartbeats off everywhere.

A flow started on a plain thread (the lake-lock race, the faulty-teacher guard) does not
inherit a `temporary_settings` context; if the session's settings reached only the main
context, such a flow would start an ephemeral server of its own (20-60 s) or miss the
heartbeat switch. These tests run a flow where each kind of caller runs one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from conftest import http_json

REPO = Path(__file__).resolve().parents[1]


def _probe_flow():
    from prefect import flow
    from prefect.context import get_run_context
    from prefect.settings import get_current_settings

    @flow(name="session-probe")
    def probe() -> dict:
        settings = get_current_settings()
        return {
            "api": str(settings.api.url),
            "heartbeat": settings.flows.heartbeat_frequency,
            "run": str(get_run_context().flow_run.id),
        }

    return probe


def test_a_flow_on_a_plain_thread_uses_the_session_server_without_heartbeats(prefect_api):
    probe = _probe_flow()
    seen: dict = {}
    thread = threading.Thread(target=lambda: seen.update(probe()))
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert seen["api"] == prefect_api.api_url and seen["heartbeat"] is None
    run = http_json(f"{prefect_api.api_url}/flow_runs/{seen['run']}")
    assert run["state_type"] == "COMPLETED" and run["name"]


def test_a_subprocess_finds_the_session_server_in_its_environment(prefect_api):
    code = "from prefect.settings import get_current_settings;print(get_current_settings().api.url)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert out.stdout.strip() == prefect_api.api_url, out.stderr[-2000:]
