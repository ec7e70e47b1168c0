"""The pipeline config: one pydantic model, validated at start-up.

Each stage owns its section's model next to its logic (`sources/config.py`,
`filters/config.py`, `teacher/config.py`, `shards/config.py`, `trainer/config.py`); this
module composes them. Every model forbids unknown keys, so a typo fails at once with a
message that names the key and lists the keys that are allowed.

Environment overrides are applied here and nowhere else (ENV_OVERRIDES), so every command
and every flow sees the same values. Precedence: an explicit `overrides` entry (a CLI flag
such as --lake) > the environment > the config file. The DISTILLERY_* variables that are
not config overrides: DISTILLERY_RUN_DIR (where the CLI keeps Prefect's state,
distillery/app/prefect_env.py), DISTILLERY_OWNED_PREFECT_API_URL (the CLI's marker of its own
Prefect server, distillery/owned_server.py), DISTILLERY_HOME (a worker's checkout when it is
not the installed one: the pull step in prefect.yaml, distillery/app/deploy_steps.py), and the
teacher's API key (named by `distill.api_key_env`, read where the request is made).
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from distillery.stage_names import STAGES, StageName
from filters.config import CurateConfig
from shards.config import ShardConfig
from sources.config import AnySource, GatherConfig
from teacher.config import DistillConfig
from trainer.config import TrainConfig

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")

# environment variable -> the config key it overrides (a path of keys). A deployment's job
# variables set these to point a run elsewhere without editing its YAML. An empty value is unset.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "DISTILLERY_LAKE": ("lake",),  # a relative path is relative to the current folder, as --lake
    "DISTILLERY_TASK_RUNNER": ("run", "task_runner"),  # threads | processes | ray
    "DISTILLERY_RAY_ADDRESS": ("run", "ray_address"),  # "auto", ray://head:10001, ...
}


class RunConfig(BaseModel):
    """How the work is cut and where it runs."""

    model_config = ConfigDict(extra="forbid")

    partition_rows: int = Field(5000, ge=1, description="target rows (or files) per partition")
    max_partitions: int = Field(
        400,
        ge=1,
        le=1000,
        description="cap on partitions (= task runs) per stage run; Prefect's local server drops events past a few thousand task runs",
    )
    task_runner: Literal["threads", "processes", "ray"] = "threads"
    workers: int | None = Field(None, ge=1, description="threads/processes; default: CPU count")
    ray_address: str | None = None
    lock_timeout_s: float = Field(3600.0, gt=0)
    # Curate's dedup against the kept lake (filters/dedup_lake.py): DuckDB's memory limit per
    # task (it spills past it) and how many tasks the LSH bands are cut into. 1024 MiB holds a
    # 100 k-row run against 10 M kept rows in bench/dedup_scale.py; 7 tasks = 2 of the 14 bands each.
    dedup_memory_mb: int = Field(1024, ge=64, description="DuckDB memory limit (MiB) of each dedup task")
    dedup_band_tasks: int = Field(7, ge=1, description="dedup tasks the LSH bands are split into")
    # 0.5: no published source; a stage that quarantines more than half of its rows is broken
    # (an unreachable teacher, a wrong reader, a corrupt mount), not meeting bad data, and
    # must not end Completed (issue 13, "Failures are loud": a run that quarantined 60 of
    # 60 prompts ended Completed). 1.0 turns the check off.
    max_quarantine_share: float = Field(
        0.5, ge=0, le=1, description="a stage run that quarantines more than this share of its rows ends Failed"
    )


class PipelineConfig(BaseModel):
    """Everything a pipeline run needs; relative paths resolve against `base_dir`."""

    model_config = ConfigDict(extra="forbid")

    name: str = "distillery"
    lake: Path = Path("lake")
    base_dir: Path = Path(".")
    stages: list[StageName] = list(STAGES)
    sources: list[AnySource] = Field(default_factory=list)
    gather: GatherConfig = Field(default_factory=GatherConfig)
    curate: CurateConfig = Field(default_factory=CurateConfig)
    distill: DistillConfig = Field(default_factory=lambda: DistillConfig(tasks=[]))
    shard: ShardConfig = Field(default_factory=ShardConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    # {variable: value} of the ENV_OVERRIDES that decided a value of this config (load_config);
    # not a key of the YAML. Recorded in each `runs` row.
    _env_overrides: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def env_overrides(self) -> dict[str, str]:
        """The environment overrides that decided values of this config: {variable: value}."""
        return dict(self._env_overrides)

    @field_validator("sources")
    @classmethod
    def _unique_source_names(cls, sources: list) -> list:
        names = [s.name for s in sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        return sources

    @model_validator(mode="after")
    def _source_names_exist(self) -> PipelineConfig:
        """Every list of source names names a configured source: a typo would otherwise
        silently match nothing (exempt no source, select no row)."""
        known = [s.name for s in self.sources]
        lists = [("curate.web_rules_exempt_sources", self.curate.web_rules_exempt_sources)]
        lists += [(f"distill.tasks.{i}.selector.sources", t.selector.sources) for i, t in enumerate(self.distill.tasks)]
        for key, names in lists:
            unknown = [n for n in names or [] if n not in known]
            if unknown:
                valid = ", ".join(known) if known else "none (the config has no sources)"
                raise ValueError(
                    f"{key}: {', '.join(map(repr, unknown))} is not a configured source name; "
                    f"configured sources: {valid}"
                )
        return self

    def resolve(self, path: Path | str) -> Path:
        path = Path(path)
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def lake_root(self) -> Path:
        return self.resolve(self.lake)


class ConfigError(ValueError):
    """The config is invalid; the message (one line) names each bad key and what is allowed."""


def _models_in(annotation: typing.Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (a union's members in order)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _tag(model: type[BaseModel]) -> typing.Any:
    """A union member's discriminator value: its field typed as a one-value Literal (`kind`)."""
    for field in model.model_fields.values():
        args = typing.get_args(field.annotation)
        if typing.get_origin(field.annotation) is Literal and len(args) == 1:
            return args[0]
    return None


