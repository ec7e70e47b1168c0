"""Prefect's settings for a Distillery process, set before Prefect is imported.

Prefect's home (its SQLite database, logs, local storage) lives inside the project's run
folder (`DISTILLERY_RUN_DIR`, default `./.run`), never in the user's home; analytics are off.
Anything the user set explicitly in the environment wins.
"""

from __future__ import annotations

import os
from pathlib import Path


def configure(run_dir: Path | str | None = None) -> Path:
    """Set Prefect's environment defaults; return the run folder."""
    run = Path(run_dir or os.environ.get("DISTILLERY_RUN_DIR", ".run")).resolve()
    home = run / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_UI_ENABLED": os.environ.get("PREFECT_UI_ENABLED", "true"),
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        # The first start of the embedded server migrates its database: 20-60 s on 2 cores.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return run


def server_startup_timeout_s() -> float:
    """How long a run waits for its Prefect server to answer (Prefect's own setting for its
    temporary server, which `configure` defaults to 180 s)."""
    return float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180"))
