"""Scale-out: the same pipeline on a local Ray instance writes the same lake, byte for byte.

The task runner is chosen by DISTILLERY_TASK_RUNNER at run time (what a deployment's job
variables set), not by editing the config. Ray starts once here (about half a minute).
"""

from __future__ import annotations

from conftest import lake_files, write_config

from distillery.config import load_config

# Distill is left out: its partitions run one by one in the flow itself (the teacher client
# has its own concurrency), so no task of it goes through the task runner.
STAGES = ["gather", "curate", "shard"]


def test_ray_runner_writes_the_same_lake_as_threads(prefect_api, samples, tmp_path, monkeypatch):
    import ray
    from prefect_ray import RayTaskRunner

    from flows.pipeline import run_pipeline
    from flows.runner import make_task_runner

    lakes = {}
    try:
        for kind in ("threads", "ray"):
            monkeypatch.setenv("DISTILLERY_TASK_RUNNER", kind)
            cfg = load_config(write_config(tmp_path / f"{kind}.yaml", samples, tmp_path / kind))
            if kind == "ray":
                assert isinstance(make_task_runner(cfg.run), RayTaskRunner)
                assert ray.is_initialized()  # a local instance, started once for every stage
            result = run_pipeline(cfg, STAGES)
            assert result["gather"]["rows_in"] > 100 and result["curate"]["kept"] > 0
            lakes[kind] = lake_files(cfg.lake_root)
    finally:
        ray.shutdown()
    assert any(k.startswith("shard/") for k in lakes["threads"])
    assert lakes["ray"] == lakes["threads"]
