"""Test session set-up: one real Prefect server for the whole session, heartbeats off.

Prefect's home and database live in a temporary folder (never the user's ~/.prefect),
analytics are off, and flow-run heartbeats are disabled (each costs about a second).
"""

from __future__ import annotations

import hashlib
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
    req = urllib.request.Request(
        url, data=json.dumps(body).encode() if body is not None else None, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def flush_to_server() -> None:
    """Send what this process's event and log workers still hold (a flow that has returned
    may leave events queued) and stop them; they start afresh on next use."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=120)


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM a process started with start_new_session=True and its children; SIGKILL after 30 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---- processes a test started, and whether any outlived what it should not --------------------


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (walking /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for whoever adopted it to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def survivors(pids: set[int], within_s: float = 10.0) -> set[int]:
    deadline = time.monotonic() + within_s
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def describe(pids: set[int]) -> list[str]:
    return [f"{p}: {cmdline(p)[:200]}" for p in sorted(pids)]


def user_env(folder: Path) -> dict[str, str]:
    """The environment of a user's `distillery` run (a subprocess): no PREFECT_API_URL, so the CLI
    starts its own Prefect server; its run folder and Prefect home under `folder/run`."""
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        DISTILLERY_RUN_DIR=str(folder / "run"),
        PREFECT_HOME=str(folder / "run" / "prefect"),
    )
    env.pop("PREFECT_API_URL", None)
    return env


def user_run(cfg: Path, folder: Path, stages: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`distillery run CONFIG --stages STAGES` as a user runs it, from `folder` (user_env),
    waited for; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "distillery.cli", "run", str(cfg), "--stages", stages],
        cwd=folder,
        env=user_env(folder),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def prefect_server():
    """The session's one Prefect server, started as a user starts it (`distillery ui`): API,
    UI and scheduler on a free loopback port, its database under PREFECT_HOME's folder."""
    run_dir = _HOME / "server-run"
    port = free_port()
    log = _HOME / "server.log"
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        DISTILLERY_RUN_DIR=str(run_dir),
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="1",
    )
    env.pop("PREFECT_API_URL", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "distillery.cli", "ui", "--port", str(port)],
            cwd=_HOME,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
        flush_to_server()  # what is still queued goes before the server does
        stop_process_group(proc)


@pytest.fixture(scope="session")
def prefect_api(prefect_server):
    """Every Prefect client of the session on the session's server, flow-run heartbeats off.

    `temporary_settings` reaches code in this context only; a flow started on a plain
    thread (a second run racing for the lake lock, a guard thread) reads Prefect's
    process-global settings instead and, finding no API URL there, would start an
    ephemeral server of its own. So the same settings become the global ones too (what
    Prefect's own test harness does), and the environment carries the URL to subprocesses.
    """
    import prefect.context
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    prior_env = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = prefect_server.api_url
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        prior_global = prefect.context.GLOBAL_SETTINGS_CONTEXT
        prefect.context.GLOBAL_SETTINGS_CONTEXT = prefect.context.get_settings_context()
        try:
            yield prefect_server
        finally:
            prefect.context.GLOBAL_SETTINGS_CONTEXT = prior_global
            if prior_env is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = prior_env


@pytest.fixture(scope="session")
def teacher_server():
    """The reference teacher on a free loopback port, shared by the session."""
    from teacher.reference.server import start_server

    handle = start_server(port=0)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> Path:
    """The demo corpus, generated once per session."""
    from distillery.app.sample_data import make_samples

    root = tmp_path_factory.mktemp("samples-root")
    make_samples(root / "samples")
    return root


LAKE_NOT_DATA = ("runs/", "cache/", "catalog.duckdb", ".lock", "train/")


def lake_files(lake: Path, hidden: bool = True) -> dict[str, str]:
    """sha256 of every data file in the lake (runs log, catalog, caches and lock excluded).

    hidden=False also leaves out the hidden work folders and temp files a killed or
    failed run may leave for its re-run to resume from (`.tmp-*`, `.*.tmp`).
    """
    out = {}
    for p in sorted(lake.rglob("*")):
        rel = p.relative_to(lake).as_posix()
        if not p.is_file() or rel.startswith(LAKE_NOT_DATA):
            continue
        if not hidden and any(part.startswith(".tmp") or part.endswith(".tmp") for part in rel.split("/")):
            continue
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def read_source(cfg: dict, base: Path):
    """Discover and read one source (a config dict) under `base`, media under base/lake/media.

    Checks gather's accounting on the way: every item's rows are kept, rejected or
    quarantined, and the per-file rows add up. Returns (items, PartitionResult).
    """
    from pydantic import TypeAdapter

    from sources import discover, read_items
    from sources.config import AnySource

    source = TypeAdapter(AnySource).validate_python(cfg)
    items = list(discover(source, base))
    result = read_items(source, items, base / "lake" / "media")
    t = result.tables
    assert result.rows_in == t["documents"].height + t["rejects"].height + t["quarantine"].height
    assert result.rows_in == t["files"]["rows"].sum()
    return items, result


def write_config(
    path: Path, samples_root: Path, lake: Path, teacher_url: str = "http://127.0.0.1:9/v1", extra: str = ""
) -> Path:
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


def read_in_spans(tmp_path: Path, src: dict, number: str, partition_rows: int = 500) -> tuple[list, object]:
    """Plan `src` (a config dict, its files under tmp_path) as gather does with
    `run.partition_rows`, read each partition's item on its own, and check the spans' contract:
    each reads at most partition_rows rows, all numbered (the uri's `#<number><N>`) within its
    span (a WARC record without a row, such as warcinfo, leaves a number out), and together
    they give exactly the tables of one whole-file read. Returns the partitions' items
    (SourceItem, span set) and the whole-file read's PartitionResult."""
    import polars as pl

    from distillery.config import validate_config
    from distillery.lake import Lake
    from distillery.plans import gather_plan
    from sources import SourceItem, discover, read_items

    cfg = validate_config(
        {
            "lake": str(tmp_path / f"lake-{src['name']}"),
            "base_dir": str(tmp_path),
            "sources": [src],
            "run": {"partition_rows": partition_rows},
        }
    )
    source = cfg.sources[0]
    _, parts, _ = gather_plan(cfg, Lake(cfg.lake_root), src["name"])
    items, read = [], []
    for p in parts:
        (r,) = pl.read_parquet(p["plan"]).iter_rows(named=True)
        span = (r["span_start"], r["span_stop"], r["span_row"])
        item = SourceItem(src["name"], r["uri"], r["path"], r["fingerprint"], span)
        result = read_items(source, [item], tmp_path / "media")
        rows = pl.concat([result.tables[t].select("uri") for t in ("documents", "rejects", "quarantine")])
        numbers = rows["uri"].str.extract(rf"#{number}(\d+)-?$").cast(pl.Int64)
        assert result.rows_in <= partition_rows, (src, span)
        assert numbers.null_count() == 0 and span[2] <= numbers.min() and numbers.max() < span[2] + partition_rows
        items.append(item)
        read.append(result)
    whole = read_items(source, list(discover(source, tmp_path)), tmp_path / "media")
    for table in ("documents", "rejects", "quarantine"):
        assert pl.concat([r.tables[table] for r in read]).equals(whole.tables[table]), (src, table)
    assert sum(r.rows_in for r in read) == whole.rows_in
    for key in set(whole.stats) | {k for r in read for k in r.stats}:
        assert sum(r.stats.get(key, 0) for r in read) == whole.stats.get(key, 0), key
    return items, whole
