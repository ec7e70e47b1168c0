"""Kills and interrupts on the path users run: `distillery run CONFIG` with no PREFECT_API_URL.

Each run here is the CLI as a subprocess in its own session, with PREFECT_API_URL and
PREFECT_HOME removed from its environment and its own DISTILLERY_RUN_DIR, so it starts its
own Prefect server exactly as a user's run does (that costs a server start per run: these
tests keep the runs few). The teacher is the reference server in this process with a
latency on every request, so a distill run always has requests in flight when it is killed,
and its counters say which prompts were answered and how often.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import alive, cmdline, descendants, describe, lake_files, survivors, user_env, user_run

from distillery import accounting
from distillery.lake import Lake

REPO = Path(__file__).resolve().parents[1]
LATENCY_S = 1.5  # every teacher answer takes this long: requests are in flight most of the time
CONCURRENCY = 4
RERUN_BOUND_S = 180  # "does not hang", generous for a loaded 2-core machine (a server start included)


@pytest.fixture
def slow_teacher():
    from teacher.server import start_server

    handle = start_server(port=0, latency_s=LATENCY_S)
    yield handle
    handle.stop()


def write_config(folder: Path, samples_root: Path, teacher_url: str, articles: bool = False) -> Path:
    cfg = folder / "pipeline.yaml"
    article_source = (
        '  - {name: articles, kind: files, paths: ["samples/text/*"], license: CC-BY-4.0}\n' if articles else ""
    )
    cfg.write_text(f"""
name: default-path
lake: {folder / "lake"}
base_dir: {samples_root}
sources:
{article_source}  - {{name: problems, kind: jsonl, paths: ["samples/problems.jsonl"], text_field: text}}
curate: {{web_rules_exempt_sources: [problems]}}
distill:
  base_url: {teacher_url}
  timeout_s: 30
  max_retries: 1
  concurrency: {CONCURRENCY}
  tasks:
    - {{name: arithmetic, template: solve, selector: {{sources: [problems]}}, verify: math}}
