"""The spine end to end: a real Prefect API, real files, a real teacher over loopback HTTP.

These tests share one pipeline run per session (the `demo_lake` fixture) where they can,
and make their own lakes where they must change or break something.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import lake_files, user_env, user_run, write_config

from distillery import accounting
from distillery.config import load_config
from distillery.generations import shard_build_dir
from distillery.lake import Lake
from distillery.sql import WriteRefused, query

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def demo_lake(prefect_api, samples, teacher_server, tmp_path_factory):
    from flows.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("demo")
    cfg = load_config(write_config(root / "c.yaml", samples, root / "lake", teacher_server.url))
    result = run_pipeline(cfg)
    return cfg, result


def test_pipeline_fills_every_view_and_adds_up(demo_lake):
    cfg, result = demo_lake
    lake = Lake(cfg.lake_root)
    counts = {
        v: query(lake, f"select count(*) from {v}")[1][0][0]
        for v in ("documents", "curated", "rejects", "duplicates", "quarantine", "traces", "shards", "runs")
    }
    assert counts["documents"] > 100
    assert 0 < counts["curated"] < counts["documents"]
    assert counts["rejects"] > 0 and counts["duplicates"] > 0 and counts["quarantine"] > 0
    assert counts["traces"] > 0 and counts["shards"] > 0 and counts["runs"] >= 4  # one per data stage
    status = accounting.check(lake)
    assert status.ok, status.render()
    assert all(s.balanced for s in status.stages)


def test_rerun_writes_nothing_new(demo_lake):
    from flows.pipeline import run_pipeline

    cfg, _ = demo_lake
    before = lake_files(cfg.lake_root)
    run_pipeline(cfg, stages=["gather", "curate", "distill", "shard"])
    assert lake_files(cfg.lake_root) == before
    lake = Lake(cfg.lake_root)
    last = query(lake, "select stage, rows_in, skipped from runs order by finished_at desc limit 4")[1]
    assert all(rows_in == 0 for _, rows_in, _ in last)


def test_sql_refuses_every_kind_of_write(demo_lake):
    cfg, _ = demo_lake
    lake = Lake(cfg.lake_root)
    for bad in (
        "create table t as select 1",
        "insert into documents select * from documents",
        "drop view documents",
        f"copy (select 1) to '{cfg.lake_root}/x.csv'",
        "attach '/tmp/other.duckdb' as other",
        "install httpfs",
        "set enable_external_access = true",
    ):
        with pytest.raises((WriteRefused, duckdb.Error)):
            query(lake, bad)
    # Reading outside the lake is refused by DuckDB itself.
    with pytest.raises(duckdb.Error):
        query(lake, "select * from read_csv('/etc/passwd')")
    assert not (cfg.lake_root / "x.csv").exists()


def test_cli_sql_and_status(demo_lake):
    cfg, _ = demo_lake
    env = dict(os.environ)
    cli = [sys.executable, "-m", "distillery.cli"]
    out = subprocess.run(
        cli + ["sql", "select count(*) as n from shards", "--lake", str(cfg.lake_root), "--format", "csv"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.splitlines()[1]) > 0
    refused = subprocess.run(
        cli + ["sql", "delete from documents", "--lake", str(cfg.lake_root)], capture_output=True, text=True, env=env
    )
    assert refused.returncode == 2 and "only reads" in refused.stderr
    status = subprocess.run(cli + ["status", "--lake", str(cfg.lake_root)], capture_output=True, text=True, env=env)
    assert status.returncode == 0 and "accounting: OK" in status.stdout


def test_broken_count_is_caught(demo_lake, tmp_path):
    cfg, _ = demo_lake
    copy = tmp_path / "lake"
    shutil.copytree(cfg.lake_root, copy)
    from distillery import catalog

    catalog.refresh(cfg.model_copy(update={"lake": copy}), Lake(copy))
    assert accounting.check(Lake(copy)).ok
    import pyarrow.parquet as pq

    by_rows = sorted(copy.glob("curate/*/b-*/curated-*.parquet"), key=lambda p: pq.ParquetFile(p).metadata.num_rows)
    victim = by_rows[-1]
    victim.unlink()  # a lost partition file: its rows vanished
    status = accounting.check(Lake(copy))
    assert not status.ok
    assert any("curate" in p and "kept" in p for p in status.problems)
    assert any("curated file missing" in p and victim.stem.split("-", 1)[1] in p for p in status.problems)
    out = subprocess.run(
        [sys.executable, "-m", "distillery.cli", "status", "--lake", str(copy)], capture_output=True, text=True
    )
    assert out.returncode == 1


def test_lost_file_that_held_no_rows_is_caught(demo_lake, tmp_path):
    """Every table of a committed partition is written, even empty; losing one is a problem
    even though no count changes (the demo has partitions whose every row was a duplicate)."""
    cfg, _ = demo_lake
    copy = tmp_path / "lake"
    shutil.copytree(cfg.lake_root, copy)
    from distillery import catalog

    catalog.refresh(cfg.model_copy(update={"lake": copy}), Lake(copy))
    import pyarrow.parquet as pq

    empty = [
        p
        for p in sorted(copy.glob("*/*/b-*/*-*.parquet"))
        if pq.ParquetFile(p).metadata.num_rows == 0 and not p.name.startswith("ledger-")
    ]
    assert empty, "the demo lake has no empty partition file to lose"
    empty[0].unlink()
    status = accounting.check(Lake(copy))
    table, part = empty[0].stem.split("-", 1)
    assert not status.ok and status.problems == [
        f"{empty[0].parts[-4]} partition {part}: {table} file missing from {empty[0].parent}"
    ]


def test_partition_that_does_not_add_up_is_refused():
    import polars as pl

    from distillery.batch import AccountingError, ledger_row
    from distillery.result import PartitionResult

    bad = PartitionResult(rows_in=3, tables={"documents": pl.DataFrame({"id": ["a", "b"]})})
    with pytest.raises(AccountingError, match="3 rows in but 2 out"):
        ledger_row("gather", "p", [], bad)


def test_killed_stage_leaves_nothing_visible_and_rerun_completes(prefect_api, samples, tmp_path, teacher_server):
    """SIGKILL the gather stage once some partitions are written: the views show none of
    them, and the re-run finishes with exactly the lake an uninterrupted run makes."""
    cfg_path = write_config(tmp_path / "c.yaml", samples, tmp_path / "lake", teacher_server.url, extra="")
    cfg_path.write_text(cfg_path.read_text().replace("partition_rows: 16", "partition_rows: 1"))
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, PYTHONPATH=str(REPO), PREFECT_API_URL=PREFECT_API_URL.value())
    proc = subprocess.Popen(
        [sys.executable, "-m", "distillery.cli", "run", str(cfg_path), "--stages", "gather"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lake = tmp_path / "lake"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(lake.glob("gather/*/.tmp-*/ledger-*.parquet"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(lake.glob("gather/*/.tmp-*/ledger-*.parquet")), "the kill came too late to test anything"
    assert not list(lake.glob("gather/*/b-*")), "a batch was committed before the kill"
    cfg = load_config(cfg_path)
    from distillery import catalog

    catalog.refresh(cfg, Lake(cfg.lake_root))
    assert query(Lake(cfg.lake_root), "select count(*) from documents")[1][0][0] == 0

    from flows.pipeline import run_pipeline

    run_pipeline(cfg, stages=["gather"])
    resumed = lake_files(lake)
    fresh_cfg = load_config(cfg_path, {"lake": str(tmp_path / "fresh")})
    run_pipeline(fresh_cfg, stages=["gather"])
    assert resumed == lake_files(tmp_path / "fresh")
    assert accounting.check(Lake(cfg.lake_root)).ok


def test_shard_build_is_an_asset_with_lineage_to_its_sources(demo_lake):
    """The shard build is materialized as a Prefect asset whose upstream includes every source."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.events.worker import EventsWorker

    from flows.assets import file_key, source_keys

    cfg, _ = demo_lake
    EventsWorker.drain_all(timeout=60)
    key = file_key(shard_build_dir(cfg, Lake(cfg.lake_root)))

    async def events() -> list[dict]:
        async with get_client() as client:
            body = {
                "filter": {"event": {"prefix": ["prefect.asset.materialization"]}, "any_resource": {"id": [key]}},
                "limit": 50,
            }
            for _ in range(60):
                resp = await client._client.post("/events/filter", json=body)
                found = resp.json()["events"]
                if found:
                    return found
                await asyncio.sleep(0.5)
            return []

    found = asyncio.run(events())
    assert found, f"no materialization event for {key}"
    event = found[0]
    assert event["event"] == "prefect.asset.materialization.succeeded"
    related = {r["prefect.resource.id"] for r in event["related"]}
    assert set(source_keys(cfg)) <= related
    lake = Lake(cfg.lake_root)
    assert event["payload"]["rows"] == query(lake, "select count(*) from shards")[1][0][0]
    assert event["payload"]["tokens"] == query(lake, "select sum(n_tokens) from shards")[1][0][0]


