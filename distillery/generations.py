"""Which folders of the lake are current for a config.

A stage's generation folder is named from a hash of its own config section and of the
generations it reads, so changing a stage's config (or its inputs' config) starts a new
generation below it, and the catalog's views follow the current ones. Old generations stay
on disk, untouched, until removed by hand; switching the config back finds them again.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from distillery.config import PipelineConfig
from distillery.lake import Lake, stable_hash

# Bumped when a stage's output for the same input and config changes.
# gather 2: media stored as metadata-free re-encodings (sources/media_strip.py).
# curate 2: secrets found with detect-secrets (filters/secrets.py) instead of hand-written patterns.
# curate 3: kept keys stored as dedup_keys (band columns) + dedup_sketches, read out of core
#   (filters/dedup_lake.py); MinHash candidates meet their buckets' first rows (issue 15).
# shard 2: rows carry uri and license; a build has a dataset card (shards/card.py).
STAGE_VERSION = {"gather": 2, "curate": 3, "distill": 1, "shard": 2, "train": 1}


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
    upstream = sorted(p.name for p in gather_gens(cfg, lake).values())
    key = stable_hash("curate", STAGE_VERSION["curate"], _section(cfg.curate), upstream)
    return lake.stage_dir("curate") / f"g-{key}"


def distill_gen(cfg: PipelineConfig, lake: Lake) -> Path:
    key = stable_hash("distill", STAGE_VERSION["distill"], _section(cfg.distill), curate_gen(cfg, lake).name)
    return lake.stage_dir("distill") / f"g-{key}"


def shard_root(lake: Lake) -> Path:
    return lake.stage_dir("shard")


def current_files(gen_dir: Path, table: str) -> list[Path]:
    """Committed partition files of `table` in one generation, in a stable order."""
    return sorted(gen_dir.glob(f"b-*/{table}-*.parquet"), key=lambda p: p.name)


def shard_build_dir(cfg: PipelineConfig, lake: Lake) -> Path:
    """The shard build for the current curated rows and traces: named from them and the config.

    The catalog and train follow it, so their counts stay those of the config's generations;
    each shard run records it as the lake's current build (distillery/shard_current.py), which
    is what the commands that take no config read. Between a curate change and the next
    shard run the two differ: the views then show no shards (accounting says "pending")
    while lake/shard/CURRENT still names the last build made."""
    inputs = [p.name for p in current_files(curate_gen(cfg, lake), "curated")]
    inputs += [p.name for p in current_files(distill_gen(cfg, lake), "traces")]
    key = stable_hash("shard", STAGE_VERSION["shard"], _section(cfg.shard), sorted(inputs))
    return shard_root(lake) / f"build-{key}"


def train_gen(cfg: PipelineConfig, lake: Lake) -> Path:
    """The training run for the current shard build and train config.

    Named from the build's identity (its folder name and the sha256 of its manifest, which
    lists every shard's sha256) and the train section, so an unchanged build and config find
    their finished run again, and a new build or a changed config trains into a new folder.
    """
    build = shard_build_dir(cfg, lake)
    manifest = build / "manifest.json"
    content = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.exists() else None
    key = stable_hash("train", STAGE_VERSION["train"], _section(cfg.train), build.name, content)
    return lake.stage_dir("train") / f"{build.name}-{key}"
