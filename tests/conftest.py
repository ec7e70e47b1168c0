"""Test session set-up: one real Prefect API for the whole session, heartbeats off.

Prefect's home and database live in a temporary folder (never the user's ~/.prefect),
analytics are off, and flow-run heartbeats are disabled (each costs about a second).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="distillery-prefect-"))
os.environ["PREFECT_HOME"] = str(_HOME)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.setdefault("DISTILLERY_RUN_DIR", str(_HOME / "run"))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_api():
    """A real Prefect API server (temporary SQLite database), started once per session."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> Path:
    """The demo corpus, generated once per session."""
    from distillery.sample_data import make_samples
    root = tmp_path_factory.mktemp("samples-root")
    make_samples(root / "samples")
    return root


def write_config(path: Path, samples_root: Path, lake: Path, teacher_url: str = "http://127.0.0.1:9/v1",
                 extra: str = "") -> Path:
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
