"""Failures are loud: an unreachable teacher, a stage that quarantines most of its rows, a
source that names nothing, a run off a terminal. Each is found early or ends Failed with
one line that says what happened; none ends as a quiet success.

Two runs go the user's way (`python -m distillery.cli run`, no PREFECT_API_URL, so Prefect
starts its temporary server, with their own run folder); the rest call the CLI's `main`
or the flows in this process against the session's Prefect server.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port, user_env

from distillery import accounting
from distillery.config import load_config
from distillery.lake import Lake
from distillery.sql import query

REPO = Path(__file__).resolve().parents[1]


def loud_config(path: Path, corpus: Path, lake: Path, teacher_url: str, distill: str = "", run: str = "") -> Path:
    """Articles and arithmetic problems; the distill task asks about the problems.
    `distill` and `run` add keys (one `key: value` each) to those sections."""
    path.write_text(f"""
lake: {lake}
base_dir: {corpus}
sources:
  - {{name: articles, kind: files, paths: ["samples/text/*"], license: CC-BY-4.0}}
  - {{name: problems, kind: jsonl, paths: ["samples/problems.jsonl"], text_field: text}}
curate: {{web_rules_exempt_sources: [problems]}}
distill:
  base_url: {teacher_url}
  timeout_s: 10
  max_retries: 0
  {distill}
  tasks:
    - {{name: arithmetic, template: solve, selector: {{sources: [problems]}}, verify: math}}
run:
  partition_rows: 4
  workers: 2
  {run}
