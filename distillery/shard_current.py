"""The lake's current shard build: `lake/shard/CURRENT` names it.

A lake holds one current build per pipeline. The shard stage records it when it commits a
build or finds its build already made (flows/shard.py, and the CLI's no-op path), so after
every shard run it is the build of that run's config, the one the catalog's `shards` view
and the trainer use (distillery.generations.shard_build_dir). `distillery shards
verify|show|path` and `explain` and the README's `datasets` example read it, so none of them
depends on the folder a command runs from or on a config given to it. The file holds the build's folder name (one
line) and is replaced atomically (distillery/atomic.py): a reader sees the old name or the
new one, never a mix. Builds differ in their image codebooks, so the same token id means
different patches in two builds: never read shards of two builds together.
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
