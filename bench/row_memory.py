"""Peak memory of gather + curate on a JSONL file holding one huge line, against the same
file without that line (the reference, measured in the same run); and the speed of the
capped line reader (jsonl.line_batches, a Python loop over lines) against the plain
file iteration it replaced (`itertools.islice(fh, batch_rows)`), on the same file.

Each case runs `distillery run CONFIG --stages gather,curate` as a user does (no
PREFECT_API_URL: Prefect's temporary server, which is a separate process and not counted)
in a child process that reports its own peak RSS (resource.getrusage, RUSAGE_SELF).

    python bench/row_memory.py [--mb 50] [--lines 500000]
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
rc = main(["run", sys.argv[1], "--stages", "gather,curate"])
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


def peak_kb(root: Path, huge_mb: int) -> int:
    corpus = root / "corpus"
    write_corpus(corpus, huge_mb)
    cfg = root / "c.yaml"
    cfg.write_text(
        f"lake: {root / 'lake'}\nbase_dir: {corpus}\nstages: [gather, curate]\n"
        "sources:\n  - {name: rows, kind: jsonl, paths: ['*.jsonl']}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(DISTILLERY_RUN_DIR=str(root / "run"), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(cfg)], env=env, cwd=root, capture_output=True, text=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("PEAK_RSS_KB")), None)
    if out.returncode or line is None:
        raise SystemExit(f"run failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return int(line.split()[1])


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
    args = ap.parse_args()
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
