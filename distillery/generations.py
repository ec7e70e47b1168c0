"""Which folders of the lake are current for a config.

A stage's generation folder is named from a hash of its own config section and of the
generations it reads, so changing a stage's config (or its inputs' config) starts a new
generation below it, and the catalog's views follow the current ones. Old generations stay
on disk, untouched, until removed by hand; switching the config back finds them again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path

from distillery import atomic
from distillery.config import PipelineConfig
from distillery.lake import Lake, stable_hash
from distillery.shard_current import current_build

# Bumped when a stage's output for the same input and config changes.
# gather 2: media stored as metadata-free re-encodings (sources/media_strip.py).
# curate 2: secrets found with detect-secrets (filters/secrets.py) instead of hand-written patterns.
# shard 2: rows carry uri and license; a build has a dataset card (shards/card.py); the build's
#   name includes its input generations (shard_build_dir).
# curate 3: a generation is no longer named from its sources (adding one extends it: see
#   curate_gen) and partitions are named from their gather generation too; parts are
#   deduplicated in config source order, then item order, instead of by file name. Kept keys
#   stored as dedup_keys (band columns) + dedup_sketches, read out of core
#   (filters/dedup_lake.py); MinHash candidates meet their buckets' first rows (issue 15).
STAGE_VERSION = {"gather": 2, "curate": 3, "distill": 1, "shard": 2, "train": 1}
UPSTREAM = "upstream.json"  # a curate generation's record of the gather generations it has curated


def _section(model) -> dict:
    return model.model_dump(mode="json")


def gather_gens(cfg: PipelineConfig, lake: Lake) -> dict[str, Path]:
    """Source name -> its generation folder."""
    out = {}
    for src in cfg.sources:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", src.name)[:48]
        parts = ["gather", STAGE_VERSION["gather"], _section(src), str(cfg.base_dir)]
        if cfg.gather.redact:  # redacted documents are another generation; unredacted lakes keep their names
            parts.append({"redact": _section(cfg.curate.pii)})
        key = stable_hash(*parts)
        out[src.name] = lake.stage_dir("gather") / f"{safe}-{key}"
    return out


def curate_gen(cfg: PipelineConfig, lake: Lake) -> Path:
    """The curate generation for `cfg`: curated rows, once kept, stay kept as sources are added.

    A generation is named from the curate config (and version) and records in UPSTREAM the
    gather generations whose documents it has curated. The current one is, among those of
    this config, the one with the most gather generations that are all current (ties: by name):
    adding a source keeps the generation and curates only the new source's partitions against
    the rows it already kept (flows/curate.py), and reordering sources changes nothing stored.
    Removing a source, or changing one's config (a new gather generation), leaves no such
    generation unless an earlier one fits: a fresh one is started and everything is curated
    again, so no current view holds a row of a source that is gone, nor a duplicate of one.
    The earlier generation stays on disk; switching the config back finds it again.
    """
    upstream = {p.name for p in gather_gens(cfg, lake).values()}
    base = stable_hash("curate", STAGE_VERSION["curate"], _section(cfg.curate))
    best: tuple[int, str] | None = None
    for gen in lake.stage_dir("curate").glob(f"g-{base}-*"):
        have = recorded_upstream(gen)
        if have <= upstream and (best is None or (-len(have), gen.name) < best):
            best = (-len(have), gen.name)
    if best is not None:
        return lake.stage_dir("curate") / best[1]
    for n in itertools.count():  # a generation of this name may exist with other sources: take the next
        gen = lake.stage_dir("curate") / f"g-{base}-{stable_hash(sorted(upstream), n, length=8)}"
        if not gen.exists():
            return gen


def recorded_upstream(gen: Path) -> set[str]:
    """The gather generations a curate generation has curated (UPSTREAM); empty for a new one."""
    try:
        return set(json.loads((gen / UPSTREAM).read_text()))
    except FileNotFoundError:
        return set()


def record_upstream(cfg: PipelineConfig, lake: Lake, gen: Path) -> None:
    """Record in `gen` that it curates the current gather generations (just before a curate
    batch commits: plans.commit_curate). A crashed run's re-plan finds the same generation
    without it: an extended one still holds a subset of the current sources, a fresh one
    (no record yet) holds the empty set."""
    upstream = sorted({p.name for p in gather_gens(cfg, lake).values()} | recorded_upstream(gen))
    if sorted(recorded_upstream(gen)) != upstream:
        atomic.write_bytes(gen / UPSTREAM, json.dumps(upstream, indent=1).encode())


def distill_gen(cfg: PipelineConfig, lake: Lake) -> Path:
    key = stable_hash("distill", STAGE_VERSION["distill"], _section(cfg.distill), curate_gen(cfg, lake).name)
    return lake.stage_dir("distill") / f"g-{key}"


def shard_root(lake: Lake) -> Path:
    return lake.stage_dir("shard")


def current_files(gen_dir: Path, table: str) -> list[Path]:
    """Committed partition files of `table` in one generation, in a stable order."""
    return sorted(gen_dir.glob(f"b-*/{table}-*.parquet"), key=lambda p: p.name)


def shard_build_dir(cfg: PipelineConfig, lake: Lake) -> Path:
    """The shard build `cfg` makes from its current curated rows and traces: named from them
    (their generations and partition files) and the shard config.

    The shard stage writes this build and then records it as the lake's current build
    (distillery/shard_current.py), which is what the catalog's `shards` view, train and every
    command read. The generation folders enter the name because partition file names do not
    change with curate's or distill's config: without them a curate change followed by
    distill and shard found the earlier build "already made" and kept its stale rows."""
    curate, distill = curate_gen(cfg, lake), distill_gen(cfg, lake)
    inputs = [p.name for p in current_files(curate, "curated")]
    inputs += [p.name for p in current_files(distill, "traces")]
    key = stable_hash("shard", STAGE_VERSION["shard"], _section(cfg.shard), curate.name, distill.name, sorted(inputs))
    return shard_root(lake) / f"build-{key}"


def train_build(cfg: PipelineConfig, lake: Lake) -> Path:
    """The build train reads: the lake's current one (lake/shard/CURRENT), else (no build
    recorded yet) the one `cfg` would make, which does not exist until shard runs."""
    return current_build(lake) or shard_build_dir(cfg, lake)


def train_gen(cfg: PipelineConfig, lake: Lake) -> Path:
    """The training run for the lake's current shard build and the train config.

    Named from the build's identity (its folder name and the sha256 of its manifest, which
    lists every shard's sha256) and the train section, so an unchanged build and config find
    their finished run again, and a new build or a changed config trains into a new folder.
    """
    build = train_build(cfg, lake)
    manifest = build / "manifest.json"
    content = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.exists() else None
    section = _section(cfg.train)
    if not section["whole_docs"]:  # added later, off by default: runs trained before keep their names
        del section["whole_docs"]
    key = stable_hash("train", STAGE_VERSION["train"], section, build.name, content)
    return lake.stage_dir("train") / f"{build.name}-{key}"
