"""Config errors fail at once and name the key and what is allowed."""

import pytest

from distillery.config import ConfigError, load_config, validate_config


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
