"""The demo config end to end: distillery/demo.yaml brings every modality from documents to
shards, records one current build that `shards path` prints from any folder, writes a
dataset card that `datasets` loads, and `explain`, `shards show` and `sql` work on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from distillery import accounting
from distillery.lake import Lake
from distillery.sql import query

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def full_demo(prefect_api, samples, teacher_server, tmp_path_factory):
    """distillery/demo.yaml itself (all five modalities) over the session's sample corpus,
    gather to shard, with the session's teacher."""
    import yaml

    from distillery.config import DEMO_CONFIG, validate_config
    from flows.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("full-demo")
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw.update(lake=str(root / "lake"), base_dir=str(samples))
    raw["distill"]["base_url"] = teacher_server.url
    cfg = validate_config(raw)
    run_pipeline(cfg, stages=["gather", "curate", "distill", "shard"])
    return cfg


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DISTILLERY_LAKE"}
    return subprocess.run(
        [sys.executable, "-m", "distillery.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO)},
        timeout=300,
    )


def test_demo_config_brings_all_five_modalities_from_documents_to_shards(full_demo):
    lake = Lake(full_demo.lake_root)
    five = {"text", "code", "image", "audio", "video"}
    assert {r[0] for r in query(lake, "select distinct modality from documents")[1]} == five
    assert {r[0] for r in query(lake, "select distinct modality from shards")[1]} == five
    cut = query(lake, "select reason from quarantine where uri like '%cut.mp4'")[1]
    assert cut, "the cut video must be quarantined with a reason"
    code = query(lake, "select distinct license from documents where modality = 'code'")[1]
    assert code == [("MIT",)]  # the demo repository's LICENSE file
    status = accounting.check(lake)
    assert status.ok, status.render()


def test_shard_rows_carry_uri_and_license_and_verify_still_passes(full_demo, tmp_path):
    lake = Lake(full_demo.lake_root)
    missing = query(lake, "select count(*) from shards where uri is null")[1][0][0]
    assert missing == 0
    licensed = dict(
        query(lake, "select modality, count(*) filter (where license is not null) from shards group by all")[1]
    )
    assert all(n > 0 for n in licensed.values()), licensed
    out = _cli("shards", "verify", "--lake", str(full_demo.lake_root), cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stdout + out.stderr


def test_current_build_is_recorded_and_shards_path_prints_it_from_any_folder(full_demo, tmp_path):
    from distillery.generations import shard_build_dir

    lake = Lake(full_demo.lake_root)
    pointer = full_demo.lake_root / "shard" / "CURRENT"
    build = shard_build_dir(full_demo, lake)
    assert pointer.read_text().strip() == build.name
    out = _cli("shards", "path", "--lake", str(full_demo.lake_root), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == build.resolve() and Path(out.stdout.strip()).is_absolute()
    rows = query(lake, "select count(*) from shards")[1][0][0]
    assert rows == __import__("json").loads((build / "manifest.json").read_text())["totals"]["rows"]
    empty = tmp_path / "nolake"
    none = _cli("shards", "path", "--lake", str(empty), cwd=tmp_path)
    assert (
        none.returncode == 1 and len(none.stderr.strip().splitlines()) == 1 and "no current shard build" in none.stderr
    )


def test_dataset_card_describes_the_build_and_datasets_loads_it(full_demo):
    import datasets

    build = Path(
        _cli("shards", "path", "--lake", str(full_demo.lake_root), cwd=full_demo.lake_root.parent).stdout.strip()
    )
    card = (build / "README.md").read_text()
    assert card.startswith("---\n") and "configs:" in card and "- mit" in card
    for section in (
        "## Sources",
        "## Licenses",
        "## Filters",
        "## Teacher and verification",
        "## Tokens per modality",
        "## Vocabulary",
        "## Span kinds",
    ):
        assert section in card, section
    assert "distillery-reference" in card  # the teacher model
    manifest = __import__("json").loads((build / "manifest.json").read_text())
    ds = datasets.load_dataset(str(build), cache_dir=str(full_demo.lake_root.parent / "hf-cache"))
    assert set(ds) == {s for s, v in manifest["totals"]["splits"].items() if v["shards"]}
    assert {s: ds[s].num_rows for s in ds} == {s: manifest["totals"]["splits"][s]["rows"] for s in ds}
    assert {"uri", "license", "tokens", "spans"} <= set(ds["train"].column_names)


def test_explain_prints_the_lineage_of_a_trace_row_and_of_a_code_row(full_demo, tmp_path):
    lake = Lake(full_demo.lake_root)
    trace_id = query(lake, "select id from shards where len(parents) = 2 limit 1")[1][0][0]
    out = _cli("explain", trace_id, "--lake", str(full_demo.lake_root), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    kinds = [line.split()[0] for line in out.stdout.splitlines()]
    assert kinds == ["shard", "trace", "curated", "document", "source"], out.stdout
    raw = Path(out.stdout.split("raw response ")[1].split()[0])
    assert raw.is_file() and "choices" in raw.read_text()  # the teacher's HTTP response as received
    assert "model distillery-reference" in out.stdout and "verdict " in out.stdout
    code_id = query(lake, "select id from shards where modality = 'code' limit 1")[1][0][0]
    code = _cli("explain", code_id, "--lake", str(full_demo.lake_root), cwd=tmp_path)
    assert code.returncode == 0, code.stderr
    assert "license MIT" in code.stdout and "at git commit " in code.stdout
    unknown = _cli("explain", "no-such-id", "--lake", str(full_demo.lake_root), cwd=tmp_path)
    assert unknown.returncode == 1 and len(unknown.stderr.strip().splitlines()) == 1


def test_shards_show_says_where_it_wrote_and_an_unknown_id_exits_1(full_demo, tmp_path):
    lake = Lake(full_demo.lake_root)
    image_id = query(lake, "select id from shards where modality = 'image' limit 1")[1][0][0]
    out = _cli("shards", "show", image_id, "--lake", str(full_demo.lake_root), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"written to {tmp_path / 'shard-show'}" in out.stdout and list((tmp_path / "shard-show").glob("*.png"))
    missing = _cli("shards", "show", "no-such-id", "--lake", str(full_demo.lake_root), cwd=tmp_path)
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1 and "is not in" in missing.stderr


def test_sql_csv_ends_lines_with_a_bare_newline(full_demo, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "distillery.cli",
            "sql",
            "select modality, count(*) n from shards group by all",
            "--lake",
            str(full_demo.lake_root),
            "--format",
            "csv",
        ],
        capture_output=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert b"\r" not in out.stdout and out.stdout.count(b"\n") >= 5
