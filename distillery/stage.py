"""The stage contract: what a stage says about itself, and nothing about how it is run.

A stage is a name, a plan and a sequence of steps:

- `plan(cfg, lake) -> StagePlan` reads the lake alone (distillery/plans.py) and says what a
  run still has to do: one or more `Unit`s (a batch each: its generation folder, plan key
  and parts), how many parts were done before, or that the stage is already done.
- each `Step` is a plain function. A per-part step runs on groups of parts and returns one
  result per part (the last per-part step's results are the partitions' ledger rows); a
  once step runs once per unit on what the earlier steps left in `ctx.state`.

The generic driver (flows/driver.py) does the rest for every stage alike: the writer lock,
the task groups under `run.max_partitions`, progress, committing each unit's batch, the
`runs` row, the catalog refresh and the artifacts. Nothing here imports Prefect, so the
CLI's no-op check (`plans.up_to_date`) can ask every stage's plan without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from distillery.batch import Batch
from distillery.config import PipelineConfig
from distillery.lake import Lake


@dataclass
class Unit:
    """One batch a stage run writes: its parts ({"part": name, ...}) into `<gen>/.tmp-<key>/`
    (or `tmp`, when given), committed by one rename."""

    gen: str
    key: str
    parts: list[dict]
    tmp: str | None = None

    def batch(self, stage: str) -> Batch:
        return Batch(Path(self.gen), stage, self.key, tmp=Path(self.tmp) if self.tmp else None)


@dataclass
class StagePlan:
    """What a run of a stage has to do, as read from the lake.

    `done` is the note of a stage with nothing to run at all (a shard build that exists, a
    training run that finished): the driver records the run with it and `batch`.
    `idle` is what the stage records and says when it has nothing new (plans.up_to_date).
    """

    units: list[Unit]
    skipped: int = 0
    done: str | None = None
    batch: str | None = None
    idle: dict = field(default_factory=dict)
    must_run: bool = False  # work even without parts (a shard build not built yet, a training run)

    @property
    def has_work(self) -> bool:
        return self.done is None and (self.must_run or any(u.parts for u in self.units))


@dataclass
class StepContext:
    """What a step function gets besides its parts: picklable, so a step may run in another
    process (task_runner processes / ray)."""

    cfg: PipelineConfig
    lake_root: str
    stage: str
    unit: Unit
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def lake(self) -> Lake:
        return Lake(self.lake_root)

    @property
    def batch(self) -> Batch:
        return self.unit.batch(self.stage)


@dataclass(frozen=True)
class Step:
    """One step of a stage.

    `fn(ctx, group) -> list` (one result per part of `group`) when `per_part`, else
    `fn(ctx) -> value`. `output` names where the result goes: on each part dict (per part)
    or in `ctx.state` (once), for the later steps. `sequential` runs the groups one after
    another instead of side by side (distill: its client already runs requests concurrently).
    `limit` names a Prefect global concurrency limit and the config field giving the slots
    a group holds while it runs (distill: the teacher's requests across workers). `asset`
    makes a once step the materialization of that asset (the shard build in the lineage graph).
    `fan_out(ctx) -> items` makes a once step a set of independent tasks, `fn(ctx, item)`
    each, run side by side (the task runner may place them on any node); its output is the
    list of their results, in the items' order (curate: one task per range of LSH bands).
    """

    name: str
    fn: Callable[..., Any]
    per_part: bool = True
    output: str | None = None
    sequential: bool = False
    limit: tuple[str, Callable[[PipelineConfig], int]] | None = None
    asset: Callable[[StepContext], tuple[str, list[str]]] | None = None  # (key, upstream keys) it materializes
    fan_out: Callable[[StepContext], list[Any]] | None = None


@dataclass(frozen=True)
class Report:
    """What a stage adds to the driver's report: its summary line, a note for the `runs` row,
    extra rows for `<stage>-counts` and extra `<stage>-<name>` tables."""

    line: str
    note: str = ""
    extra_rows: list[dict] | None = None
    extra_tables: dict[str, list[dict]] | None = None


@dataclass(frozen=True)
class Stage:
    """A stage: its name, its plan and its steps, and the few things it says differently.

    `committed(ctx)` gives the folders a unit's run committed (default: the batch's rename).
    `report(cfg, plan, counts, results, states, note)` gives the summary line and extras.
    `before(cfg, plan)` runs once before any step when there is work (distill's teacher
    preflight). `stop_on` are errors that end the run early but keep what is finished
    (distill's budget): the note they give is recorded and said.
    """

    name: str
    plan: Callable[[PipelineConfig, Lake], StagePlan]
    steps: tuple[Step, ...]
    report: Callable[..., Report]
    before: Callable[[PipelineConfig, StagePlan], None] | None = None
    stop_on: tuple[type[BaseException], ...] = ()
    stop_note: Callable[[BaseException], str] = str
    committed: Callable[[StepContext], list[Path]] | None = None
    when_done: Callable[[PipelineConfig, StagePlan], None] | None = None  # tidy-up when the plan says done
    run_empty: bool = False  # run the steps of a unit without parts (a shard build of an empty lake)
    plan_task: str | None = None  # run the plan as a Prefect task of this name (gather: listing sources takes time)
    join_batches: bool = False  # record every committed batch's name, comma-separated (gather: one per source)

    def max_groups(self, cfg: PipelineConfig) -> int:
        """Task groups per per-part step, so that all steps' task runs stay under run.max_partitions."""
        per_part = sum(1 for s in self.steps if s.per_part) or 1
        once = sum(1 for s in self.steps if not s.per_part)
        return max(1, (cfg.run.max_partitions - once) // per_part)

    def progress_total(self, plan: StagePlan) -> int:
        """Progress units: each part once per per-part step, each once step once."""
        total = 0
        for unit in plan.units:
            if unit.parts or self.run_empty:
                total += sum(len(unit.parts) if s.per_part else 1 for s in self.steps)
        if not any(u.parts for u in plan.units) and not self.run_empty:
            total = sum(0 if s.per_part else 1 for s in self.steps)  # said as before: "1 partition to do"
        return total