def test_run_artifacts_explain_where_rows_went(demo_lake):
    """Rejections per rule, duplicates per method, teacher usage and tokens per modality are
    published as table artifacts with stable keys, and agree with the lake."""
    import asyncio
    import json as _json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    cfg, result = demo_lake
    lake = Lake(cfg.lake_root)
    # Other tests publish the same keys on this server: read the demo run's own.
    runs = [result[s]["run_id"] for s in ("gather", "curate", "distill", "shard")]
    keys = [
        "curate-rejects-by-rule",
        "curate-duplicates-by-method",
        "gather-quarantine-by-reason",
        "distill-teacher-usage",
        "distill-teacher-requests",
        "shard-tokens-by-modality",
    ]

    async def latest() -> dict[str, list[dict]]:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=keys), flow_run_id=ArtifactFilterFlowRunId(any_=runs)
                )
            )
        out = {}
        for a in sorted(found, key=lambda a: a.created):
            data = a.data if not isinstance(a.data, str) else _json.loads(a.data)
            if data:  # a re-run that did no work publishes no breakdown; keep the first full one
                out.setdefault(a.key, data)
        return out

    artifacts = asyncio.run(latest())
    assert set(keys) <= set(artifacts), sorted(artifacts)
    by_rule = {r["rule"]: r["n"] for r in artifacts["curate-rejects-by-rule"]}
    expected = dict(query(lake, "select rule, count(*) from rejects where stage = 'curate' group by rule")[1])
    assert by_rule == expected
    usage = artifacts["distill-teacher-usage"][0]
    assert usage["traces"] == query(lake, "select count(*) from traces")[1][0][0]
    assert artifacts["distill-teacher-requests"][0]["requests"] > 0
    tokens = {r["modality"]: r["tokens"] for r in artifacts["shard-tokens-by-modality"]}
    assert tokens["text"] == query(lake, "select sum(n_text_tokens) from shards")[1][0][0]