""")
    return path


def closed_port_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}/v1"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from distillery.app.sample_data import make_samples

    root = tmp_path_factory.mktemp("loud-corpus")
    make_samples(root / "samples", articles=12, problems=8)
    return root


@pytest.fixture(scope="module")
def curated(prefect_api, corpus, tmp_path_factory) -> Path:
    """A lake gathered and curated once; tests copy it and distill their copy."""
    from flows.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("loud-curated")
    cfg = load_config(loud_config(root / "c.yaml", corpus, root / "lake", closed_port_url()))
    run_pipeline(cfg, ["gather", "curate"])
    assert query(Lake(cfg.lake_root), "select count(*) from curated where source = 'problems'")[1][0][0] > 0
    return cfg.lake_root


def copy_curated(curated: Path, lake: Path) -> Path:
    for part in ("gather", "curate", "media"):
        if (curated / part).exists():
            shutil.copytree(curated / part, lake / part)
    return lake


# -- the teacher ------------------------------------------------------------------------


def test_refused_connections_are_quarantined_as_refused_not_as_timeouts(tmp_path):
    """The transport reports a refused connection as a connect timeout; the quarantine
    reason must say what happened, and it must not take the timeout to say it."""
    from teacher import DistillConfig, distill_partition
    from teacher.reference.problems import arithmetic_problems, problems_frame

    cfg = DistillConfig(
        base_url=closed_port_url(),
        timeout_s=30,
        max_retries=1,
        backoff_base_s=0.01,
        backoff_max_s=0.02,
        tasks=[{"name": "solve", "template": "solve", "verify": "math"}],
    )
    started = time.monotonic()
    result = distill_partition(
        problems_frame(arithmetic_problems(4, seed=3, digits=2)), cfg, tmp_path / "cache", tmp_path
    )
    assert time.monotonic() - started < 10  # refused at once, not after timeout_s
    q = result.tables["quarantine"]
    assert q.height == 4
    assert set(q["reason"]) == {"teacher_connection_refused"}
    assert all("connection refused" in e for e in q["error"])


def test_preflight_names_the_url_and_cause_and_sends_no_prompt(teacher_server):
    """Refused, unresolvable and wrong-path teachers are each found by one small check; the
    wrong path reaches a real server that answers 404, and no chat request gets through."""
    from teacher import DistillConfig
    from teacher.preflight import TeacherUnreachable, check_teacher

    def cfg(url: str) -> DistillConfig:
        return DistillConfig(base_url=url, timeout_s=5, tasks=[])

    refused = closed_port_url()
    with pytest.raises(TeacherUnreachable, match="connection refused") as exc:
        check_teacher(cfg(refused))
    assert refused in str(exc.value) and "\n" not in str(exc.value)

    with pytest.raises(TeacherUnreachable, match="host name not resolved") as exc:
        check_teacher(cfg("http://no-such-teacher.invalid/v1"))
    assert "no-such-teacher.invalid" in str(exc.value)

    before = teacher_server.stats.requests
    wrong = teacher_server.url.removesuffix("/v1") + "/api/v2"
    with pytest.raises(TeacherUnreachable, match="HTTP 404") as exc:
        check_teacher(cfg(wrong))
    assert wrong in str(exc.value)
    assert teacher_server.stats.requests == before  # no chat request reached the route

    assert check_teacher(cfg(teacher_server.url)) is None
    assert teacher_server.stats.requests == before  # GET /models sufficed: no prompt spent


def test_preflight_names_the_key_variable_never_the_key_when_the_key_is_refused(monkeypatch):
    """A server that answers 401 to everything, quoting the Authorization header back."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from teacher import DistillConfig
    from teacher.preflight import TeacherUnreachable, check_teacher

    class Refuse(BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            body = f'{{"error": "bad key {self.headers.get("Authorization")}"}}'.encode()
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _refuse

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    secret = "sk-loud-test-" + "9" * 24
    monkeypatch.setenv("LOUD_TEST_KEY", secret)
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        with pytest.raises(TeacherUnreachable) as exc:
            check_teacher(DistillConfig(base_url=url, api_key_env="LOUD_TEST_KEY", timeout_s=5, tasks=[]))
    finally:
        httpd.shutdown()
        httpd.server_close()
    message = str(exc.value)
    assert url in message and "$LOUD_TEST_KEY" in message and "HTTP 401" in message, message
    assert secret not in message and "sk-loud" not in message


def test_wrong_teacher_path_stops_online_and_batch_runs_with_exit_2(
    prefect_api, corpus, curated, teacher_server, tmp_path, capsys
):
    """Both modes check the teacher before the first prompt: exit 2, the URL in one line,
    nothing committed, and the teacher's chat route never reached."""
    from distillery.cli import main

    wrong = teacher_server.url.removesuffix("/v1") + "/wrong/v1"
    before = teacher_server.stats.requests
    for mode in ("online", "batch"):
        lake = copy_curated(curated, tmp_path / mode)
        cfg_path = loud_config(tmp_path / f"{mode}.yaml", corpus, lake, wrong, distill=f"mode: {mode}")
        assert main(["run", str(cfg_path), "--stages", "distill"]) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert wrong in last and "HTTP 404" in last, last
        assert not list(lake.glob("distill/*/b-*")), "nothing may be committed"
    assert teacher_server.stats.requests == before

    # nothing to distill (nothing curated): no check, so the same wrong URL is no failure
    empty = loud_config(tmp_path / "empty.yaml", corpus, tmp_path / "empty-lake", wrong)
    assert main(["run", str(empty), "--stages", "distill"]) == 0


def test_unreachable_teacher_fails_the_users_run_with_exit_2_and_progress_lines(corpus, tmp_path):
    """The user's path, off a terminal: gather and curate report their start, progress and
    end as plain lines; distill finds the refused teacher before any prompt and the run
    exits 2 with one last line naming the URL; nothing of distill is committed."""
    url = closed_port_url()
    cfg_path = loud_config(tmp_path / "c.yaml", corpus, tmp_path / "lake", url)
    out = subprocess.run(
        [sys.executable, "-m", "distillery.cli", "run", str(cfg_path), "--stages", "gather,curate,distill"],
        env=user_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 2, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert url in last and "connection refused" in last, out.stderr[-3000:]
    assert "Traceback" not in out.stderr  # one line, not a traceback per flow level
    assert not list((tmp_path / "lake").glob("distill/*/b-*"))
    lines = out.stderr.splitlines()
    for stage in ("gather", "curate"):
        started = [ln for ln in lines if f" {stage}: started, " in ln]
        done = [ln for ln in lines if f" {stage}: " in ln and " partitions (" in ln]
        finished = [ln for ln in lines if f" {stage}: finished, " in ln]
        assert len(started) == 1 and finished and done, f"{stage}: no progress lines in\n{out.stderr[-3000:]}"
        assert done[-1].endswith("(100%)")
        assert "\r" not in out.stderr  # no bar off a terminal
    assert accounting.check(Lake(tmp_path / "lake")).ok


# -- the quarantine share --------------------------------------------------------------


def test_a_stage_that_quarantines_most_rows_fails_the_users_run_with_its_reasons(corpus, curated, tmp_path):
    """A teacher that passes the check (GET /models answers) but fails every prompt with
    HTTP 500: the distill work is committed and adds up, and the run exits non-zero with
    the share and the top reason in its last line."""
    from teacher.reference.faults import Fault, FaultPlan
    from teacher.reference.server import start_server

    server = start_server(faults=FaultPlan([Fault("server_error", times=None, status=500)]))
    lake = copy_curated(curated, tmp_path / "lake")
    try:
        cfg_path = loud_config(tmp_path / "c.yaml", corpus, lake, server.url)
        out = subprocess.run(
            [sys.executable, "-m", "distillery.cli", "run", str(cfg_path), "--stages", "distill"],
            env=user_env(tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    prompts = server.stats.requests
    assert prompts > 0
    assert last.startswith("distill failed: ") and f"{prompts} of {prompts} rows quarantined" in last, last
    assert f"teacher_http_500 x{prompts}" in last and "run.max_quarantine_share 50%" in last, last
    reasons = query(Lake(lake), "select reason, count(*) from quarantine where stage = 'distill' group by all")[1]
    assert reasons == [("teacher_http_500", prompts)]  # committed, as the message says
    assert accounting.check(Lake(lake)).ok


def run_artifacts(run_ids: list, suffix: str) -> dict[str, str]:
    """{key: data} of the artifacts of these flow runs whose key ends with `suffix`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids)))
    return {a.key: a.data for a in arts if a.key and a.key.endswith(suffix)}


def test_quarantine_share_failure_ends_the_flow_runs_failed_and_the_share_is_configurable(
    prefect_api, corpus, curated, tmp_path
):
    """In Prefect the pipeline run and its distill run end Failed (what a deployment shows);
    with run.max_quarantine_share at 1.0 the same outcome is a Completed run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    from flows.pipeline import pipeline
    from flows.reporting import QuarantineShareExceeded
    from teacher.reference.faults import Fault, FaultPlan
    from teacher.reference.server import start_server

    server = start_server(faults=FaultPlan([Fault("server_error", times=None, status=503)]))
    try:
        lake = copy_curated(curated, tmp_path / "strict")
        state = pipeline(
            config_path=str(loud_config(tmp_path / "strict.yaml", corpus, lake, server.url)),
            stages=["distill"],
            return_state=True,
        )
        assert state.is_failed()
        with pytest.raises(QuarantineShareExceeded, match="teacher_http_503"):
            state.result()
        with get_client(sync_client=True) as client:
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])
                )
            )
        assert len(children) == 1 and children[0].state.is_failed(), [r.state for r in children]
        assert accounting.check(Lake(lake)).ok
        # The failed runs' summaries say what failed and what to do next, with the query for the rows.
        summaries = run_artifacts([state.state_details.flow_run_id, children[0].id], "summary")
        for key in ("pipeline-summary", "distill-summary"):
            text = summaries[key]
            assert "failed" in text.splitlines()[0] and "## Failed" in text and "**Next:**" in text, text
            assert "teacher_http_503" in text and "raise distill.retry_round" in text, text
            assert 'distillery sql "select stage, uri, reason' in text and str(lake) in text, text

        lenient = copy_curated(curated, tmp_path / "lenient")
        cfg = loud_config(tmp_path / "lenient.yaml", corpus, lenient, server.url, run="max_quarantine_share: 1.0")
        state = pipeline(config_path=str(cfg), stages=["distill"], return_state=True)
        assert state.is_completed()
        assert state.result()["distill"]["quarantined"] == state.result()["distill"]["rows_in"] > 0
    finally:
        server.stop()


