"""Whether the traces a shard build reads are of the current curate generation.

Changing a config so that curate starts a new generation also starts a new distill
generation (its folder is named from curate's); until the distill stage runs again, that
generation has no traces for the new curated rows, and a shard build made in between holds
curated rows without their traces. The shard stage says so (a warning line, the manifest's
`inputs`, the runs note) instead of building silently.
"""

from __future__ import annotations

from distillery.config import PipelineConfig
from distillery.generations import curate_gen, current_files, distill_gen
from distillery.lake import Lake
from distillery.plans import distill_plan


def trace_coverage(cfg: PipelineConfig, lake: Lake) -> dict:
    """{curate_generation, distill_generation, curated_partitions, distilled_partitions, warning}:
    warning is None when the traces cover every curated partition of the current generation
    (or the config does not distill), else one sentence saying what is missing and what to run."""
    curate, distill = curate_gen(cfg, lake), distill_gen(cfg, lake)
    _, missing, done = distill_plan(cfg, lake)
    n_curated = len(current_files(curate, "curated"))
    warning = None
    if missing and "distill" in cfg.stages:
        older = sorted(
            p.name for p in lake.stage_dir("distill").glob("g-*") if p != distill and current_files(p, "traces")
        )
        since = f"; traces exist only for other curate generations ({', '.join(older)})" if older else ""
        warning = (
            f"the traces are not of the current curate generation {curate.name}: {len(missing)} of {n_curated} "
            f"curated partitions have no traces (distill was not re-run after curate changed{since}); "
            f"this build holds those rows without traces: run the distill stage, then shard"
        )
    return {
        "curate_generation": curate.name,
        "distill_generation": distill.name,
        "curated_partitions": n_curated,
        "distilled_partitions": done,
        "warning": warning,
    }
