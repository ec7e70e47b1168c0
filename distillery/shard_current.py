"""The lake's current shard build: `lake/shard/CURRENT` names it.

A lake holds one current build. The shard stage records it when it commits a build or finds
its build already made (shards/steps.py; the no-op check of `distillery run` leaves that
to the stage, distillery/plans.py), so after every shard run it is the build of that run's
config; nothing else moves it. Everything that reads shards
reads this build: the catalog's `shards` view (distillery/catalog.py), train
(distillery.generations.train_build), `distillery shards verify|show|path`, `explain` and
the README's `datasets` example, so none of them depends on the folder a command runs from
or on the config given to it. Between a config change and the next shard run the config
would make another build (distillery.generations.shard_build_dir); the accounting then says
shard is pending for that config. The file holds the build's folder name (one line) and is
replaced atomically (distillery/atomic.py): a reader sees the old name or the new one, never
a mix. Builds differ in their image codebooks, so the same token id means different patches
in two builds: never read shards of two builds together.
"""

from __future__ import annotations

from pathlib import Path

from distillery import atomic
from distillery.lake import Lake

POINTER = "CURRENT"


def pointer_path(lake: Lake) -> Path:
    return lake.stage_dir("shard") / POINTER


def record_current(lake: Lake, build: Path) -> bool:
    """Make `build` (a committed folder under lake/shard/) the lake's current build; False when it already was."""
    build = Path(build)
    path = pointer_path(lake)
    try:
        if path.read_text().strip() == build.name:
            return False
    except FileNotFoundError:
        pass
    atomic.write_bytes(path, (build.name + "\n").encode())
    return True


def current_build(lake: Lake) -> Path | None:
    """The current build's folder (absolute), or None when no build was recorded yet or it is gone."""
    try:
        name = pointer_path(lake).read_text().strip()
    except FileNotFoundError:
        return None
    build = (lake.stage_dir("shard") / name).resolve()
    return build if name and (build / "manifest.json").exists() else None
