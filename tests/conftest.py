"""Test session set-up: one real Prefect server for the whole session, heartbeats off.

Prefect's home and database live in a temporary folder (never the user's ~/.prefect),
analytics are off, and flow-run heartbeats are disabled (each costs about a second).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="distillery-prefect-"))
os.environ["PREFECT_HOME"] = str(_HOME)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.setdefault("DISTILLERY_RUN_DIR", str(_HOME / "run"))

import pytest  # noqa: E402


@dataclass
class PrefectServer:
    url: str
    api_url: str
    log: Path

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a subprocess talking to this server (CLI, worker)."""
        env = dict(os.environ, PREFECT_API_URL=self.api_url, PYTHONPATH=str(REPO))
        env.update(extra)
        return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, body: dict | None = None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="session")
def prefect_server():
    """The session's one Prefect server, started as a user starts it (`distillery ui`): API,
    UI and scheduler on a free loopback port, its database under PREFECT_HOME's folder."""
    run_dir = _HOME / "server-run"
    port = free_port()
    log = _HOME / "server.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), DISTILLERY_RUN_DIR=str(run_dir),
               PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="1")
    env.pop("PREFECT_API_URL", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "distillery.cli", "ui", "--port", str(port)],
                                cwd=_HOME, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    srv = PrefectServer(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/api", log)
    try:
        import flows.pipeline  # noqa: F401  (pay for the imports while the server boots)
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, "the server exited:\n" + log.read_text()[-3000:]
            try:
                if http_json(srv.api_url + "/health") is True:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not come up:\n" + log.read_text()[-3000:]
            time.sleep(0.5)
        assert (run_dir / "prefect" / "prefect.db").exists()  # inside the run folder, as promised
        yield srv
    finally:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker
        for worker in (APILogWorker, EventsWorker):  # what is still queued goes before the server does
            worker.drain_all(timeout=120)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def prefect_api(prefect_server):
    """This process's Prefect client (and every flow run in it) on the session's server,
    flow-run heartbeats off."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url,
                                     PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield prefect_server


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> Path:
    """The demo corpus, generated once per session."""
    from distillery.sample_data import make_samples
    root = tmp_path_factory.mktemp("samples-root")
    make_samples(root / "samples")
    return root


def write_config(path: Path, samples_root: Path, lake: Path, teacher_url: str = "http://127.0.0.1:9/v1",
                 extra: str = "") -> Path:
    """A pipeline YAML over the generated sample corpus (text sources only unless `extra` adds more)."""
    path.write_text(f"""
name: test
lake: {lake}
base_dir: {samples_root}
sources:
  - {{name: articles, kind: files, paths: ["samples/text/*"], license: CC-BY-4.0}}
  - {{name: problems, kind: jsonl, paths: ["samples/problems.jsonl"], text_field: text}}
curate: {{web_rules_exempt_sources: [problems]}}
distill:
  base_url: {teacher_url}
  timeout_s: 10
  max_retries: 1
  tasks:
    - {{name: arithmetic, template: solve, selector: {{sources: [problems]}}, verify: math}}
train: {{n_layer: 1, n_head: 2, n_embd: 32, block_size: 64, batch_size: 4, steps: 3}}
run: {{partition_rows: 16, workers: 2}}
{extra}
""")
    return path
