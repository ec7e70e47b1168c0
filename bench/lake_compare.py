"""Compare two lakes built from the same config: every Parquet file's rows, and the media store.

    python bench/lake_compare.py LAKE_A LAKE_B

Used to show that a refactor leaves a lake unchanged: build one lake with the code before,
one after (`distillery run --lake X`, same config, same sample folder) and compare. Parquet
files are matched by their path relative to the lake root and compared by content (schema,
then rows in file order), not by bytes, so writer-side details (compression, row groups)
do not count but any changed value does. The run records (runs/<run id>-<stage>.parquet) are
matched by stage, and the columns that differ between any two runs (run_id, started_at,
finished_at; more with --ignore-columns) are left out. Media objects are compared by name
(their names are their sha256). Exit status 0 when equal, 1 otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pyarrow.parquet as pq

RUN_COLUMNS = {"run_id", "started_at", "finished_at"}  # differ between any two runs by construction
_RUN_FILE = re.compile(r"runs/[0-9a-f-]{36}-(\w+)\.parquet")


def _key(rel: str) -> str:
    """A run record's key is its stage (its name holds the run's random id)."""
    m = _RUN_FILE.fullmatch(rel)
    return f"runs/<run>-{m[1]}.parquet" if m else rel


def _parquet_files(root: Path) -> dict[str, Path]:
    files = {}
    for p in sorted(root.rglob("*.parquet")):
        if not p.name.startswith("."):
            key = _key(str(p.relative_to(root)))
            if key in files:
                raise SystemExit(f"{root} holds more than one {key}: compare lakes built by one run each")
            files[key] = p
    return files


def compare(a: Path, b: Path, ignore: set[str]) -> list[str]:
    """Differences between lakes a and b, one line each (empty: the same)."""
    problems: list[str] = []
    fa, fb = _parquet_files(a), _parquet_files(b)
    for name in sorted(set(fa) ^ set(fb)):
        problems.append(f"only in {'A' if name in fa else 'B'}: {name}")
    for name in sorted(set(fa) & set(fb)):
        ta, tb = pq.read_table(fa[name]), pq.read_table(fb[name])
        skip = ignore | (RUN_COLUMNS if name.startswith("runs/") else set())
        keep = [c for c in ta.column_names if c not in skip]
        if ta.schema.remove_metadata() != tb.schema.remove_metadata():
            problems.append(f"{name}: schemas differ")
            continue
        ta, tb = ta.select(keep), tb.select(keep)
        if not ta.equals(tb):
            cols = [c for c in keep if not ta.column(c).equals(tb.column(c))]
            problems.append(f"{name}: rows differ ({ta.num_rows} vs {tb.num_rows} rows; columns {cols})")
    ma = {p.name for p in (a / "media").rglob("*") if p.is_file() and ".tmp" not in p.parts}
    mb = {p.name for p in (b / "media").rglob("*") if p.is_file() and ".tmp" not in p.parts}
    if ma != mb:
        problems.append(f"media objects differ: {len(ma - mb)} only in A, {len(mb - ma)} only in B")
    print(f"compared {len(set(fa) & set(fb))} Parquet files and {len(ma & mb)} media objects", file=sys.stderr)
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--ignore-columns", default="", help="comma-separated column names left out of the comparison")
    args = ap.parse_args()
    problems = compare(args.a, args.b, {c for c in args.ignore_columns.split(",") if c})
    for line in problems:
        print(line)
    print("lakes equal" if not problems else f"{len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
