"""What a flow run is called in the Prefect UI, its tags, and the parameters it shows.

Prefect names a run at random (`bizarre-eel`) and records its parameters as JSON, so a
stage subflow that took the config showed the whole config dict as its only parameter.
Here a run is named by what it does and tagged so the UI's filters find it:

- a stage run: `<stage> <generation>` (`curate g-1a2b3c4d`, `shard build-9f8e...`), or
  `<stage> <pipeline>` where the stage has no single generation (gather: one per source);
- the pipeline run and a deployment's stage run: `<flow> <pipeline>` (`pipeline demo`,
  `curate-stage demo`);
- tags `pipeline:<name>`, `lake:<path>` and, on a stage run, `stage:<stage>`.

A stage subflow is called with `StageArgs(cfg, stage)`: the flow gets the whole config,
while Prefect, which reads a Mapping's items when it encodes parameters (fastapi's
jsonable_encoder), records and shows only the few fields that identify the run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prefect.context import FlowRunContext

from distillery.config import PipelineConfig
from distillery.generations import curate_gen, distill_gen, shard_build_dir, train_gen
from distillery.lake import Lake, stable_hash


def generation(cfg: PipelineConfig, stage: str) -> str | None:
    """The generation folder a run of `stage` writes for `cfg` (None for gather: one per source)."""
    lake = Lake(cfg.lake_root)
    folder = {"curate": curate_gen, "distill": distill_gen, "shard": shard_build_dir, "train": train_gen}.get(stage)
    return folder(cfg, lake).name if folder is not None else None


def run_tags(cfg: PipelineConfig, stage: str | None = None) -> list[str]:
    """The tags of a run of `cfg` (of one stage when `stage` is given)."""
    tags = [f"pipeline:{cfg.name}", f"lake:{cfg.lake_root}"]
    return tags + ([f"stage:{stage}"] if stage else [])


class StageArgs(Mapping[str, str]):
    """A stage subflow's parameter: `cfg` for the flow; as a Mapping, what the UI shows."""

    def __init__(self, cfg: PipelineConfig, stage: str) -> None:
        self.cfg, self.stage = cfg, stage
        gen = generation(cfg, stage)
        self._shown = {
            "pipeline": cfg.name,
            "stage": stage,
            "lake": str(cfg.lake_root),
            **({"generation": gen} if gen else {}),
            # the same digest for the same config: two runs' parameters differ where their configs do
            "config_digest": stable_hash(cfg.model_dump(mode="json")),
        }

    def __getitem__(self, key: str) -> str:
        return self._shown[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._shown)

    def __len__(self) -> int:
        return len(self._shown)

    def __repr__(self) -> str:
        return f"StageArgs({self._shown})"


def config_of(cfg: PipelineConfig | StageArgs) -> PipelineConfig:
    """The config a stage flow was called with, whether plain or as StageArgs."""
    return cfg.cfg if isinstance(cfg, StageArgs) else cfg


def identify_run(cfg: PipelineConfig, stage: str | None = None) -> str | None:
    """Name and tag the current flow run (see the module docstring); return its new name.

    Does nothing outside a flow run. `stage` marks a stage run (named by its generation);
    without it the run is named `<flow> <pipeline>`. When the API refuses, the run keeps
    Prefect's name (a warning says so) and goes on."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return None
    from prefect import get_run_logger
    from prefect.client.orchestration import get_client

    if stage is not None:
        name = f"{stage} {generation(cfg, stage) or cfg.name}"
    else:
        name = f"{ctx.flow.name if ctx.flow else 'run'} {cfg.name}"
    tags = sorted(set(ctx.flow_run.tags) | set(run_tags(cfg, stage)))
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(ctx.flow_run.id, name=name, tags=tags)
    except Exception as exc:  # a name is no reason to fail the run: keep Prefect's, say why
        get_run_logger().warning("could not rename this run to %r: %s", name, exc)
        return None
    ctx.flow_run.name, ctx.flow_run.tags = name, tags  # this process's log lines say the new name
    return name
