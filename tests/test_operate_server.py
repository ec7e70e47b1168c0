"""Operating Distillery through a real Prefect server: deployments from prefect.yaml, a
schedule that creates a run, a worker that executes it, the UI that shows it, and the cap
on task runs per flow run.

They use the session's one Prefect server (tests/conftest.py), started the way a user
starts it (`distillery ui`), on a free loopback port with its home in a temporary folder;
its scheduler runs every second.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import PrefectServer as Server
from conftest import flush_to_server, http_json, stop_process_group, write_config

REPO = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's package (.ci/run installs it)
# The scheduled run's stages: every stage but distill (no teacher here), so that a train run
# leaves its loss chart; text-only sources keep shard and the 3-step train to seconds.
STAGES = ["gather", "curate", "shard", "train"]


@pytest.fixture(scope="module")
def server(prefect_api):
    """The session's Prefect server (API, UI and scheduler), this process's client on it."""
    return prefect_api


@pytest.fixture(scope="module")
def api(prefect_api):
    """The same server, named by the tests that drive it through this process's client."""
    return prefect_api


PIPELINE = "flows/pipeline.py:pipeline"
STAGE_FLOWS = {f"flows/entrypoints.py:{stage}" for stage in ("gather", "curate", "distill", "shard", "train")}


def test_deployment_files_declare_what_operators_need():
    """prefect.yaml: shared definitions, every stage and the pipeline, typed and limited."""
    text = (REPO / "prefect.yaml").read_text()
    spec = yaml.safe_load(text)
    assert "definitions" in spec and "&" in text and "*" in text  # anchors shared, not copied
    entrypoints = {d["entrypoint"] for d in spec["deployments"]}
    assert {PIPELINE, *STAGE_FLOWS} <= entrypoints
    for d in spec["deployments"]:
        assert d["enforce_parameter_schema"] is True
        assert d["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
        assert d["work_pool"]["name"] == "distillery"
    assert spec["pull"] == [{"distillery.app.deploy_steps.enter_checkout": {"home": "{{ $DISTILLERY_HOME }}"}}]


def test_schedules_are_coherent():
    """One time zone; only the whole pipeline is scheduled (it runs the stages in order), so
    no stage runs on a clock of its own, before its inputs or repeating the pipeline's work."""
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    schedules = [s for d in spec["deployments"] for s in d.get("schedules") or []]
    assert schedules and len({s.get("timezone") for s in schedules}) == 1, schedules
    scheduled = {d["entrypoint"] for d in spec["deployments"] if d.get("schedules")}
    assert scheduled == {PIPELINE}
    # nor does an event start a stage: the stage deployments run when someone starts them
    assert not [d["name"] for d in spec["deployments"] if d.get("triggers")]


def test_the_pull_step_enters_the_installed_checkout_or_distillery_home(tmp_path, monkeypatch):
    from distillery.app.deploy_steps import enter_checkout

    monkeypatch.chdir(tmp_path)
    assert enter_checkout("") == {"directory": str(REPO)} and Path.cwd() == REPO  # DISTILLERY_HOME unset
    home = tmp_path / "checkout"
    (home / "flows").mkdir(parents=True)
    (home / "flows" / "pipeline.py").write_text("")
    assert enter_checkout(str(home)) == {"directory": str(home)} and Path.cwd() == home
    with pytest.raises(FileNotFoundError, match="has no flows/pipeline.py: set DISTILLERY_HOME"):
        enter_checkout(str(tmp_path))


@pytest.fixture(scope="module")
def scheduled_run(server, samples, tmp_path_factory):
    """A worker polls the `distillery` pool; `prefect deploy --all` deploys the repository's
    prefect.yaml; a schedule due in a few seconds, with this test's config as its
    parameters, is added to the pipeline's deployment; the scheduler makes its run and the
    worker executes it. Returns the finished run and what the server says about it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate, WorkPoolCreate
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.client.schemas.schedules import IntervalSchedule
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.testing.cli import CycloptsCliRunner
    from prefect.workers.process import ProcessWorker

    tmp = tmp_path_factory.mktemp("deploy")
    config = write_config(tmp / "pipeline.yaml", samples, tmp / "lake")
    log = tmp / "worker.log"
    t0 = time.monotonic()
    with get_client(sync_client=True) as client:  # `prefect work-pool create distillery --type process`
        client.create_work_pool(
            WorkPoolCreate(
                name="distillery", type="process", base_job_template=ProcessWorker.get_default_base_job_template()
            )
        )
    # The worker starts now, so its start-up overlaps the deploy. It runs as the README's
    # `prefect worker start --pool distillery`: no DISTILLERY_HOME, no PYTHONPATH, its cwd a
    # scratch folder; the deployment's pull step must find the checkout by itself.
    env = server.env(PREFECT_WORKER_QUERY_SECONDS="1")
    for name in ("DISTILLERY_HOME", "PYTHONPATH"):
        env.pop(name, None)
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "distillery"],
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # The CLI in this process (its imports are already paid for), in the repository root.
        cwd = os.getcwd()
        os.chdir(REPO)
        try:
            deploy = CycloptsCliRunner().invoke(["--no-prompt", "deploy", "--all"])
        finally:
            os.chdir(cwd)
        assert deploy.exit_code == 0, deploy.stdout[-4000:]
        print(f"deployed in {time.monotonic() - t0:.0f} s")
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("pipeline/nightly")
            # The scheduler only tops up a deployment short of future runs, so a schedule added
            # to one that has its runs already would wait for hours. Pausing (as an operator
            # would in the UI) clears the runs made from the yaml's schedules and keeps the
            # scheduler off while the test's schedule goes in; resuming lets its next pass
            # (every second here) make the new schedule's run. Added before the pause, that
            # run could be made and then cleared by the pause.
            client.pause_deployment(deployment.id)
            soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=8)
            client.create_deployment_schedules(
                deployment.id,
                [
                    DeploymentScheduleCreate(
                        schedule=IntervalSchedule(interval=dt.timedelta(hours=1), anchor_date=soon),
                        active=True,
                        parameters={"config_path": str(config), "stages": STAGES},
                        slug="test-soon",
                    )
                ],
            )
            client.resume_deployment(deployment.id)
            deadline = time.monotonic() + 400
            run = None
            while run is None or not run.state.is_final():
                assert worker.poll() is None, "the worker exited:\n" + log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"run not finished: {run and run.state}\n" + log.read_text()[-3000:]
                time.sleep(1)
                if run is None:
                    runs = [
                        r
                        for r in client.read_flow_runs(
                            flow_run_filter=FlowRunFilter(
                                deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id])
                            ),
                            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                            limit=5,
                        )
                        if r.expected_start_time <= soon + dt.timedelta(seconds=1)
                    ]
                    run = runs[0] if runs else None
                else:
                    run = client.read_flow_run(run.id)
            print(f"run {run.state.name} at {time.monotonic() - t0:.0f} s")
            deployments = client.read_deployments()
    finally:
        stop_process_group(worker)
    return {
        "run": run,
        "deployment": deployment,
        "deployments": deployments,
        "worker_log": log,
        "lake": tmp / "lake",
        "config": config,
    }


def test_schedule_creates_a_run_that_a_worker_executes(scheduled_run, api):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )

    run = scheduled_run["run"]
    log = scheduled_run["worker_log"].read_text()[-4000:]
    assert run.state.is_completed(), f"{run.state}\n{log}"
    assert run.auto_scheduled, "the run should come from the schedule, not by hand"
    assert run.parameters["stages"] == STAGES

    with get_client(sync_client=True) as client:
        stage_runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id]))
        )
        family = [run.id] + [r.id for r in stage_runs]
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["pipeline-counts", "gather-counts", "curate-counts"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=family),
            )
        )
    assert len(stage_runs) == len(STAGES) and all(r.state.is_completed() for r in stage_runs)
    by_key = {}
    for a in arts:
        by_key.setdefault(a.key, []).append(a)
    assert set(by_key) == {"pipeline-counts", "gather-counts", "curate-counts"}
    pipeline_counts = by_key["pipeline-counts"][0]
    assert pipeline_counts.flow_run_id == run.id
    rows = json.loads(pipeline_counts.data) if isinstance(pipeline_counts.data, str) else pipeline_counts.data
    stages = {r["stage"]: r for r in rows}
    assert stages["gather"]["rows_in"] > 100 and stages["gather"]["adds_up"] is True
    assert stages["curate"]["kept"] > 0 and stages["curate"]["adds_up"] is True
    gather = json.loads(by_key["gather-counts"][0].data)
    assert gather[0]["rows_in"] == stages["gather"]["rows_in"]
    assert stages["train"]["rows_in"] > 0 and stages["train"]["adds_up"] is True
    # Runs named by what they do, tagged, with parameters a person reads.
    assert run.name == "pipeline test"
    assert {"pipeline:test", f"lake:{scheduled_run['lake']}"} <= set(run.tags)
    by_stage = {r.parameters["cfg"]["stage"]: r for r in stage_runs}
    assert set(by_stage) == set(STAGES)
    curate = by_stage["curate"]
    generation = next(scheduled_run["lake"].glob("curate/g-*")).name
    assert curate.name == f"curate {generation}" and curate.parameters["cfg"]["generation"] == generation
    assert {"stage:curate", "pipeline:test"} <= set(curate.tags)
    assert by_stage["shard"].name.startswith("shard build-") and by_stage["gather"].name == "gather test"
    assert "sources" not in json.dumps(curate.parameters)  # not the whole config
    # The worker wrote the lake where the config said, from the checkout the pull step chose.
    assert list(scheduled_run["lake"].glob("curate/*/b-*/curated-*.parquet"))


def test_deployments_carry_schedules_limits_and_schemas(scheduled_run, api):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    deployments = {d.name: d for d in scheduled_run["deployments"]}
    assert {"nightly", "on-ray", "gather", "curate", "distill", "shard", "train"} <= set(deployments)
    for d in deployments.values():
        assert d.enforce_parameter_schema
        assert d.global_concurrency_limit is not None and d.global_concurrency_limit.limit == 1
        assert d.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE
        assert d.work_pool_name == "distillery"
        assert d.pull_steps == [{"distillery.app.deploy_steps.enter_checkout": {"home": "{{ $DISTILLERY_HOME }}"}}]
        assert "config_path" in d.parameter_openapi_schema["properties"]
    # What runs by itself after `prefect deploy --all` (the README says so): the nightly
    # pipeline alone, in UTC (the test's own schedule was added to it afterwards).
    yaml_schedules = {
        d.name: [(s.schedule.cron, s.schedule.timezone) for s in d.schedules if s.slug != "test-soon"]
        for d in deployments.values()
        if d.name in ("nightly", "on-ray", "gather", "curate", "distill", "shard", "train")
    }
    assert {k: v for k, v in yaml_schedules.items() if v} == {"nightly": [("0 2 * * *", "UTC")]}
    assert deployments["on-ray"].job_variables["env"]["DISTILLERY_TASK_RUNNER"] == "ray"
    # A parameter of the wrong type is refused before any run exists.
    with get_client(sync_client=True) as client:
        with pytest.raises(Exception, match="(?i)validat|schema|422"):
            client.create_flow_run_from_deployment(deployments["gather"].id, parameters={"config_path": 7})


def test_ui_shows_the_runs_logs_summary_and_loss_chart(scheduled_run, server, tmp_path):
    """Headless Chromium opens the run in the Prefect UI: its name, its stage-count artifact,
    a stage run's Logs tab with the stage's summary line, the pipeline's summary artifact,
    and the train run's loss chart drawn (an image the browser decoded, not an empty box)."""
    from playwright.sync_api import sync_playwright
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter
    from prefect.client.schemas.filters import FlowRunFilterParentFlowRunId as Parent

    run = scheduled_run["run"]
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=Parent(any_=[run.id])))
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["pipeline-summary", "train-loss-chart"]))
        )
    curate = next(r for r in children if r.parameters["cfg"]["stage"] == "curate")
    family = {run.id} | {r.id for r in children}
    art = {a.key: a for a in arts if a.flow_run_id in family}
    shots = Path(os.environ.get("DISTILLERY_SCREENSHOT_DIR", tmp_path))
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{server.url}/runs/flow-run/{run.id}")
            page.get_by_text("pipeline test", exact=True).first.wait_for()  # the run's name
            page.get_by_text("nightly", exact=True).first.wait_for()  # its deployment
            page.get_by_text("Artifacts", exact=True).first.click()  # the run page's Artifacts tab
            card = page.get_by_text("pipeline-counts", exact=True).first
            card.wait_for()
            card.click()
            page.get_by_text("adds_up", exact=True).first.wait_for()  # the table's column header
            counts = page.inner_text("body")
            page.screenshot(path=str(shots / "ui-pipeline-run.png"), full_page=True)

            page.goto(f"{server.url}/runs/flow-run/{curate.id}")  # a stage run's Logs tab (its default)
            page.get_by_text(curate.name, exact=True).first.wait_for()
            page.get_by_text("Logs", exact=True).first.click()
            page.get_by_text(re.compile(r"curate: \d+ rows -> \d+ kept")).first.wait_for()
            page.screenshot(path=str(shots / "ui-stage-logs.png"), full_page=True)

            page.goto(f"{server.url}/artifacts/artifact/{art['pipeline-summary'].id}")
            page.get_by_text("Top rejection rules", exact=True).first.wait_for()
            summary = page.inner_text("body")
            page.screenshot(path=str(shots / "ui-pipeline-summary.png"), full_page=True)

            page.goto(f"{server.url}/artifacts/artifact/{art['train-loss-chart'].id}")
            chart = page.locator("img[src^='data:image/svg+xml']").first
            chart.wait_for()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
            box = chart.bounding_box()
            page.screenshot(path=str(shots / "ui-loss-chart.png"), full_page=True)
        finally:
            browser.close()
    assert "gather" in counts and "train" in counts and "rows per stage across the lake" in counts
    lake = str(scheduled_run["lake"])
    assert "pipeline test: done" in summary and lake in summary
    assert "distillery sql" in summary and f"--lake {lake}" in summary and "curate:" in summary
    assert box["width"] > 300 and box["height"] > 100, box
    assert (shots / "ui-loss-chart.png").stat().st_size > 10_000
    print(f"screenshots: {shots}")


