"""Peak memory of gather + curate on a JSONL file holding one huge line, against the same
file without that line (the reference, measured in the same run); the speed of the
capped line reader (jsonl.line_batches, a Python loop over lines) against the plain
file iteration it replaced (`itertools.islice(fh, batch_rows)`), on the same file; and the
peak memory of gathering a large JSONL file (--big-mb) read in spans of `partition_rows`
records (sources/spans.py) against the same file read whole as one partition (how every
file was read before spans: partition_rows above the file's rows), and against a file a
quarter of its size read in spans (memory should not follow the file's size).

Each case runs `distillery run CONFIG --stages gather,curate` as a user does (no
PREFECT_API_URL: Prefect's temporary server, which is a separate process and not counted)
in a child process that reports its own peak RSS (resource.getrusage, RUSAGE_SELF).

    python bench/row_memory.py [--mb 50] [--lines 500000] [--big-mb 200] [--partition-rows 5000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_CHILD = """
import resource, sys
from distillery.cli import main
rc = main(["run", sys.argv[1], "--stages", sys.argv[2]])
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "RC", rc)
"""
PROSE = "The river delta changes shape every season as sediment settles along the channel banks. "


def write_corpus(folder: Path, huge_mb: int) -> None:
    folder.mkdir(parents=True)
    with open(folder / "rows.jsonl", "w") as fh:
        for i in range(200):
            fh.write(json.dumps({"text": f"row {i}: " + PROSE * 8}) + "\n")
        if huge_mb:
            words = (PROSE * (huge_mb * 2**20 // len(PROSE) + 1))[: huge_mb * 2**20]
            fh.write(json.dumps({"text": words}) + "\n")


def peak_kb(
    root: Path, huge_mb: int = 0, stages: str = "gather,curate", partition_rows: int = 5000, corpus: Path | None = None
) -> int:
    """Peak RSS (KB) of `distillery run --stages STAGES` on `corpus` (default: root/corpus,
    written by write_corpus with a huge line of `huge_mb` MB), into the lake root/lake."""
    if corpus is None:
        corpus = root / "corpus"
        write_corpus(corpus, huge_mb)
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "c.yaml"
    cfg.write_text(
        f"lake: {root / 'lake'}\nbase_dir: {corpus}\nstages: [gather, curate]\n"
        "sources:\n  - {name: rows, kind: jsonl, paths: ['*.jsonl']}\n"
        f"run: {{partition_rows: {partition_rows}}}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(DISTILLERY_RUN_DIR=str(root / "run"), PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(cfg), stages], env=env, cwd=root, capture_output=True, text=True
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("PEAK_RSS_KB")), None)
    if out.returncode or line is None:
        raise SystemExit(f"run failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return int(line.split()[1])


def write_big(folder: Path, mb: int) -> int:
    """A JSONL file of ~`mb` MB of distinct ~1 KB prose rows; returns its rows."""
    folder.mkdir(parents=True)
    n, size = 0, 0
    with open(folder / "big.jsonl", "w") as fh:
        while size < mb * 2**20:
            line = json.dumps({"text": f"document {n}: " + PROSE * (8 + n % 7)}) + "\n"
            fh.write(line)
            size += len(line)
            n += 1
    return n


def spans_memory(tmp: Path, mb: int, partition_rows: int) -> None:
    """Peak RSS of gathering `mb` MB of JSONL in spans vs whole, and a quarter of it in spans."""
    write_big(tmp / "quarter", mb // 4)
    rows = write_big(tmp / "full", mb)
    small = peak_kb(tmp / "q", stages="gather", partition_rows=partition_rows, corpus=tmp / "quarter")
    spans = peak_kb(tmp / "spans", stages="gather", partition_rows=partition_rows, corpus=tmp / "full")
    whole = peak_kb(tmp / "whole", stages="gather", partition_rows=rows + 1, corpus=tmp / "full")
    print(
        f"peak RSS, gather of a {mb} MB JSONL ({rows:,} rows): in spans of {partition_rows} rows "
        f"{spans / 1024:.0f} MB ({spans / 1024 / mb:.2f}x the file); read whole as one partition "
        f"{whole / 1024:.0f} MB ({whole / 1024 / mb:.2f}x the file, {whole / spans:.1f}x the spans' peak); "
        f"a {mb // 4} MB file in spans {small / 1024:.0f} MB ({spans / small:.2f}x for 4x the file)"
    )


def line_speed(path: Path, batch_rows: int = 20_000) -> tuple[float, float]:
    """Best of three seconds to batch every line: (plain islice, capped line_batches)."""
    sys.path.insert(0, str(REPO))
    from sources.jsonl import line_batches

    def plain() -> int:
        with open(path, "rb") as fh:
            return sum(len(b) for b in iter(lambda: list(itertools.islice(fh, batch_rows)), []))

    def capped() -> int:
        with open(path, "rb") as fh:
            return sum(len(b) for b in line_batches(fh, batch_rows, 10 * 2**20))

    times = {}
    for name, fn in (("plain", plain), ("capped", capped)):
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        times[name] = best
    return times["plain"], times["capped"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=50, help="size of the one huge line, MB")
    ap.add_argument("--lines", type=int, default=500_000, help="lines of the speed comparison's file")
    ap.add_argument("--big-mb", type=int, default=200, help="size of the JSONL gathered in spans, MB (0: skip)")
    ap.add_argument("--partition-rows", type=int, default=5000, help="run.partition_rows of that gather")
    args = ap.parse_args()
    if args.big_mb:
        with tempfile.TemporaryDirectory() as tmp:
            spans_memory(Path(tmp), args.big_mb, args.partition_rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lines.jsonl"
        with open(path, "w") as fh:
            for i in range(args.lines):
                fh.write(json.dumps({"text": f"row {i}: " + PROSE[: 20 + i % 200]}) + "\n")
        plain, capped = line_speed(path)
        print(
            f"line batching, {args.lines} lines: plain islice {args.lines / plain:,.0f} lines/s, "
            f"capped line_batches {args.lines / capped:,.0f} lines/s ({capped / plain:.2f}x the time)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        ref = peak_kb(Path(tmp) / "ref", 0)
        huge = peak_kb(Path(tmp) / "huge", args.mb)
    print(
        f"peak RSS, gather+curate: reference (200 small rows) {ref / 1024:.0f} MB; "
        f"with one {args.mb} MB line {huge / 1024:.0f} MB (+{(huge - ref) / 1024:.0f} MB, "
        f"{(huge - ref) / 1024 / args.mb:.1f}x the line)"
    )


if __name__ == "__main__":
    main()
