"""Scale-out across nodes: `distillery run` on a two-node Ray cluster writes the threads lake, byte for byte.

The cluster is real: `ray start --head` and a second `ray start --address` on this machine,
each node with its own temp folder (so its own logs) and one CPU, so the scheduler has to
use both.
The run is the user's: `distillery run` with no PREFECT_API_URL, the runner chosen by
DISTILLERY_TASK_RUNNER / DISTILLERY_RAY_ADDRESS, as a deployment's job variables set them.
Each node's worker logs name the tasks that ran there (Ray writes `:task_name:<name>` to a
worker's log when a task starts), which shows the partitions really ran on both nodes.

Whatever happens, every process of the cluster is killed and checked gone at the end, and
the threads run goes on while the cluster starts (the machine has two cores).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import descendants, describe, free_port, lake_files, survivors, user_env, write_config

from distillery import accounting
from distillery.lake import Lake

RAY = str(Path(sys.executable).with_name("ray"))
# Distill is left out: its partitions run one by one in the flow itself (the teacher client
# has its own concurrency), so no task of it goes through the task runner.
STAGES = "gather,curate,shard"
NODE_START_BOUND_S = 180  # `ray start` takes 10-30 s here; generous for a loaded 2-core machine
RUN_BOUND_S = 300
# Ray's object store is sized from RAM by default (GBs of /dev/shm per node); the lake's
# partitions are small and go through files, so each node gets the smallest store Ray allows.
OBJECT_STORE_BYTES = 100 * 1024 * 1024
# Ray's token authentication, as a cluster should run (docs/operate.md): every node and every
# driver gets the same token. Explicit, because with RAY_AUTH_MODE unset Ray decides per
# command from whether ~/.ray/auth_token exists, which any local ray.init() creates.
RAY_AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


@dataclass
class Node:
    proc: subprocess.Popen
    temp_dir: Path
    log: Path

    def worker_task_names(self) -> set[str]:
        """Names of the tasks that started in this node's workers."""
        names = set()
        for log in self.temp_dir.glob("session_*/logs/worker-*.out"):
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith(":task_name:"):
                    names.add(line.removeprefix(":task_name:"))
        return names


def start_node(args: list[str], temp_dir: Path, env: dict[str, str], log: Path) -> Node:
    """`ray start --block` in its own session (so its process group can be killed whole);
    returns once it says the node is up."""
    ports = [f"--{name}={free_port()}" for name in ("dashboard-agent-listen-port", "metrics-export-port")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [RAY, "start", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
            + [f"--temp-dir={temp_dir}", "--num-cpus=1", f"--object-store-memory={OBJECT_STORE_BYTES}"]
            + ports
            + args,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Node(proc, temp_dir, log)


def wait_started(node: Node) -> None:
    deadline = time.monotonic() + NODE_START_BOUND_S
    while "Ray runtime started" not in node.log.read_text(errors="replace"):
        assert node.proc.poll() is None, "ray start exited:\n" + node.log.read_text()[-3000:]
        assert time.monotonic() < deadline, "ray start did not finish:\n" + node.log.read_text()[-3000:]
        time.sleep(0.2)


def kill_nodes(nodes: list[Node]) -> None:
    """SIGKILL every process of the nodes (their `ray start` process groups, and the workers,
    which the raylet starts in process groups of their own) and check that none is left.
    Not `ray stop`: it stops every Ray on the machine, other users' included, and not
    SIGTERM: a node drains for up to 30 s before it stops."""
    pids = set()
    for node in nodes:
        pids |= {node.proc.pid} | descendants(node.proc.pid)
    for node in nodes:
        try:
            os.killpg(node.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for node in nodes:
        node.proc.wait(timeout=30)
    left = survivors(pids)
    assert not left, f"processes of the Ray cluster outlived it: {describe(left)}"


@contextmanager
def two_node_cluster(env: dict[str, str]) -> Iterator[tuple[str, list[Node]]]:
    """A head node and a second node joined to it; yields the head's address and the nodes.
    The temp folders are short on purpose: Ray's socket paths under them must fit in 107 bytes."""
    tmp = Path(tempfile.mkdtemp(prefix="dray-", dir="/tmp"))
    nodes: list[Node] = []
    try:
        port = free_port()
        head_args = ["--head", f"--port={port}", "--include-dashboard=false"]
        head_args += [f"--ray-client-server-port={free_port()}", f"--dashboard-port={free_port()}"]
        nodes.append(start_node(head_args, tmp / "head", env, tmp / "head.log"))
        wait_started(nodes[0])
        address = f"127.0.0.1:{port}"
        nodes.append(start_node([f"--address={address}"], tmp / "second", env, tmp / "second.log"))
        wait_started(nodes[1])
        yield address, nodes
    finally:
        try:
            kill_nodes(nodes)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def run_cli(cfg: Path, folder: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "distillery.cli", "run", str(cfg), "--stages", STAGES],
        cwd=folder,
        env=dict(user_env(folder), **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen) -> None:
    try:
        _, err = proc.communicate(timeout=RUN_BOUND_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-3000:]


def test_distillery_run_on_a_two_node_ray_cluster_writes_the_threads_lake(samples, tmp_path):
    folders = {kind: tmp_path / kind for kind in ("threads", "ray")}
    cfgs = {}
    for kind, folder in folders.items():
        folder.mkdir()
        cfgs[kind] = write_config(folder / "pipeline.yaml", samples, folder / "lake")

    threads = run_cli(cfgs["threads"], folders["threads"], DISTILLERY_TASK_RUNNER="threads")
    try:
        # user_env's PYTHONPATH: Ray's workers import flows/, sources/... from the checkout.
        with two_node_cluster(dict(user_env(tmp_path), **RAY_AUTH)) as (address, nodes):
            finish(threads)
            ray_env = dict(RAY_AUTH, DISTILLERY_TASK_RUNNER="ray", DISTILLERY_RAY_ADDRESS=address)
            ray_run = run_cli(cfgs["ray"], folders["ray"], **ray_env)
            finish(ray_run)
            head, second = (node.worker_task_names() for node in nodes)
    finally:
        if threads.poll() is None:
            os.killpg(threads.pid, signal.SIGKILL)
            threads.wait()

    assert "gather_partition" in head | second, (head, second)
    assert head and second, f"tasks ran on one node only: head {sorted(head)}, second {sorted(second)}"
    status = accounting.check(Lake(folders["ray"] / "lake"))
    assert status.ok, status.render()
    lakes = {kind: lake_files(folder / "lake") for kind, folder in folders.items()}
    assert any(k.startswith("shard/") for k in lakes["threads"])
    assert lakes["ray"] == lakes["threads"]