def test_one_current_build_across_a_curate_change(demo_lake, tmp_path, capfd):
    """A changed curate config starts a new curate generation. Until shard runs, the lake's
    current build stays the one the `shards` view and `shards path` show, and `status` says
    shard is pending for this config instead of comparing that build with the new curated
    rows. Shard run without distill holds curated rows with no traces: it says so in its
    output, the manifest, the card and runs. With distill run again, shard makes a third
    build, never the first one again (its partition names are the same)."""
    import json

    from flows.pipeline import run_pipeline

    cfg, _ = demo_lake
    copy = tmp_path / "lake"
    shutil.copytree(cfg.lake_root, copy)
    yaml_text = (cfg.lake_root.parent / "c.yaml").read_text()
    changed_yaml = tmp_path / "changed.yaml"
    changed_yaml.write_text(
        yaml_text.replace(f"lake: {cfg.lake_root}", f"lake: {copy}").replace(
            "web_rules_exempt_sources: [problems]", "web_rules_exempt_sources: [problems, articles]"
        )
    )
    changed = load_config(changed_yaml)
    assert changed.lake_root == copy and changed.curate.web_rules_exempt_sources == ["problems", "articles"]
    first = (copy / "shard" / "CURRENT").read_text().strip()
    first_rows = json.loads((copy / "shard" / first / "manifest.json").read_text())["totals"]["rows"]
    # The user's path: `distillery run` with no PREFECT_API_URL, then `status` from another folder.
    curate = user_run(changed_yaml, tmp_path, "curate")
    assert curate.returncode == 0, curate.stdout[-3000:] + curate.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "distillery.cli", *args, "--lake", str(copy)],
            cwd=elsewhere,
            env=user_env(elsewhere),
            capture_output=True,
            text=True,
            timeout=120,
        )

    status = cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"pending: shard: not yet run for this config (it makes {shard_build_dir(changed, Lake(copy)).name})" in (
        status.stdout
    )
    assert f"read the lake's current build {first} (lake/shard/CURRENT)" in status.stdout
    assert Path(cli("shards", "path").stdout.strip()).name == first
    lake = Lake(changed.lake_root)
    assert query(lake, "select count(*) from shards")[1][0][0] == first_rows  # the current build, not empty

    capfd.readouterr()
    run_pipeline(changed, stages=["shard"])
    assert "shard: WARNING: " in capfd.readouterr().err  # on the terminal, not only in the run's logs
    build = (copy / "shard" / "CURRENT").read_text().strip()
    assert build != first and build == shard_build_dir(changed, lake).name
    manifest = json.loads((copy / "shard" / build / "manifest.json").read_text())
    warning = manifest["inputs"]["warning"]
    assert warning and "not of the current curate generation" in warning and "run the distill stage" in warning
    assert "**Warning:**" in (copy / "shard" / build / "README.md").read_text()
    note = query(lake, "select note from runs where stage = 'shard' order by finished_at desc limit 1")[1][0][0]
    assert note.startswith("warning: ")
    assert query(lake, "select count(*) from shards")[1][0][0] == manifest["totals"]["rows"]
    status = accounting.check(lake)
    assert status.ok and not [p for p in status.pending if p.startswith("shard")], status.render()
    # with distill run for the new generation, the next build has no warning, and is new
    run_pipeline(changed, stages=["distill", "shard"])
    third = (copy / "shard" / "CURRENT").read_text().strip()
    assert third not in (first, build)
    assert json.loads((copy / "shard" / third / "manifest.json").read_text())["inputs"]["warning"] is None
    # The config switched back finds its build made but not current: that is work for a run
    # (not "up to date"), which makes it current again, and the views follow.
    from distillery.plans import up_to_date

    switched_back = tmp_path / "back.yaml"
    switched_back.write_text(yaml_text.replace(f"lake: {cfg.lake_root}", f"lake: {copy}"))
    back = load_config(switched_back)
    assert up_to_date(back, ["shard"]) is None
    run_pipeline(back, stages=["shard"])
    assert (copy / "shard" / "CURRENT").read_text().strip() == first
    assert query(lake, "select count(*) from shards")[1][0][0] == first_rows