def _locate(loc: tuple) -> tuple[str, type[BaseModel] | None]:
    """(the dotted key as the user wrote it, the model that holds the last part of `loc`).

    A discriminated union (a source's `kind`) puts the member's tag into `loc`: it picks
    that member, so an unknown key of a `jsonl` source lists the `jsonl` keys, and it is not
    shown since the user never wrote it. A string that is not a field is a dict key.
    """
    models: list[type[BaseModel]] = [PipelineConfig]
    shown: list[str] = []
    holder: type[BaseModel] | None = PipelineConfig
    for part in loc:
        if isinstance(part, str) and len(models) > 1:
            tagged = [m for m in models if _tag(m) == part]
            if tagged:
                models = tagged
                continue
        shown.append(str(part))
        holder = models[0] if models else None
        if isinstance(part, int) or holder is None or part not in holder.model_fields:
            continue
        models = _models_in(holder.model_fields[part].annotation)
    return ".".join(shown), holder


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def format_errors(exc: ValidationError, origin: str) -> str:
    """One line: `invalid config ORIGIN: KEY: PROBLEM; KEY: PROBLEM ...`."""
    problems = []
    for err in exc.errors():
        key, holder = _locate(tuple(err["loc"]))
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(holder.model_fields)) if holder else "see the README"
            problem = f"unknown key (allowed here: {allowed})"
        else:
            problem = _one_line(err["msg"].removeprefix("Value error, "))
            value = err.get("input")
            if not isinstance(value, dict):  # a whole section as "got" says nothing
                problem += f" (got {_one_line(repr(value)):.80})"
        problems.append(f"{key}: {problem}" if key else problem)
    return f"invalid config {origin}: " + "; ".join(problems)


def _environment(raw: dict) -> dict[str, str]:
    """Apply the ENV_OVERRIDES set in the environment to `raw` (in place); {variable: value} applied."""
    applied = {}
    for var, keys in ENV_OVERRIDES.items():
        value = os.environ.get(var, "")
        if not value:
            continue
        if var == "DISTILLERY_LAKE":
            value = str(Path(value).resolve())
        section = raw
        for key in keys[:-1]:
            section = section.setdefault(key, {})
            if not isinstance(section, dict):  # a malformed section: validation names it
                break
        else:
            section[keys[-1]] = value
            applied[var] = value
    return applied


def _value_at(cfg: PipelineConfig, var: str) -> str | None:
    if var == "DISTILLERY_LAKE":
        return str(cfg.lake_root)
    value: typing.Any = cfg
    for key in ENV_OVERRIDES[var]:
        value = getattr(value, key)
    return None if value is None else str(value)


def load_config(path: Path | str | None = None, overrides: dict | None = None) -> PipelineConfig:
    """Read and validate a pipeline YAML (the demo config when `path` is None).

    Values come from, highest first: `overrides` (top-level keys, e.g. the CLI's --lake),
    the environment (ENV_OVERRIDES), the file. `env_overrides` of the result lists the
    environment variables whose value the config ended up with."""
    demo = path is None
    path = Path(path) if path else DEMO_CONFIG
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = _one_line(getattr(exc, "problem", None) or exc)
        raise ConfigError(f"config {path} is not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping of keys, not {type(raw).__name__}")
    # The demo config's paths are relative to where the user runs it; others to their file.
    raw.setdefault("base_dir", str(Path.cwd() if demo else path.resolve().parent))
    from_env = _environment(raw)
    raw.update(overrides or {})
    origin = str(path) + (f" with {', '.join(from_env)} from the environment" if from_env else "")
    cfg = validate_config(raw, origin=origin)
    cfg._env_overrides = {var: value for var, value in from_env.items() if _value_at(cfg, var) == value}
    return cfg


def validate_config(raw: dict, origin: str = "(inline)") -> PipelineConfig:
    try:
        cfg = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, origin)) from None
    _check_lake_path(cfg.lake_root, origin)
    return cfg


def _check_lake_path(root: Path, origin: str) -> None:
    """A lake that is (or lies under) a file fails here, before any stage or Prefect starts."""
    for path in (root, *root.parents):
        if path.exists():
            if not path.is_dir():
                what = "it is a file" if path == root else f"it lies under {path}, which is a file"
                raise ConfigError(
                    f"invalid config {origin}: the lake at {root} is not writable: {what}, "
                    "not a folder; set `lake` (or --lake) to a folder"
                )
            return