def count_task_runs(server: Server, flow_run_id) -> int:
    return http_json(server.api_url + "/task_runs/count", {"flow_runs": {"id": {"any_": [str(flow_run_id)]}}})


def test_no_flow_run_makes_more_than_a_thousand_task_runs(api, tmp_path):
    """3,000 tiny files at one row per partition would be 3,000 task runs; the run's cap on
    partitions keeps the gather flow run to max_partitions + 1, and the server records every
    one of them. (The cap is set to 100 here to keep the test short; the default, 400, is
    validated to stay under 1,000 by the config model.)"""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    from distillery.config import load_config
    from flows.pipeline import pipeline

    files = tmp_path / "big"
    files.mkdir()
    for i in range(3_000):
        (files / f"{i:05d}.txt").write_text(f"note {i}: the quick brown fox {i % 97} jumps.\n")
    config = tmp_path / "big.yaml"
    config.write_text(f"""
lake: {tmp_path / "lake"}
sources:
  - {{name: notes, kind: files, paths: ["big/*.txt"], license: CC0-1.0}}
run: {{partition_rows: 1, max_partitions: 100, workers: 4}}
""")
    cfg = load_config(config)
    assert cfg.run.max_partitions == 100
    from distillery.config import RunConfig

    assert RunConfig().max_partitions <= 1000 and RunConfig.model_fields["max_partitions"].metadata
    t0 = time.monotonic()
    state = pipeline(config_path=str(config), stages=["gather"], return_state=True)
    print(f"gather of 3000 files in {cfg.run.max_partitions} partitions: {time.monotonic() - t0:.1f} s")
    assert state.is_completed(), state
    parent = state.state_details.flow_run_id
    flush_to_server()  # every task run's events sent; the server records them shortly after
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent]))
        )
    assert [c.name for c in children] and len(children) == 1
    gather_run = children[0].id
    expected = 1 + cfg.run.max_partitions  # plan_source + one task per partition
    deadline = time.monotonic() + 180
    while (n := count_task_runs(api, gather_run)) < expected and time.monotonic() < deadline:
        time.sleep(1)  # task runs reach the server as events, a little after the flow returns
    assert n == expected
    assert count_task_runs(api, parent) <= 1000
    from distillery.lake import Lake
    from distillery.sql import query

    assert (
        query(Lake(cfg.lake_root), "select count(*) from documents")[1][0][0]
        + query(Lake(cfg.lake_root), "select count(*) from quarantine")[1][0][0]
        + query(Lake(cfg.lake_root), "select count(*) from rejects")[1][0][0]
        == 3_000
    )
