"""Faults: SIGKILL at random moments of every stage, two runs on one lake, a full or
unwritable disk. Whatever happens, re-running the same command finishes the job and the
lake ends byte-identical to an uninterrupted run, with the accounting identity holding.

The pipeline runs as the user runs it (`python -m distillery.cli run CONFIG --stages S`),
as a subprocess against the session's Prefect API; the teacher is the reference server on
loopback. Kill moments come from a seeded RNG (`DISTILLERY_FAULT_SEED` picks another
sequence, `DISTILLERY_FAULT_KILLS=n` kills each stage n times before the re-run): the kill
lands a random delay after the stage's hidden `.tmp-*` work folder first appears, the
delay drawn from the stage's duration in the uninterrupted run.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import lake_files

from distillery import accounting, catalog
from distillery.config import load_config
from distillery.lake import Lake
from distillery.sql import query

REPO = Path(__file__).resolve().parents[1]
STAGES = ("gather", "curate", "distill", "shard")
SEED = int(os.environ.get("DISTILLERY_FAULT_SEED", "20261128"))
KILLS = int(os.environ.get("DISTILLERY_FAULT_KILLS", "1"))  # kills per stage before the final re-run


def fault_config(path: Path, samples_root: Path, lake: Path, teacher_url: str, timeout_s: float = 10) -> Path:
    """The sample corpus (articles + problems) with a distill task that every kept article reaches."""
    path.write_text(f"""
name: faults
lake: {lake}
base_dir: {samples_root}
sources:
  - {{name: articles, kind: files, paths: ["samples/text/*"], license: CC-BY-4.0}}
  - {{name: problems, kind: jsonl, paths: ["samples/problems.jsonl"], text_field: text}}
distill:
  base_url: {teacher_url}
  timeout_s: {timeout_s}
  max_retries: 1
  backoff_base_s: 0.1
  backoff_max_s: 0.2
  concurrency: 4
  tasks:
    - {{name: qa, template: qa_from_passage, selector: {{sources: [articles]}}, verify: none}}
    - {{name: arithmetic, template: solve, selector: {{sources: [problems]}}, verify: math}}
run: {{partition_rows: 8, workers: 2}}
""")
    return path


def cli_env(**extra: str) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return dict(os.environ, PYTHONPATH=str(REPO), PREFECT_API_URL=PREFECT_API_URL.value(), **extra)


def cli_run(cfg_path: Path, stages: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "distillery.cli", "run", str(cfg_path), "--stages", stages],
        env=popen.pop("env", None) or cli_env(),
        **popen,
    )


def work_folder_exists(lake: Path, stage: str) -> bool:
    d = lake / stage
    return any(d.glob(".tmp-*")) or any(d.glob("*/.tmp-*"))


def seed_lake(reference: Path, lake: Path, upto: str) -> None:
    """A copy of the reference lake holding only the stages before `upto` (and their media)."""
    shutil.rmtree(lake, ignore_errors=True)
    lake.mkdir(parents=True)
    for stage in STAGES[: STAGES.index(upto)]:
        shutil.copytree(reference / stage, lake / stage)
    if upto != "gather" and (reference / "media").exists():
        shutil.copytree(reference / "media", lake / "media")


def expected_files(reference: Path, upto: str) -> dict[str, str]:
    keep = set(STAGES[: STAGES.index(upto) + 1]) | {"media"}
    return {k: v for k, v in lake_files(reference).items() if k.split("/")[0] in keep}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A smaller demo corpus than the session's: fewer partitions, the same kinds of rows."""
    from distillery.app.sample_data import make_samples

    root = tmp_path_factory.mktemp("fault-corpus")
    make_samples(root / "samples", articles=30, problems=12)
    return root


@pytest.fixture(scope="module")
def fault_teacher(teacher_server):
    """The session's reference teacher (no faults: the faults here are kills, disks, locks)."""
    return teacher_server


