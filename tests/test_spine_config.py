"""Config errors fail at once, in one line that names the key and what is allowed."""

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import user_env
from pydantic import TypeAdapter

from distillery.config import ConfigError, load_config, validate_config
from sources import discover, read_items
from sources.config import AnySource
from sources.tabular import MissingTextField

REPO = Path(__file__).resolve().parents[1]


def test_unknown_top_level_key_names_it_and_lists_allowed(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\nsourcez: []\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    msg = str(err.value)
    assert "sourcez: unknown key" in msg
    assert "sources" in msg and "curate" in msg  # the allowed keys are listed


def test_unknown_nested_key_names_the_path(tmp_path):
    with pytest.raises(ConfigError) as err:
        validate_config({"train": {"n_layers": 3}})
    assert "train.n_layers: unknown key" in str(err.value)
    assert "n_layer" in str(err.value)


def test_bad_value_names_key_and_value():
    with pytest.raises(ConfigError) as err:
        validate_config({"run": {"partition_rows": 0}})
    assert "run.partition_rows" in str(err.value)


def test_bad_source_kind_is_refused():
    with pytest.raises(ConfigError) as err:
        validate_config({"sources": [{"name": "a", "kind": "ftp", "paths": ["x"]}]})
    assert "sources.0" in str(err.value)


def test_duplicate_source_names_are_refused():
    src = {"name": "a", "kind": "files", "paths": ["x"]}
    with pytest.raises(ConfigError) as err:
        validate_config({"sources": [src, dict(src)]})
    assert "unique" in str(err.value)


def test_demo_config_is_valid():
    cfg = load_config(None)
    assert [s.name for s in cfg.sources]
    assert cfg.distill.tasks


# -- every error is one line that says what to fix ------------------------------------------
def _one_line(message: str) -> str:
    assert "\n" not in message, message
    return message


def test_several_errors_are_reported_on_one_line():
    with pytest.raises(ConfigError) as err:
        validate_config({"run": {"partition_rows": 0}, "train": {"n_layers": 3}})
    msg = _one_line(str(err.value))
    assert "run.partition_rows" in msg and "train.n_layers: unknown key" in msg


def test_invalid_yaml_is_one_line_with_its_position(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\nsources: [a\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    msg = _one_line(str(err.value))
    assert "not valid YAML at line" in msg


# -- regexes are checked by the engine that runs them ---------------------------------------
def _selector(**selector) -> dict:
    return {"distill": {"tasks": [{"name": "t", "template": "solve", "selector": selector}]}}


def test_text_regex_that_does_not_parse_fails_at_load_naming_the_key():
    with pytest.raises(ConfigError) as err:
        validate_config(_selector(text_regex="("))
    msg = _one_line(str(err.value))
    assert "distill.tasks.0.selector.text_regex" in msg and "unclosed group" in msg


@pytest.mark.parametrize("regex, why", [("(?=x)", "look-around"), (r"(a)\1", "backreferences")])
def test_text_regex_python_accepts_but_polars_refuses_fails_at_load(regex, why):
    re.compile(regex)  # the case that used to pass validation and crash distill
    with pytest.raises(ConfigError) as err:
        validate_config(_selector(text_regex=regex))
    msg = _one_line(str(err.value))
    assert "distill.tasks.0.selector.text_regex" in msg and "Polars" in msg and why in msg


def test_text_regex_polars_runs_is_accepted_and_runs():
    cfg = validate_config(_selector(text_regex=r"(?i)answer:\s*\d+"))
    rx = cfg.distill.tasks[0].selector.text_regex
    assert pl.Series(["Answer: 42", "none"]).str.contains(rx).to_list() == [True, False]


def test_repo_exclude_pattern_pathspec_refuses_fails_at_load():
    with pytest.raises(ConfigError) as err:
        validate_config({"sources": [{"name": "r", "kind": "repo", "url_or_path": ".", "exclude": ["docs/", "!"]}]})
    msg = _one_line(str(err.value))
    assert "sources.0.exclude" in msg and "'!'" in msg


# -- an unknown key lists the keys of the source's own kind ---------------------------------
@pytest.mark.parametrize(
    "kind, fields, own_key",
    [
        ("jsonl", {"paths": ["x"]}, "text_field"),
        ("csv", {"paths": ["x"]}, "delimiter"),
        ("hf", {"path": "x"}, "split"),
        ("repo", {"url_or_path": "."}, "url_or_path"),
        ("video", {"paths": ["x"]}, "frame_rate"),
    ],
)
def test_unknown_source_key_lists_the_keys_of_that_kind(kind, fields, own_key):
    with pytest.raises(ConfigError) as err:
        validate_config({"sources": [{"name": "s", "kind": kind, "txt_feild": "t", **fields}]})
    msg = _one_line(str(err.value))
    assert "sources.0.txt_feild: unknown key" in msg  # the path as written, without the union's tag
    allowed = msg.split("allowed here:")[1]
    assert own_key in allowed
    assert "max_file_bytes" not in allowed or kind == "repo"  # not the `files` kind's keys


# -- source names in the config name configured sources -------------------------------------
SOURCES = [
    {"name": "web", "kind": "files", "paths": ["*.txt"]},
    {"name": "problems", "kind": "jsonl", "paths": ["*.jsonl"]},
]


def test_unknown_name_in_web_rules_exempt_sources_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        validate_config({"sources": SOURCES, "curate": {"web_rules_exempt_sources": ["problems", "problms"]}})
    msg = _one_line(str(err.value))
    assert "curate.web_rules_exempt_sources" in msg and "'problms'" in msg and "web, problems" in msg
    assert "'problems'," not in msg.split("configured")[0]  # the valid name is not blamed


def test_unknown_name_in_task_selector_sources_is_named_with_the_valid_ones():
    tasks = [
        {"name": "a", "template": "solve", "selector": {"sources": ["problems"]}},
        {"name": "b", "template": "solve", "selector": {"sources": ["wbe"]}},
    ]
    with pytest.raises(ConfigError) as err:
        validate_config({"sources": SOURCES, "distill": {"tasks": tasks}})
    msg = _one_line(str(err.value))
    assert "distill.tasks.1.selector.sources" in msg and "'wbe'" in msg and "web, problems" in msg


def test_configured_source_names_are_accepted():
    tasks = [{"name": "a", "template": "solve", "selector": {"sources": ["problems", "web"]}}]
    cfg = validate_config(
        {"sources": SOURCES, "curate": {"web_rules_exempt_sources": ["problems"]}, "distill": {"tasks": tasks}}
    )
    assert cfg.curate.web_rules_exempt_sources == ["problems"]


def test_unknown_modality_in_selector_lists_the_modalities():
    with pytest.raises(ConfigError) as err:
        validate_config(_selector(modalities=["text", "images"]))
    msg = _one_line(str(err.value))
    assert "'images'" in msg and "text, code, image, audio, video" in msg


# -- a lake that is a file fails at load, before Prefect starts -----------------------------
def test_lake_that_is_a_file_fails_at_load(tmp_path):
    (tmp_path / "lake").write_text("not a folder")
    for lake, words in (("lake", "is a file"), ("lake/inner", "lies under")):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"lake: {lake}\n")
        with pytest.raises(ConfigError) as err:
            load_config(cfg)
        msg = _one_line(str(err.value))
        assert f"the lake at {tmp_path / lake} is not writable" in msg and words in msg and "set `lake`" in msg


def test_cli_config_error_is_one_line_exit_2_and_starts_no_prefect(tmp_path):
    (tmp_path / "lake").write_text("not a folder")
    (tmp_path / "c.yaml").write_text("lake: lake\nsources: [{name: a, kind: files, paths: ['*.txt']}]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "distillery.cli", "run", "c.yaml"],
        env=user_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "is a file, not a folder" in proc.stderr
    assert not (tmp_path / "run" / "prefect" / "prefect.db").exists()  # failed before Prefect started


# -- a text field that no row has stops the run ---------------------------------------------
def _read(cfg: dict, base: Path):
    source = TypeAdapter(AnySource).validate_python(cfg)
    return read_items(source, list(discover(source, base)), base / "media")


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet"])
def test_text_field_missing_from_every_row_of_a_file_raises_naming_it(tmp_path, kind):
    rows = [{"content": f"row {i}", "uid": str(i)} for i in range(5)]
    path = tmp_path / f"d.{kind}"
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif kind == "csv":
        path.write_text("content,uid\n" + "".join(f"{r['content']},{r['uid']}\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(MissingTextField) as err:
        _read({"name": "s", "kind": kind, "paths": [f"*.{kind}"], "batch_rows": 2}, tmp_path)
    msg = _one_line(str(err.value))
    assert "'text'" in msg and "'content', 'uid'" in msg and "source 's'" in msg and str(path) in msg
    assert isinstance(err.value, ConfigError)  # main() prints it as one line with exit 2


def test_hf_dataset_without_the_text_column_raises_naming_it(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"body": ["one", "two"]}).save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(MissingTextField) as err:
        _read({"name": "h", "kind": "hf", "path": "saved"}, tmp_path)
    assert "'text'" in str(err.value) and "'body'" in str(err.value)


def test_text_field_missing_from_some_rows_is_still_quarantined_per_row(tmp_path):
    # The first batch (2 rows) has no row with the key; a later one has: not a config mistake.
    rows = [{"content": "a"}, {"content": "b"}, {"text": "kept"}, {"content": "c"}]
    (tmp_path / "some.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "nulls.jsonl").write_text(json.dumps({"text": None}) + "\n")  # present, but null
    result = _read({"name": "s", "kind": "jsonl", "paths": ["*.jsonl"], "batch_rows": 2}, tmp_path)
    assert result.tables["documents"]["text"].to_list() == ["kept"]
    assert result.tables["quarantine"]["reason"].to_list() == ["missing_field"] * 4
    (tmp_path / "some.csv").write_text("text,uid\n,1\nx,2\n")  # an empty cell is an empty document
    assert _read({"name": "c", "kind": "csv", "paths": ["*.csv"]}, tmp_path).tables["documents"].height == 2


def test_cli_run_stops_with_exit_2_naming_the_missing_text_field(tmp_path):
    (tmp_path / "data.jsonl").write_text("".join(json.dumps({"content": f"row {i}"}) + "\n" for i in range(20)))
    (tmp_path / "c.yaml").write_text(
        "lake: lake\nstages: [gather]\nsources: [{name: qa, kind: jsonl, paths: ['data.jsonl']}]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "distillery.cli", "run", "c.yaml"],
        env=user_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    last = proc.stderr.strip().splitlines()[-1]
    assert "text_field 'text'" in last and "'content'" in last and "source 'qa'" in last
    assert sum("text_field 'text'" in line for line in output.splitlines()) == 1  # said once, by the CLI
