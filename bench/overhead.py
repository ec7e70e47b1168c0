"""What a no-op re-run costs next to the first run, on the path users run.

Both runs are `distillery run CONFIG --serve-teacher` subprocesses with no PREFECT_API_URL
(so the CLI starts its own Prefect server), each variant in its own fresh temporary folder
(run folder, Prefect database, lake, samples). The config is the demo's, with the lake and
the reference teacher's port moved into that folder. The first run does all the work; the
re-run of the same command finds everything done, so its time is the fixed cost of a run.

Measured twice: every stage, and `--stages gather,curate,distill,shard`.

    python bench/overhead.py [--only all|data]
Goal: no-op / first < 0.15.

Measured on the shared 2-core machine (load average 2.3), every stage: first 46.5 s, no-op
3.7 s, ratio 0.080. The no-op re-run finds every stage up to date from the lake alone
(distillery/plans.py) and starts no Prefect server; what is left is Python, the config, the
plans (file listings) and the accounting check. Before that (the run always started its
own Prefect server and a flow run per stage), `--only data`: first 27.5 s, no-op 11.1 s,
ratio 0.41; and before the run owned its server (Prefect's temporary server, migrations
on every start, heartbeats): 37.7 s and 21.3 s, ratio 0.57.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from distillery.app.sample_data import make_samples  # noqa: E402
from distillery.config import DEMO_CONFIG  # noqa: E402

VARIANTS = {"all": None, "data": "gather,curate,distill,shard"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(folder: Path) -> Path:
    make_samples(folder / "samples")
    text = DEMO_CONFIG.read_text().replace("http://127.0.0.1:8765/v1", f"http://127.0.0.1:{free_port()}/v1")
    cfg = folder / "pipeline.yaml"
    cfg.write_text(text.replace("lake: lake", f"lake: {folder / 'lake'}") + f"base_dir: {folder}\n")
    return cfg


def timed_run(cfg: Path, folder: Path, stages: str | None) -> float:
    env = dict(os.environ, DISTILLERY_RUN_DIR=str(folder / ".run"), PYTHONPATH=str(ROOT))
    for key in ("PREFECT_API_URL", "PREFECT_HOME"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "distillery.cli", "run", str(cfg), "--serve-teacher"]
    cmd += ["--stages", stages] if stages else []
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(VARIANTS), help="measure one variant")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for name, stages in VARIANTS.items():
        if args.only and name != args.only:
            continue
        with tempfile.TemporaryDirectory(prefix="distillery-overhead-") as tmp:
            folder = Path(tmp)
            cfg = prepare(folder)
            first = timed_run(cfg, folder, stages)
            noop = timed_run(cfg, folder, stages)
        label = f"--stages {stages}" if stages else "all stages"
        print(
            f"{label:40s} first {first:6.1f} s   no-op re-run {noop:5.1f} s   ratio {noop / first:.3f}  (goal < 0.15)"
        )


if __name__ == "__main__":
    main()