@pytest.fixture(scope="module")
def reference(prefect_api, corpus, fault_teacher, tmp_path_factory):
    """An uninterrupted run of every stage, and how long each stage took (to draw kill moments)."""
    from flows.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("reference")
    cfg = load_config(fault_config(root / "c.yaml", corpus, root / "lake", fault_teacher.url))
    durations = {}
    for stage in STAGES:
        started = time.monotonic()
        out = run_pipeline(cfg, [stage])
        durations[stage] = time.monotonic() - started
        assert out[stage]["rows_in"] > 0, f"the reference {stage} did nothing: the kill test would test nothing"
    assert accounting.check(Lake(cfg.lake_root)).ok
    return cfg.lake_root, durations


def kill_at_random_moment(cfg_path: Path, lake: Path, stage: str, rng: random.Random, window_s: float, reset) -> float:
    """Start the stage, SIGKILL it `uniform(0, window)` seconds after its work folder appears.

    When the stage finished before the kill, the lake is reset and a moment in a smaller
    window is drawn (so the test never passes without killing anything). Returns the delay.
    """
    for _ in range(4):
        proc = cli_run(cfg_path, stage, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 300
            while proc.poll() is None and not work_folder_exists(lake, stage) and time.monotonic() < deadline:
                time.sleep(0.005)
            delay = rng.uniform(0, window_s)
            kill_at = time.monotonic() + delay
            while proc.poll() is None and time.monotonic() < kill_at:
                time.sleep(0.002)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                assert proc.wait() == -signal.SIGKILL
                return delay
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, f"the {stage} run failed on its own (exit {proc.returncode})"
        reset()
        window_s /= 3
    pytest.fail(f"{stage} finished every time before the kill")


@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_at_random_moment_then_rerun_gives_identical_lake(stage, reference, corpus, fault_teacher, tmp_path):
    ref_lake, durations = reference
    lake = tmp_path / "lake"
    seed_lake(ref_lake, lake, stage)
    cfg_path = fault_config(tmp_path / "c.yaml", corpus, lake, fault_teacher.url)
    cfg = load_config(cfg_path)
    rng = random.Random(f"{SEED}-{stage}")

    delays = []
    for _ in range(KILLS):  # each kill lands in whatever the previous killed runs left behind
        delays.append(
            kill_at_random_moment(
                cfg_path, lake, stage, rng, 0.9 * durations[stage], reset=lambda: seed_lake(ref_lake, lake, stage)
            )
        )
        # Whatever the moment, what is visible adds up: a half-done batch is never seen.
        catalog.refresh(cfg, Lake(lake))
        after_kill = accounting.check(Lake(lake))
        assert after_kill.ok, f"killed {delays}s in:\n{after_kill.render()}"

    from flows.pipeline import run_pipeline

    run_pipeline(cfg, [stage])  # the same command again (in this process: it saves a start-up)
    assert lake_files(lake) == expected_files(ref_lake, stage), f"killed at {delays} s"
    status = accounting.check(Lake(lake))
    assert status.ok, status.render()


def test_second_run_waits_for_the_lock_and_duplicates_nothing(reference, corpus, fault_teacher, tmp_path, capfd):
    """Run A (a CLI process) holds the lake; run B (this process) starts on the same lake
    meanwhile: B says who holds the lock, waits, then finds A's work done."""
    from flows.pipeline import run_pipeline

    ref_lake, _ = reference
    lake = tmp_path / "lake"
    cfg_path = fault_config(tmp_path / "c.yaml", corpus, lake, fault_teacher.url)
    first_log = tmp_path / "first.err"
    first = cli_run(cfg_path, "gather", stdout=subprocess.DEVNULL, stderr=first_log.open("w"))
    try:
        deadline = time.monotonic() + 300
        lock = lake / ".lock"
        while first.poll() is None and time.monotonic() < deadline:
            if lock.exists() and lock.read_text().strip() == f"pid {first.pid}":
                break
            time.sleep(0.002)
        assert first.poll() is None, "run A ended before run B could start"
        second = run_pipeline(load_config(cfg_path), ["gather"])
    finally:
        rc = first.wait(timeout=600)
    assert rc == 0, first_log.read_text()[-3000:]
    assert f"is locked by pid {first.pid}; waiting" in capfd.readouterr().err
    assert second["gather"]["rows_in"] == 0  # B found A's work done: it gathered nothing again

    assert lake_files(lake) == expected_files(ref_lake, "gather")
    lk = Lake(lake)
    assert query(lk, "select source, uri, count(*) from documents group by all having count(*) > 1")[1] == []
    assert query(lk, "select count(*) from documents")[1] == query(Lake(ref_lake), "select count(*) from documents")[1]
    assert accounting.check(lk).ok


def _fsize_limit(limit: int):
    def apply() -> None:  # runs in the child: writes past `limit` bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_fails_the_stage_clearly_and_keeps_the_previous_state(reference, corpus, fault_teacher, tmp_path):
    """RLIMIT_FSIZE makes every write past 4 KB fail with EFBIG, as a full disk fails with
    ENOSPC (root ignores permissions and quotas, so this is how the test fills the disk)."""
    ref_lake, _ = reference
    lake = tmp_path / "lake"
    seed_lake(ref_lake, lake, "curate")
    cfg_path = fault_config(tmp_path / "c.yaml", corpus, lake, fault_teacher.url)
    catalog.refresh(load_config(cfg_path), Lake(lake))
    before = lake_files(lake)
    docs_before = query(Lake(lake), "select count(*) from documents")[1][0][0]

    full = subprocess.run(
        [sys.executable, "-m", "distillery.cli", "run", str(cfg_path), "--stages", "curate"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_fsize_limit(4096),
    )
    assert full.returncode != 0
    last = full.stderr.strip().splitlines()[-1]
    assert "cannot write" in last and "File too large" in last and "re-run the same command" in last, full.stderr[
        -3000:
    ]
    assert lake_files(lake, hidden=False) == before  # nothing committed, nothing changed
    assert query(Lake(lake), "select count(*) from documents")[1][0][0] == docs_before
    assert query(Lake(lake), "select count(*) from curated")[1][0][0] == 0
    assert accounting.check(Lake(lake)).ok  # (that the re-run then completes, the kill tests show)


def test_unwritable_lake_fails_at_once_with_the_path(prefect_api, corpus, fault_teacher, tmp_path, capsys):
    """A lake path that is a file, or one inside /proc, cannot be written even by root
    (chmod does not stop root, so a read-only folder would prove nothing here)."""
    from distillery.cli import main
    from distillery.lake import LakeError
    from flows.pipeline import run_pipeline

    not_a_folder = tmp_path / "lake"
    not_a_folder.write_text("I am a file, not a lake\n")
    cfg_path = fault_config(tmp_path / "c.yaml", corpus, not_a_folder, fault_teacher.url)
    assert main(["run", str(cfg_path), "--stages", "gather"]) == 2
    assert f"the lake at {not_a_folder} is not writable" in capsys.readouterr().err
    assert not_a_folder.read_text() == "I am a file, not a lake\n"

    in_proc = load_config(cfg_path, {"lake": "/proc/distillery-lake"})
    with pytest.raises(LakeError, match="/proc/distillery-lake is not writable"):
        run_pipeline(in_proc, ["gather"])


def test_full_disk_while_storing_media_is_not_quarantine(prefect_api, fault_teacher, tmp_path):
    """A media file that cannot be stored because the disk is full is not bad data: the
    stage must fail (and its re-run gather the file), not quarantine the file for good."""
    import numpy as np
    from PIL import Image

    corpus = tmp_path / "corpus" / "images"
    corpus.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):  # ~12 KB each: over the 8 KB limit, while the Parquet files stay under it
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(corpus / f"{i}.png")
    lake = tmp_path / "lake"
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"""
lake: {lake}
base_dir: {tmp_path / "corpus"}
sources: [{{name: pics, kind: images, paths: ["images/*.png"]}}]
distill: {{base_url: {fault_teacher.url}, tasks: []}}
""")
    full = subprocess.run(
        [sys.executable, "-m", "distillery.cli", "run", str(cfg_path), "--stages", "gather"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_fsize_limit(8192),
    )
    assert full.returncode != 0
    committed = list(lake.glob("gather/*/b-*"))
    quarantined = []
    if committed:
        import polars as pl

        quarantined = pl.read_parquet(list(lake.glob("gather/*/b-*/quarantine-*.parquet"))).to_dicts()
    assert not committed, f"the full disk was recorded as bad data: {quarantined}"

    from flows.pipeline import run_pipeline

    run_pipeline(load_config(cfg_path), ["gather"])
    assert query(Lake(lake), "select count(*) from documents where modality = 'image'")[1][0][0] == 4


def test_teacher_that_errors_stalls_or_disconnects_never_hangs(reference, corpus, tmp_path):
    """Every wait on the teacher has a timeout: the stage ends, the failed prompts are
    quarantined with the reason, and the rest is kept."""
    from flows.pipeline import run_pipeline
    from teacher.reference.faults import Fault, FaultPlan
    from teacher.reference.server import start_server

    ref_lake, _ = reference
    lake = tmp_path / "lake"
    seed_lake(ref_lake, lake, "distill")
    # Each fault hits the prompts whose article mentions its word (the corpus has five topics).
    plan = FaultPlan(
        [
            Fault("timeout", match="sediment", times=None, seconds=60),  # holds the socket, never answers
            Fault("delay", match="yeast", times=None, seconds=60),  # would answer, a minute late
            Fault("disconnect", match="piston", times=None),  # half a body, then the socket closes
            Fault("server_error", match="feather", times=None, status=503),
            Fault("malformed", match="inflation", times=None),  # a 200 whose JSON is cut off
        ]
    )
    server = start_server(port=0, faults=plan)
    cfg = load_config(fault_config(tmp_path / "c.yaml", corpus, lake, server.url, timeout_s=0.5))
    cfg.run.max_quarantine_share = 1.0  # every topic has a fault: most prompts fail on purpose here
    box: dict = {}

    def run() -> None:
        try:
            box["out"] = run_pipeline(cfg, ["distill"])
        except BaseException as exc:  # reported below, in the test's thread
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=300)  # a guard against a hang, far above the worst case of the timeouts
    server.stop()
    assert not worker.is_alive(), "the distill stage hung on a faulty teacher"
    assert "error" not in box, repr(box.get("error"))
    counts = box["out"]["distill"]
    assert counts["kept"] > 0 and counts["quarantined"] > 0 and counts["balanced"]
    reasons = dict(query(Lake(lake), "select reason, count(*) from quarantine where stage = 'distill' group by all")[1])
    assert {"teacher_timeout", "teacher_http_503"} <= set(reasons), reasons
    assert all(r.startswith("teacher_") for r in reasons), reasons
    assert accounting.check(Lake(lake)).ok


