"""Distill throughput against the reference teacher with a fixed latency, vs. the ideal.

The server runs in its own process (`python -m teacher.server`) with 100 ms added to every
chat request, so the ideal rate for a client holding `concurrency` requests in flight is
concurrency / latency. We time distill_partition end to end (planning, requests, cache
writes, table assembly; verification is off, it is not request throughput) on a fresh
cache, then again on the warm cache (zero requests) to show what the bookkeeping alone
costs. The bare openai client (same transport) sending the same questions at the same
concurrency is measured in the same run: the ceiling this machine allows, since client,
server and every syscall share its CPUs.

    python bench/teacher.py [--latency-s 0.1] [--rounds 100] [--concurrency 4 8 16 32]
Goal: >= 90 % of the ideal at the default concurrency (distill.concurrency = 8).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from teacher import DistillConfig, distill_partition  # noqa: E402
from teacher.problems import arithmetic_problems, problems_frame  # noqa: E402


def serve(latency_s: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "teacher.server", "--port", "0", "--latency-s", str(latency_s)],
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-s", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=100, help="requests per concurrency slot")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 8, 16, 32])
    args = parser.parse_args()
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
