"""The task runner, chosen at deploy time: threads (default), processes, or Ray.

`run.task_runner` picks it and `run.ray_address` points Ray at an existing cluster ("auto"
joins the one this machine belongs to; unset starts a local instance). A deployment's job
variables set them through DISTILLERY_TASK_RUNNER / DISTILLERY_RAY_ADDRESS without editing
the pipeline YAML: load_config applies those (distillery/config.py ENV_OVERRIDES).
"""

from __future__ import annotations

import os

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from distillery.config import RunConfig


def make_task_runner(run: RunConfig) -> TaskRunner:
    kind = run.task_runner
    workers = run.workers or os.cpu_count() or 2
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "processes":
        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "ray":
        try:
            import ray
            from prefect_ray import RayTaskRunner
        except ImportError:
            raise RuntimeError("task_runner 'ray' needs the ray extra: pip install 'distillery[ray]'") from None
        address = run.ray_address
        # Connect (or start the local instance) once per process: each stage is a subflow that
        # enters the runner, and a runner that started Ray itself shuts it down on exit, which
        # would cost every stage Ray's start-up. Ray shuts down with the process.
        if not ray.is_initialized():
            init_kwargs = {"num_cpus": workers, "include_dashboard": False} if not address else {}
            ray.init(address=address, **init_kwargs)
        return RayTaskRunner(address=address)
    raise ValueError(f"run.task_runner={kind!r}: allowed values are threads, processes, ray")
