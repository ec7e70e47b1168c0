"""Secrets: the teacher's API key never leaves the process it was given to, secrets in the
source data are redacted before any request reaches the teacher, and `distillery sql`
can neither write nor reach outside the lake.

One real CLI run of every stage (a subprocess, its stdout and stderr captured) against a
teacher that records every request it receives and, for some prompts, echoes the request's
Authorization header back in an error body, as some proxies do.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from distillery import accounting
from distillery.lake import Lake
from distillery.sql import WriteRefused, query

REPO = Path(__file__).resolve().parents[1]
API_KEY = "sk-planted-" + "Zq7" * 12  # what a user exports as DISTILLERY_TEACHER_API_KEY
SOURCE_SECRETS = {
    "email": "planted.person@example.org",
    "api_key": "sk-proj-" + "Xy9" * 14,
    "private_key": "MIIEpAIBAAKCAQEAplantedPrivateKeyBodyLine",
}
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n" + SOURCE_SECRETS["private_key"] + "\nQ2hlY2sgdGhpcyBpcyBub3QgYSByZWFsIGtleQ==\n"
    "-----END RSA PRIVATE KEY-----"
)


class RecordingTeacher:
    """The reference teacher, with every request's path, headers and body kept for the test.

    teacher.reference.server has no recording hook, so this subclasses its request handler (the
    server's own code still answers every request) and keeps what `_body` read.
    """

    def __init__(self, faults=None):
        from teacher.reference.server import _Handler, _State

        received = self.received = []

        class Handler(_Handler):
            def _body(self) -> bytes:
                raw = super()._body()
                received.append(
                    {
                        "path": self.path,
                        "authorization": self.headers.get("Authorization"),
                        "body": raw.decode("utf-8", "replace"),
                    }
                )
                return raw

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = _State(faults, 0.0)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _plant_source_secrets(text_dir: Path) -> str:
    """Append the planted secrets to one article that has no copy (so dedup keeps it); the
    last one, since the demo's contact page repeats the second."""
    path = next(
        p
        for p in sorted(text_dir.glob("article-*.txt"), reverse=True)
        if p.stem.count("-") == 1 and not any(text_dir.glob(p.stem + "-*"))
    )
    # Plain prose around the secrets keeps the article above the quality rules' thresholds.
    before = (
        "Anyone who wants to ask about these notes can write to the office, and somebody there "
        "will answer within a day or two, usually with a longer explanation than expected."
    )
    after = (
        "Visitors who arrive in spring often find the gardens closed for planting, so the staff "
        "recommend a later trip. The library keeps older letters in a cool room downstairs, where "
        "volunteers sort them by year and by the town they came from. Several readers have asked "
        "for a printed guide, and the committee hopes to publish one before the winter holidays."
    )
    path.write_text(
        path.read_text() + f"\n{before} Questions go to {SOURCE_SECRETS['email']} any day of the week. "
        f"The staging deploy key is {SOURCE_SECRETS['api_key']} and must stay private.\n\n{PEM}\n\n{after}\n"
    )
    return path.name


@pytest.fixture(scope="module")
def secret_run(prefect_api, tmp_path_factory):
    from prefect.settings import PREFECT_API_URL

    from distillery.app.sample_data import make_samples
    from teacher.reference.faults import Fault, FaultPlan

    root = tmp_path_factory.mktemp("secrets")
    make_samples(root / "samples", articles=12, problems=2)
    planted = _plant_source_secrets(root / "samples" / "text")
    # Prompts about birds get a 401 that quotes the Authorization header back.
    teacher = RecordingTeacher(FaultPlan([Fault("echo_auth", match="feather", times=None)]))
    lake, run_dir = root / "lake", root / "run"
    cfg_path = root / "c.yaml"
    cfg_path.write_text(f"""
lake: {lake}
base_dir: {root}
sources:
  - {{name: articles, kind: files, paths: ["samples/text/*"]}}
distill:
  base_url: {teacher.url}
  timeout_s: 10
  max_retries: 1
  backoff_base_s: 0
  tasks:
    - {{name: qa, template: qa_from_passage, verify: none}}
run: {{partition_rows: 8, workers: 2}}
""")
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        PREFECT_API_URL=PREFECT_API_URL.value(),
        DISTILLERY_TEACHER_API_KEY=API_KEY,
        DISTILLERY_RUN_DIR=str(run_dir),
        PREFECT_LOGGING_LEVEL="DEBUG",
    )
    out = subprocess.run(
        [sys.executable, "-m", "distillery.cli", "run", str(cfg_path), "--stages", "gather,curate,distill"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    teacher.stop()
    assert out.returncode == 0, out.stderr[-4000:]
    return {"root": root, "lake": lake, "run_dir": run_dir, "out": out, "teacher": teacher, "planted": planted}


def test_the_teacher_saw_the_key_and_the_run_used_it(secret_run):
    """Preconditions: the key was really sent (so not finding it later means something), and
    the echo fault really put it into an error body the client received."""
    chats = [r for r in secret_run["teacher"].received if r["path"].endswith("/chat/completions")]
    assert chats, "no request reached the teacher"
    assert all(r["authorization"] == f"Bearer {API_KEY}" for r in chats)
    echoed = query(Lake(secret_run["lake"]), "select count(*) from quarantine where stage = 'distill'")[1][0][0]
    assert echoed > 0, "no prompt hit the echo_auth fault: the test would not see a leaked key"


def test_api_key_is_in_no_file_log_artifact_or_message(secret_run):
    out = secret_run["out"]
    assert API_KEY not in out.stdout and API_KEY not in out.stderr
    # Every file the run wrote: the lake (Parquet, catalog, caches, runs) and the run folder.
    leaks = []
    for folder in (secret_run["lake"], secret_run["run_dir"], Path(os.environ["PREFECT_HOME"])):
        for p in folder.rglob("*"):
            if p.is_file() and API_KEY.encode() in p.read_bytes():
                leaks.append(str(p))
    assert leaks == []
    # What Prefect holds: logs, artifacts, flow and task run parameters, read back through its API.
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        logs = client.read_logs()
        artifacts = client.read_artifacts()
        flow_runs = client.read_flow_runs()
        task_runs = client.read_task_runs()
    assert logs and artifacts and flow_runs
    for obj in [*logs, *artifacts, *flow_runs, *task_runs]:
        assert API_KEY not in obj.model_dump_json(), type(obj).__name__
    # The error the echo fault provoked is recorded, scrubbed.
    errors = [r[0] for r in query(Lake(secret_run["lake"]), "select error from quarantine where stage = 'distill'")[1]]
    assert errors and all(API_KEY not in e for e in errors)
    assert any("REDACTED" in e for e in errors), errors[:3]


def test_source_secrets_are_redacted_before_the_teacher_sees_them(secret_run):
    bodies = [r["body"] for r in secret_run["teacher"].received if r["path"].endswith("/chat/completions")]
    for kind, secret in SOURCE_SECRETS.items():
        assert not any(secret in b for b in bodies), f"the planted {kind} reached the teacher"
    assert "BEGIN RSA PRIVATE KEY" not in "".join(bodies)
    # The planted article itself did reach the teacher, redacted (else the test proves nothing).
    planted = [b for b in bodies if "The staging deploy key is" in b]
    assert planted, "the article with the planted secrets never reached the teacher"
    text = json.dumps([json.loads(b) for b in planted])
    assert "<EMAIL>" in text and "<API_KEY>" in text
    assert "PRIVATE KEY" not in text and "planted" not in text  # the PEM block: redacted or its lines dropped
    # And nothing written downstream of curate holds them either.
    lake = Lake(secret_run["lake"])
    for view, column in (("curated", "text"), ("traces", "messages"), ("traces", "answer")):
        for secret in SOURCE_SECRETS.values():
            n = query(lake, f"select count(*) from {view} where contains({column}, '{secret}')")[1][0][0]
            assert n == 0, f"{secret} in {view}.{column}"


def test_sql_cannot_write_attach_shell_or_load(secret_run, tmp_path):
    lake = Lake(secret_run["lake"])
    before = {p: p.stat().st_mtime_ns for p in secret_run["lake"].rglob("*") if p.is_file()}
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    attempts = [
        f"attach '{other}' as o (read_only false)",
        f"attach '{other}' as o",
        f"attach '{tmp_path / 'new.duckdb'}' as n",
        "detach catalog",
        f"copy (select 1) to '{tmp_path / 'x.csv'}'",
        f"copy (select * from documents) to '{secret_run['lake'] / 'documents.parquet'}' (format parquet)",
        f"copy documents from '{outside}'",
        f"export database '{tmp_path / 'dump'}'",
        "install shellfs",
        "load shellfs",
        "install httpfs from 'http://127.0.0.1:9/'",
        "force install httpfs",
        "select * from read_csv('/etc/passwd')",
        f"select * from read_csv('{outside}')",
        "select * from read_text('/etc/passwd')",
        "select * from read_blob('/etc/shadow')",
        "select * from glob('/etc/*')",
        "select * from read_csv('echo pwned |')",
        ".shell touch /tmp/distillery-sql-pwned",
        "select system('touch /tmp/distillery-sql-pwned')",
        "call system('touch /tmp/distillery-sql-pwned')",
        "pragma enable_external_access",
        "pragma threads=1",
        "pragma memory_limit='1GB'",
        "set enable_external_access = true",
        "set allowed_directories = ['/']",
        "reset enable_external_access",
        "set lock_configuration = false",
        "checkpoint",
        "vacuum",
        "create or replace view documents as select 1",
        "create temp table t as select 1",
        "create macro m() as 1",
        "create secret (type s3, key_id 'a', secret 'b')",
        "update documents set text = ''",
        "delete from runs",
        "alter view documents rename to d",
        "begin transaction; drop view documents; commit",
        "select 1; drop view documents",
        "use memory",
    ]
    accepted = []
    for sql in attempts:
        try:
            query(lake, sql)
        except (WriteRefused, ValueError, duckdb.Error, PermissionError):
            continue
        accepted.append(sql)
    assert accepted == []
    assert not Path("/tmp/distillery-sql-pwned").exists()
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "new.duckdb").exists()
    assert not (secret_run["lake"] / "documents.parquet").exists() and not (tmp_path / "dump").exists()
    after = {p: p.stat().st_mtime_ns for p in secret_run["lake"].rglob("*") if p.is_file()}
    assert after == before, "a refused statement still changed a file in the lake"
    # Reading still works, and the accounting is intact.
    assert query(lake, "select count(*) from documents")[1][0][0] > 0
    assert accounting.check(lake).ok


def test_cli_sql_refuses_writes_with_a_clear_message(secret_run):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "distillery.cli",
            "sql",
            "attach '/tmp/distillery-attach.duckdb' as x (read_only false)",
            "--lake",
            str(secret_run["lake"]),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode in (1, 2)
    assert re.search(r"refused|only reads|not allowed|disabled", out.stderr, re.I), out.stderr
    assert not Path("/tmp/distillery-attach.duckdb").exists()