run: {{partition_rows: 16, workers: 2}}
""")
    return cfg


def start_cli(cfg: Path, folder: Path, stderr, stages: str = "gather,curate,distill") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "distillery.cli", "run", str(cfg), "--stages", stages],
        cwd=folder,
        env=user_env(folder),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )


def run_and_kill(
    cfg: Path, folder: Path, err_path: Path, kill: str, ready, stages: str = "gather,curate,distill"
) -> int:
    """Start the CLI, wait for `ready(proc)`, SIGKILL it (its PID alone, `kill="pid"`, or its
    whole process group, "process_group") and check that no process it started survives;
    return its PID."""
    with open(err_path, "wb") as err:
        proc = start_cli(cfg, folder, err, stages=stages)
        try:
            ready(proc)
            started = descendants(proc.pid)
            assert started, "the run started no process of its own (its Prefect server is one)"
            os.kill(proc.pid, signal.SIGKILL) if kill == "pid" else os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    left = survivors(started) | prefect_servers_of(proc.pid)
    assert not left, f"processes the run killed by {kill} started are still running: {describe(left)}"
    return proc.pid


def prefect_servers_of(cli_pid: int) -> set[int]:
    """Live Prefect servers started by the CLI process `cli_pid`, wherever they were reparented."""
    return {
        int(d.name)
        for d in Path("/proc").glob("[0-9]*")
        if f"distillery.app.local_server {cli_pid}" in cmdline(int(d.name)) and alive(int(d.name))
    }


def wait_for_requests_in_flight(
    proc: subprocess.Popen, teacher, answered_before: int = 1, quiet_s: float = 1.0, bound_s: float = 240
) -> Counter:
    """Wait until the run has had at least `answered_before` answers, requests are in flight,
    and no answer has completed for `quiet_s` (so every answer completed so far had time to
    reach the run's cache). Returns the answers completed so far, per request body."""
    stats = teacher.stats
    deadline = time.monotonic() + bound_s
    last_completed, changed_at = -1, time.monotonic()
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before the kill: nothing was in flight to kill"
        with stats.lock:
            completed, in_flight = stats.completed, stats.requests - stats.completed
            snapshot = Counter(stats.by_request)
        if completed != last_completed:
            last_completed, changed_at = completed, time.monotonic()
        elif completed >= answered_before and in_flight > 0 and time.monotonic() - changed_at >= quiet_s:
            return snapshot
        time.sleep(0.05)
    pytest.fail("distill never had requests in flight")


def test_sigkill_during_distill_by_pid_then_by_group_then_rerun_pays_nothing_twice_leaves_no_process(
    samples, slow_teacher, tmp_path
):
    """Killed while distill has requests in flight, first by the CLI's PID alone, then (the
    same command again) with its whole process group, then run to the end: no kill leaves a
    process, the last run waits on nothing the dead runs held, and no answer is bought twice.
    One test for both kinds of kill, so the runs share one gather and curate."""
    cfg = write_config(tmp_path, samples, slow_teacher.url)
    paid: list[Counter] = []  # the answers completed before each kill, per request body
    killed = []
    for n, kill in enumerate(("pid", "process_group")):

        def in_flight(proc: subprocess.Popen) -> None:
            with slow_teacher.stats.lock:
                completed = slow_teacher.stats.completed
            paid.append(wait_for_requests_in_flight(proc, slow_teacher, answered_before=completed + 1))

        killed.append(run_and_kill(cfg, tmp_path, tmp_path / f"killed{n}.err", kill, in_flight))

    # The re-run: no wait on anything the dead runs held, and it finishes the job.
    start = time.monotonic()
    with open(tmp_path / "rerun.err", "wb") as err:
        rerun = start_cli(cfg, tmp_path, err)
        try:
            rc = rerun.wait(timeout=RERUN_BOUND_S)
        except subprocess.TimeoutExpired:
            os.killpg(rerun.pid, signal.SIGKILL)
            pytest.fail(
                f"the re-run did not finish within {RERUN_BOUND_S} s:\n" + (tmp_path / "rerun.err").read_text()[-3000:]
            )
    assert rc == 0, (tmp_path / "rerun.err").read_text()[-3000:]
    assert time.monotonic() - start < RERUN_BOUND_S

    # Every answer completed before a kill came from the cache afterwards: none was bought again.
    with slow_teacher.stats.lock:
        after = Counter(slow_teacher.stats.by_request)
    for n, answered in enumerate(paid):
        bought_twice = [body for body, k in answered.items() if after[body] > k]
        assert not bought_twice, (
            f"{len(bought_twice)} of {len(answered)} answers paid before kill {n + 1} were asked again"
        )
    status = accounting.check(Lake(tmp_path / "lake"))
    assert status.ok, status.render()
    traces = [s for s in status.stages if s.stage == "distill"][0]
    assert traces.rows_in > 0 and traces.quarantined == 0  # every prompt answered, none lost to the kills
    assert not any(prefect_servers_of(pid) for pid in [*killed, rerun.pid])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_exits_within_seconds_with_one_line_and_leaves_no_process(
    sig, samples, slow_teacher, tmp_path
):
    cfg = write_config(tmp_path, samples, slow_teacher.url)
    err_path = tmp_path / "run.err"
    with open(err_path, "wb") as err:
        proc = start_cli(cfg, tmp_path, err)
        try:
            wait_for_requests_in_flight(proc, slow_teacher, quiet_s=0.0)
            started = descendants(proc.pid)
            before = err_path.stat().st_size
            sent = time.monotonic()
            os.kill(proc.pid, sig)  # what a terminal's Ctrl-C or a service manager's stop sends
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{sig.name} did not end the run within 30 s")
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert took < 10, f"{sig.name} took {took:.1f} s to end the run"
    assert rc == 128 + sig
    text = err_path.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert text[before:].splitlines() == ["interrupted: committed work is kept; re-run the same command to continue"]
    left = survivors(started) | prefect_servers_of(proc.pid)
    assert not left, f"processes the interrupted run started are still running: {describe(left)}"
    assert accounting.check(Lake(tmp_path / "lake")).ok


def test_two_runs_started_at_once_in_a_fresh_folder_both_finish_and_leave_no_server(samples, tmp_path):
    """Two users' runs (two lakes) from one folder at the same moment, with no Prefect database
    yet: each starts its own server on one database; one migrates it while the other waits."""
    procs = {}
    for name in ("a", "b"):
        lake_dir = tmp_path / name
        lake_dir.mkdir()
        cfg = write_config(lake_dir, samples, "http://127.0.0.1:9/v1")  # gather and curate never ask
        env = dict(user_env(tmp_path))
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "distillery.cli", "run", str(cfg), "--stages", "gather,curate"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    for name, proc in procs.items():
        try:
            _, err = proc.communicate(timeout=RERUN_BOUND_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"run {name} did not finish within {RERUN_BOUND_S} s")
        assert proc.returncode == 0, f"run {name}:\n{err[-3000:]}"
        assert "Traceback" not in err, err[-3000:]
        assert accounting.check(Lake(tmp_path / name / "lake")).ok
        assert not prefect_servers_of(proc.pid)


def wait_for_line(proc: subprocess.Popen, err_path: Path, line: str, bound_s: float = 240) -> None:
    """Wait until the run has written `line` to its stderr (a progress line: it is not on a terminal)."""
    deadline = time.monotonic() + bound_s
    while line not in err_path.read_text(errors="replace"):
        assert proc.poll() is None, f"the run ended before {line!r}:\n" + err_path.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {line!r} within {bound_s} s"
        time.sleep(0.02)


def test_each_stage_killed_both_ways_then_rerun_matches_an_uninterrupted_run(samples, tmp_path):
    """gather, curate and shard (distill has its own test above), each killed twice while it
    runs, once by its PID alone and once with its process group, every time by the same
    command: no process is left after any kill, the last run finishes, the accounting adds up
    and the data files equal those of a run that was never killed."""
    stages = "gather,curate,shard"
    reference = tmp_path / "reference"
    reference.mkdir()
    ref_cfg = write_config(reference, samples, "http://127.0.0.1:9/v1", articles=True)
    done = user_run(ref_cfg, reference, stages, timeout=RERUN_BOUND_S)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    killed.mkdir()
    cfg = write_config(killed, samples, "http://127.0.0.1:9/v1", articles=True)
    rng = random.Random(int(os.environ.get("DISTILLERY_FAULT_SEED", "7")))
    for n, (stage, kill) in enumerate((s, k) for s in stages.split(",") for k in ("pid", "process_group")):
        err_path = killed / f"run{n}.err"

        def inside_stage(proc: subprocess.Popen, stage: str = stage, err_path: Path = err_path) -> None:
            wait_for_line(proc, err_path, f"{stage}: started")
            time.sleep(rng.uniform(0, 0.3))  # somewhere inside the stage's first partitions

        run_and_kill(cfg, killed, err_path, kill, inside_stage, stages=stages)
        if Lake(killed / "lake").catalog_path.exists():  # a kill before the first commit leaves no catalog
            assert accounting.check(Lake(killed / "lake")).ok  # committed work only, even right after a kill

    last = user_run(cfg, killed, stages, timeout=RERUN_BOUND_S)
    assert last.returncode == 0, last.stderr[-3000:]
    status = accounting.check(Lake(killed / "lake"))
    assert status.ok, status.render()
    assert all(s.rows_in > 0 for s in status.stages if s.stage in stages.split(","))
    assert lake_files(killed / "lake", hidden=False) == lake_files(reference / "lake", hidden=False)