def test_retry_round_asks_again_for_exactly_what_an_outage_quarantined(reference, corpus, tmp_path):
    """Prompts that failed stay quarantined on a plain re-run (their partition is committed);
    raising distill.retry_round starts a new generation that sends only those again."""
    from flows.pipeline import run_pipeline
    from teacher.reference.faults import Fault, FaultPlan
    from teacher.reference.server import start_server

    ref_lake, _ = reference
    lake = tmp_path / "lake"
    seed_lake(ref_lake, lake, "distill")
    passages = [
        r[0] for r in query(Lake(ref_lake), "select text from curated where source = 'articles' order by id limit 2")[1]
    ]
    # each fails both attempts (max_retries 1) of the first run; a third request is answered
    outage = FaultPlan([Fault("server_error", text[:80], times=2, status=503) for text in passages])
    server = start_server(faults=outage)
    try:
        cfg_path = fault_config(tmp_path / "c.yaml", corpus, lake, server.url)
        run_pipeline(load_config(cfg_path), ["distill"])
        failed = query(Lake(lake), "select reason from quarantine where stage = 'distill'")[1]
        assert failed == [("teacher_http_503",)] * 2
        answered, sent = server.stats.completed, server.stats.requests

        run_pipeline(load_config(cfg_path), ["distill"])
        assert server.stats.requests == sent  # committed: nothing asked again

        cfg_path.write_text(cfg_path.read_text().replace("  max_retries: 1\n", "  max_retries: 1\n  retry_round: 1\n"))
        run_pipeline(load_config(cfg_path), ["distill"])
        assert server.stats.requests == sent + 2 and server.stats.completed == answered + 2
        assert max(server.stats.by_request.values()) == 1  # nothing paid twice
        assert query(Lake(lake), "select count(*) from quarantine where stage = 'distill'")[1] == [(0,)]
        assert accounting.check(Lake(lake)).ok
    finally:
        server.stop()
