"""The pull step of every deployment in prefect.yaml: start a deployed run in the checkout.

A process worker starts each flow run in a fresh temporary folder, so a run must first move
to the Distillery checkout, where its entrypoint (`flows/pipeline.py`, `flows/entrypoints.py`)
and the demo config's `./lake` and `./samples` are. `enter_checkout` picks that folder on the
worker, at run time:

1. `$DISTILLERY_HOME` when the worker's environment sets it (a worker machine whose checkout
   is somewhere else than the installed package says, or a lake meant elsewhere);
2. else the checkout this package is installed from (`pip install -e .`, as `make setup`
   does), so `prefect worker start --pool distillery` needs no variable at all.

A folder without `flows/pipeline.py` is refused with one line saying what to set, instead of
the flow run failing later on a missing entrypoint file.
"""

from __future__ import annotations

import os
from pathlib import Path

# The file that marks a Distillery checkout: every deployment's entrypoint lives beside it.
MARKER = Path("flows") / "pipeline.py"


def installed_checkout() -> Path:
    """The folder this package was installed from (its parent's parent): the checkout of an
    editable install; site-packages for a plain install, which holds no `flows/pipeline.py`."""
    return Path(__file__).resolve().parents[2]


def enter_checkout(home: str = "") -> dict[str, str]:
    """Change the working directory to `home` (prefect.yaml passes `{{ $DISTILLERY_HOME }}`,
    empty when unset), else to the installed checkout; return {"directory": the folder}, as
    Prefect's own `set_working_directory` step does. Raises FileNotFoundError naming the folder
    and DISTILLERY_HOME when the folder is not a checkout."""
    folder = Path(home).expanduser().resolve() if home.strip() else installed_checkout()
    if not (folder / MARKER).is_file():
        where = "DISTILLERY_HOME" if home.strip() else "the installed distillery package's folder"
        raise FileNotFoundError(
            f"{folder} ({where}) has no {MARKER}: set DISTILLERY_HOME in the worker's environment "
            "to the Distillery checkout (the folder holding prefect.yaml)"
        )
    os.chdir(folder)
    return {"directory": str(folder)}
