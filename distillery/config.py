"""The pipeline config: one pydantic model, validated at start-up.

Each stage owns its section's model next to its logic (`sources/config.py`,
`filters/config.py`, `teacher/config.py`, `shards/config.py`, `trainer/config.py`); this
module composes them. Every model forbids unknown keys, so a typo fails at once with a
message that names the key and lists the keys that are allowed.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from filters.config import CurateConfig
from shards.config import ShardConfig
from sources.config import AnySource, GatherConfig
from teacher.config import DistillConfig
from trainer.config import TrainConfig

STAGES = ("gather", "curate", "distill", "shard", "train")
DEMO_CONFIG = Path(__file__).with_name("demo.yaml")


class RunConfig(BaseModel):
    """How the work is cut and where it runs."""

    model_config = ConfigDict(extra="forbid")

    partition_rows: int = Field(5000, ge=1, description="target rows (or files) per partition")
    max_partitions: int = Field(400, ge=1, le=1000, description="cap on partitions (= task runs) per stage run; Prefect's local server drops events past a few thousand task runs")
    task_runner: Literal["threads", "processes", "ray"] = "threads"
    workers: int | None = Field(None, ge=1, description="threads/processes; default: CPU count")
    ray_address: str | None = None
    lock_timeout_s: float = Field(3600.0, gt=0)


class PipelineConfig(BaseModel):
    """Everything a pipeline run needs; relative paths resolve against `base_dir`."""

    model_config = ConfigDict(extra="forbid")

    name: str = "distillery"
    lake: Path = Path("lake")
    base_dir: Path = Path(".")
    stages: list[Literal["gather", "curate", "distill", "shard", "train"]] = list(STAGES)
    sources: list[AnySource] = Field(default_factory=list)
    gather: GatherConfig = Field(default_factory=GatherConfig)
    curate: CurateConfig = Field(default_factory=CurateConfig)
    distill: DistillConfig = Field(default_factory=lambda: DistillConfig(tasks=[]))
    shard: ShardConfig = Field(default_factory=ShardConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @field_validator("sources")
    @classmethod
    def _unique_source_names(cls, sources: list) -> list:
        names = [s.name for s in sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        return sources

    def resolve(self, path: Path | str) -> Path:
        path = Path(path)
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def lake_root(self) -> Path:
        return self.resolve(self.lake)


class ConfigError(ValueError):
    """The config is invalid; the message names each bad key and what is allowed."""


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that holds the field at `loc` (for listing allowed keys)."""
    current: typing.Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return current if fields is not None else None
        current = _unwrap_model(fields[part].annotation)
    return current


def _unwrap_model(annotation: typing.Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def format_errors(exc: ValidationError, origin: str) -> str:
    lines = [f"invalid config {origin}:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent = _model_at(PipelineConfig, loc[:-1])
            allowed = ", ".join(sorted(parent.model_fields)) if parent else "see the README"
            lines.append(f"  {key}: unknown key; allowed here: {allowed}")
        else:
            lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r:.80})")
    return "\n".join(lines)


def load_config(path: Path | str | None = None, overrides: dict | None = None) -> PipelineConfig:
    """Read and validate a pipeline YAML (the demo config when `path` is None)."""
    demo = path is None
    path = Path(path) if path else DEMO_CONFIG
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping of keys, not {type(raw).__name__}")
    # The demo config's paths are relative to where the user runs it; others to their file.
    raw.setdefault("base_dir", str(Path.cwd() if demo else path.resolve().parent))
    raw.update(overrides or {})
    return validate_config(raw, origin=str(path))


def validate_config(raw: dict, origin: str = "(inline)") -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, origin)) from None
