"""Peak memory of one gather task reading a large CSV or WARC file in spans of `partition_rows`
records (sources/spans.py) against the same file read whole (how these kinds were read before
spans), and the planning pass that finds the cuts against one whole-file read, in the same run.

Each read runs in a child process that reports its own peak RSS (resource.getrusage,
RUSAGE_SELF): `sources.read_items` on the file's largest span, or on the whole file, as a
gather task does without Prefect around it. The planning pass (sources.spans.row_spans) is
timed and its peak RSS taken the same way.

    python bench/span_memory.py [--csv-mb 200] [--warc-records 20000] [--partition-rows 5000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_CHILD = """
import json, resource, sys, time
from pydantic import TypeAdapter
from sources import SourceItem, read_items
from sources.config import AnySource
from sources.spans import row_spans
source = TypeAdapter(AnySource).validate_python(json.loads(sys.argv[1]))
path, what = sys.argv[2], json.loads(sys.argv[3])
t = time.perf_counter()
if what == "plan":
    import os
    out = row_spans(source, path, os.path.getsize(path), int(sys.argv[4]))
else:
    out = read_items(source, [SourceItem(source.name, path, path, "bench", what and tuple(what))], "/tmp/media").rows_in
print("RESULT", json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - t, out]))
"""
WORDS = "river delta season sediment channel bank flood plain estuary tide marsh reed heron current silt".split()


def child(source: dict, path: Path, what, partition_rows: int = 0) -> tuple[int, float, object]:
    """(peak RSS KB, seconds, result) of one read (`what`: a span, None for the whole file, or "plan")."""
    args = [json.dumps(source), str(path), json.dumps(what), str(partition_rows)]
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")), None)
    if out.returncode or line is None:
        raise SystemExit(f"child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return tuple(json.loads(line.split(" ", 1)[1]))


def prose(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def write_csv(path: Path, mb: int) -> None:
    """~`mb` MB of CSV rows of ~1 KB prose; every 10th text quoted with a newline in it."""
    rng = random.Random(0)
    with open(path, "w", newline="") as fh:
        fh.write("id,text\n")
        n = 0
        while fh.tell() < mb * 2**20:
            text = prose(rng, 150)
            fh.write(f'{n},"{text}\n{n}"\n' if n % 10 == 0 else f"{n},{text}\n")
            n += 1


def write_warc(path: Path, records: int) -> None:
    """A .warc.gz with one gzip member per record (Common Crawl's layout): HTML responses of ~5 KB."""
    rng = random.Random(0)
    with open(path, "wb") as fh:
        for i in range(records):
            page = f"<html><head><title>Page {i}</title></head><body><p>{prose(rng, 700)}</p></body></html>"
            block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + page.encode()
            head = (
                f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://site.test/{i}\r\n"
                f"WARC-Date: 2024-01-01T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:{i:032x}>\r\n"
                f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(block)}\r\n\r\n"
            )
            fh.write(gzip.compress(head.encode() + block + b"\r\n\r\n", compresslevel=1))


def compare(kind: str, source: dict, path: Path, partition_rows: int) -> None:
    mb = path.stat().st_size / 2**20
    plan_kb, plan_s, spans = child(source, path, "plan", partition_rows)
    if not spans:
        raise SystemExit(f"{kind}: the file was not cut into spans")
    span_kb, _, _ = max(child(source, path, s) for s in spans[:2])  # the first full spans
    whole_kb, whole_s, rows = child(source, path, None)
    print(
        f"{kind} {mb:.0f} MB ({rows:,} records): one task in spans of {partition_rows} "
        f"peak {span_kb / 1024:.0f} MB; read whole {whole_kb / 1024:.0f} MB ({whole_kb / span_kb:.1f}x); "
        f"planning pass {plan_s:.1f} s, {plan_kb / 1024:.0f} MB, {len(spans)} spans "
        f"({plan_s / whole_s:.2f}x the whole read's {whole_s:.1f} s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv-mb", type=int, default=200, help="size of the CSV, MB (0: skip)")
    ap.add_argument("--warc-records", type=int, default=20_000, help="records of the .warc.gz (0: skip)")
    ap.add_argument("--partition-rows", type=int, default=5000, help="run.partition_rows")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.csv_mb:
            write_csv(Path(tmp) / "big.csv", args.csv_mb)
            compare("csv", {"name": "c", "kind": "csv", "paths": ["*.csv"]}, Path(tmp) / "big.csv", args.partition_rows)
        if args.warc_records:
            write_warc(Path(tmp) / "big.warc.gz", args.warc_records)
            source = {"name": "w", "kind": "warc", "paths": ["*.warc.gz"]}
            compare("warc.gz", source, Path(tmp) / "big.warc.gz", args.partition_rows)


if __name__ == "__main__":
    main()
