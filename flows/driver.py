"""The one Prefect driver every partitioned stage runs through (the contract: distillery/stage.py).

For a `Stage` it holds the lake's writer lock, asks the stage's plan, runs each step as
Prefect tasks named after the step (per-part steps on at most `Stage.max_groups` groups, so
a flow run's task runs stay under run.max_partitions), advances the stage's Progress,
commits each unit's batch, and ends with `finish_stage`: the `runs` row, the catalog
refresh, the `<stage>-*` artifacts (the `<stage>-summary` among them) and the
quarantine-share verdict. The run is named and tagged by what it does, and its log lines
reach its Logs tab.
"""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext
from typing import Any, Callable

from prefect import task
from prefect.assets import materialize
from prefect.cache_policies import NO_CACHE

from distillery.accounting import total
from distillery.batch import task_groups
from distillery.config import PipelineConfig
from distillery.lake import Lake
from distillery.stage import Stage, StagePlan, Step, StepContext
from flows.limits import teacher_requests
from flows.monitor import monitored
from flows.reporting import Progress, QuarantineShareExceeded, finish_stage
from flows.run_identity import StageArgs, config_of


def call_step(
    fn: Callable[..., Any], ctx: StepContext, group: list[dict] | None, limit: tuple[str, int] | None = None
) -> Any:
    """Run one step function on a group of parts (or once, when `group` is None), holding
    `limit`'s slots of that Prefect global concurrency limit while it runs."""
    with teacher_requests(limit[1], name=limit[0]) if limit else nullcontext():
        return fn(ctx) if group is None else fn(ctx, group)


_step_task = task(call_step, cache_policy=NO_CACHE)


def _task_for(step: Step, ctx: StepContext):
    if step.asset is not None:
        key, upstream = step.asset(ctx)
        return materialize(key, asset_deps=upstream, name=step.name, cache_policy=NO_CACHE)(call_step)
    return _step_task.with_options(name=step.name)


def run_steps(stage: Stage, ctx: StepContext, progress: Progress, results: list, units: int = 1) -> None:
    """Run the stage's steps on one of `units` units with parts (they share the task-run cap);
    `results` ends as the last per-part step's results (one per part, in the parts' order),
    filled group by group so an early stop keeps them."""
    groups = task_groups(ctx.unit.parts, max(1, stage.max_groups(ctx.cfg) // units))
    for step in stage.steps:
        run = _task_for(step, ctx)
        limit = (step.limit[0], step.limit[1](ctx.cfg)) if step.limit else None
        if not step.per_part:
            if step.fan_out is not None:
                futures = [run.submit(step.fn, ctx, item, limit) for item in step.fan_out(ctx)]
                value = [f.result() for f in futures]
            else:
                value = run(step.fn, ctx, None, limit)
            progress.advance()
            if step.output:
                ctx.state[step.output] = value
            continue
        results.clear()
        if step.sequential:
            for g in groups:
                results += run(step.fn, ctx, g, limit)
                progress.advance(len(g))
        else:
            futures = [run.submit(step.fn, ctx, g, limit) for g in groups]
            for g, f in zip(groups, futures):
                results += f.result()
                progress.advance(len(g))
        if step.output:
            for p, r in zip(ctx.unit.parts, results):
                p[step.output] = r


def run_stage(stage: Stage, cfg: PipelineConfig | StageArgs) -> dict:
    """Run `stage` on the lake of `cfg` and return this run's counts (`finish_stage`'s summary).

    In a flow run, the run is named and tagged for the stage (flows/run_identity.py), its log
    lines reach the UI (flows/run_logs.py), and a failure leaves a `<stage>-summary` saying
    what to do next before it is raised."""
    cfg = config_of(cfg)
    with monitored(cfg, stage.name, summarized=(QuarantineShareExceeded,)):
        return _run(stage, cfg)


def _run(stage: Stage, cfg: PipelineConfig) -> dict:
    lake = Lake(cfg.lake_root)
    started = dt.datetime.now(dt.timezone.utc)
    with lake.writer_lock(cfg.run.lock_timeout_s):
        if stage.plan_task is not None:
            plan: StagePlan = task(stage.plan, name=stage.plan_task, cache_policy=NO_CACHE)(cfg, lake)
        else:
            plan = stage.plan(cfg, lake)
        if plan.done is not None:
            if stage.when_done is not None:
                stage.when_done(cfg, plan)
            print(plan.idle["says"])
            return finish_stage(
                cfg, lake, stage.name, started, total([], stage.name), plan.batch, plan.skipped, note=plan.done
            )
        if stage.before is not None and plan.has_work:
            stage.before(cfg, plan)
        progress = Progress(stage.name, stage.progress_total(plan))
        rows, outputs, states, committed, note = [], [], [], [], ""
        for unit in plan.units:
            if not unit.parts and not stage.run_empty:
                continue
            ctx, results = StepContext(cfg, str(lake.root), stage.name, unit), []
            try:
                run_steps(stage, ctx, progress, results, units=max(1, sum(1 for u in plan.units if u.parts)))
                rows += results
            except stage.stop_on as exc:
                note = stage.stop_note(exc)
                print(note)
                # The partitions finished before the stop are committed; the rest wait for the next run.
                rows += [ctx.batch.ledger(part) for part in ctx.batch.parts()]
            outputs += results
            states.append(ctx.state)
            if stage.committed is not None:
                committed += stage.committed(ctx)
            elif (done := ctx.batch.commit()) is not None:
                committed.append(done)
        counts = total(rows, stage.name)
        report = stage.report(cfg, plan, counts, outputs, states, note)
        print(report.line)
        names = [c.name for c in committed]
        batch = ",".join(names) if stage.join_batches else (names[0] if names else None)
        return finish_stage(
            cfg,
            lake,
            stage.name,
            started,
            counts,
            batch,
            plan.skipped,
            note=report.note,
            extra_rows=report.extra_rows,
            committed=committed,
            extra_tables=report.extra_tables,
        )
