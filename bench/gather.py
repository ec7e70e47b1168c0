"""Benchmark: gather (sources.discover + sources.read_items) on text files and JSONL.

Builds a corpus in a temp dir at two sizes (N and 10N), and for each size, in a fresh
subprocess (so peak RSS belongs to that size alone):
  1. reference: a plain open().read() of every file,
  2. gather: discover + read_items in fixed-size partitions (results dropped after each
     partition, as the flow writes them out),
and prints files/s and MB/s for both, gather's speed as a ratio of the plain read, and
peak memory (ru_maxrss, and ru_maxrss minus the RSS after imports) with the 10N/N ratio
(goal: 10x the corpus raises peak memory by < 20%).

It also times the per-row id hash (a hashlib list comprehension, the one Python loop
over rows in the tabular hot path) against DuckDB's vectorized sha256 on the same texts.

Usage: python bench/gather.py [--n 600] [--rows 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no what up out who them some"
).split()
PARTITION_FILES = 256
PARTITION_JSONL = 4


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def build(root: Path, n_files: int, n_jsonl: int, rows: int) -> None:
    rng = random.Random(0)
    paras = [_text(rng, 120) for _ in range(64)]  # reused to keep corpus building fast
    for i in range(n_files):
        d = root / "txt" / f"{i // 500:04d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"doc{i:06d}.txt").write_text(f"document {i}\n" + "\n\n".join(paras[(i + k) % 64] for k in range(6)))
    (root / "jsonl").mkdir(exist_ok=True)
    for j in range(n_jsonl):
        with open(root / "jsonl" / f"part{j:05d}.jsonl", "w") as fh:
            for r in range(rows):
                fh.write(json.dumps({"text": f"row {j}-{r} " + paras[(j * 7 + r) % 64], "id": f"{j}-{r}"}) + "\n")


def child(root: str) -> None:
    """Runs in a subprocess: reference read, then gather; prints one JSON line."""
    import sources.tabular  # noqa: F401,E401 - import cost is not reading cost
    import sources.text_files
    from sources import discover, read_items
    from sources.config import FilesSource, JsonlSource

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    paths = sorted(str(p) for p in Path(root).rglob("*") if p.is_file())
    t0 = time.perf_counter()
    nbytes = 0
    for p in paths:
        with open(p, "rb") as fh:
            nbytes += len(fh.read())
    t_plain = time.perf_counter() - t0
    plain_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    media = Path(root) / "lake" / "media"
    sources = [
        (FilesSource(name="txt", paths=["txt/**/*.txt"]), PARTITION_FILES),
        (JsonlSource(name="jl", paths=["jsonl/*.jsonl"], id_field="id"), PARTITION_JSONL),
    ]
    t0 = time.perf_counter()
    docs = rows_in = items_n = 0
    for source, size in sources:
        it = discover(source, Path(root))
        while batch := list(islice(it, size)):
            result = read_items(source, batch, media)
            docs += result.tables["documents"].height
            rows_in += result.rows_in
            items_n += len(batch)
            del result
    t_gather = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "files": len(paths),
                "bytes": nbytes,
                "t_plain": t_plain,
                "t_gather": t_gather,
                "docs": docs,
                "rows_in": rows_in,
                "items": items_n,
                "base_rss_kb": base_rss,
                "plain_rss_kb": plain_rss,
                "peak_rss_kb": peak,
            }
        )
    )


def hash_compare(n: int = 200_000) -> tuple[float, float]:
    import duckdb
    import polars as pl

    from sources.tabular import _ids

    rng = random.Random(1)
    texts = [_text(rng, 60) for _ in range(n)]
    t0 = time.perf_counter()
    ids = _ids(texts)
    t_py = time.perf_counter() - t0
    frame = pl.DataFrame({"text": texts})  # noqa: F841 - read by DuckDB's replacement scan
    t0 = time.perf_counter()
    got = duckdb.sql("select substr(sha256('text' || chr(0) || text), 1, 32) as id from frame").pl()["id"].to_list()
    t_duck = time.perf_counter() - t0
    assert got == ids
    return t_py, t_duck


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600, help="text files at size N (JSONL files: N/60)")
    ap.add_argument("--rows", type=int, default=2000, help="rows per JSONL file")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    results = {}
    for scale in (1, 10):
        with tempfile.TemporaryDirectory(prefix="bench_gather_") as tmp:
            n_files, n_jsonl = args.n * scale, max(1, args.n // 60) * scale
            t0 = time.perf_counter()
            build(Path(tmp), n_files, n_jsonl, args.rows)
            t_build = time.perf_counter() - t0
            out = subprocess.run(
                [sys.executable, __file__, "--child", tmp],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            )
            if out.returncode:
                sys.exit(out.stderr)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results[scale] = r
            mb = r["bytes"] / 2**20
            print(
                f"size {scale:>2}N: {r['files']} files ({n_files} txt + {n_jsonl} jsonl x {args.rows} rows), "
                f"{mb:.1f} MB, {r['rows_in']} rows_in, {r['docs']} documents (built in {t_build:.1f}s)"
            )
            print(f"   plain read : {r['files'] / r['t_plain']:10.0f} files/s {mb / r['t_plain']:8.1f} MB/s")
            print(
                f"   gather     : {r['files'] / r['t_gather']:10.0f} files/s {mb / r['t_gather']:8.1f} MB/s"
                f"   ({r['t_gather'] / r['t_plain']:.1f}x the plain read's time,"
                f" {r['rows_in'] / r['t_gather']:.0f} rows/s)"
            )
            print(
                f"   peak RSS   : {r['peak_rss_kb'] / 1024:.0f} MB  (after imports {r['base_rss_kb'] / 1024:.0f} MB,"
                f" growth during gather {(r['peak_rss_kb'] - r['plain_rss_kb']) / 1024:.0f} MB)"
            )
    ratio = results[10]["peak_rss_kb"] / results[1]["peak_rss_kb"]
    g1 = results[1]["peak_rss_kb"] - results[1]["base_rss_kb"]
    g10 = results[10]["peak_rss_kb"] - results[10]["base_rss_kb"]
    print(
        f"peak RSS 10N / N: {ratio:.3f}  ({(ratio - 1) * 100:+.1f}%, goal < +20%);"
        f" above-import-baseline 10N / N: {g10 / max(g1, 1):.3f}"
    )
    t_py, t_duck = hash_compare()
    print(
        f"id hash of 200k texts: hashlib loop {t_py:.3f}s, DuckDB sha256 {t_duck:.3f}s"
        f" (loop / duckdb = {t_py / t_duck:.2f})"
    )


if __name__ == "__main__":
    main()