def test_quarantine_verdict_counts_only_a_share_above_the_limit():
    from distillery.accounting import StageCounts
    from flows.reporting import quarantine_verdict

    reasons = [{"reason": "truncated", "n": 3}, {"reason": "zero_byte", "n": 2}]
    assert quarantine_verdict("gather", StageCounts("gather", rows_in=10, kept=5, quarantined=5), 0.5, reasons) is None
    assert quarantine_verdict("gather", StageCounts("gather"), 0.5, []) is None  # nothing ran
    message = quarantine_verdict("gather", StageCounts("gather", rows_in=10, kept=4, quarantined=6), 0.5, reasons)
    assert message is not None and "\n" not in message
    assert "6 of 10 rows quarantined (60%" in message and "truncated x3, zero_byte x2" in message


# -- sources ---------------------------------------------------------------------------


def test_a_glob_that_matches_nothing_or_a_missing_repo_stops_the_run_before_any_stage(
    prefect_api, corpus, tmp_path, capsys
):
    """Exit 2 with the pattern and the folder in one line; no stage has written anything."""
    from distillery.cli import main

    lake = tmp_path / "lake"
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"""
lake: {lake}
base_dir: {corpus}
sources:
  - {{name: articles, kind: files, paths: ["samples/text/*", "samples/txet/*.md"]}}
  - {{name: code, kind: repo, url_or_path: no-such-repo}}
""")
    assert main(["run", str(cfg_path), "--stages", "gather,curate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1
    last = err[-1]
    assert "'samples/txet/*.md'" in last and str(corpus) in last, last
    assert str(corpus / "no-such-repo") in last and "does not exist" in last, last
    assert "samples/text/*'" not in last  # the pattern that matches is not blamed
    assert not (lake / "gather").exists()

    # one glob for one missing file: same check; fixed, the run goes ahead
    cfg_path.write_text(
        cfg_path.read_text()
        .replace(', "samples/txet/*.md"', "")
        .replace("  - {name: code, kind: repo, url_or_path: no-such-repo}\n", "")
    )
    assert main(["run", str(cfg_path), "--stages", "gather"]) == 0
    assert query(Lake(lake), "select count(*) from documents")[1][0][0] > 0


# -- progress off a terminal -----------------------------------------------------------


def test_progress_off_a_terminal_prints_a_line_per_tenth_of_the_partitions():
    """(The bar on a real terminal: tests/test_operate_limits.py.)"""
    from flows.reporting import Progress

    plain = io.StringIO()
    progress = Progress("curate", 40, stream=plain)
    for _ in range(40):
        progress.advance()
    lines = plain.getvalue().splitlines()
    assert lines[0].endswith("curate: started, 40 partitions to do")
    assert [ln.split(" ", 1)[1] for ln in lines[1:]] == [
        f"curate: {n}/40 partitions ({100 * n // 40}%)" for n in range(4, 41, 4)
    ]
    assert "\r" not in plain.getvalue()
