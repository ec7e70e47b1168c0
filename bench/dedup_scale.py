"""Curate's dedup against a large kept lake: peak memory, wall and CPU time per new document.

    python bench/dedup_scale.py            # kept lakes of 1 M and 10 M rows, 100 k new rows (~8 min)
    python bench/dedup_scale.py --quick    # 100 k and 1 M kept, 20 k new (~1 min)

For each kept size M it writes a synthetic kept lake in the stored layout (dedup_keys with
one column per LSH band, dedup_sketches row-aligned; files of --file-rows rows, as curate's
partitions are), then runs filters/dedup_lake.py's three steps (exact, one task per band
range, verify) on N new rows in a fresh subprocess and reports that process's peak RSS,
wall and CPU time. Keys are made directly with numpy, not from text: building 10 M real
documents would take hours on two cores, and what dedup costs depends on the keys alone.

Planted near-duplicates: --originals kept rows get real keys (filters.minhash signatures,
band hashes and bottom-k sketches of a set of 400 random shingles); each has --copies new
rows whose shingle sets replace a random share of its shingles (Jaccard 0.7..1.0). Every
other row has random band hashes (they never share a bucket with anything). Kept rows get
a sketch and signature (random, full size) only in the sketch row groups that hold a
planted row: verification reads sketches of candidate rows only, a row group at a time,
so those groups are all it reads, and writing 30 GB of random sketches for the rest
would take longer than the run. Ground truth: a
copy is a duplicate when its exact Jaccard with its original or an earlier copy is >= 0.8.

Goals (issue 15): peak RSS < 2 GB at 10 M kept; time per new document within 2x between
the smallest and the largest lake; precision and recall of the planted pairs unchanged.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
# The script's folder (bench/) holds filters.py, which must not shadow the `filters` package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from distillery.lake import PARQUET_OPTIONS, ROW_GROUP_ROWS  # noqa: E402
from filters import CurateConfig, minhash  # noqa: E402
from filters.dedup_lake import KeptLake, Limits, band_ranges, band_step, exact_step, split_keys, verify_step  # noqa: E402

SHINGLES = 400
THRESHOLD = 0.8


def real_keys(sets: list[np.ndarray], cfg: CurateConfig) -> dict[str, pl.Series]:
    """Signatures, bands and sketches of shingle-hash sets, as filters.dedup.dedup_keys makes them."""
    mh = cfg.dedup.minhash
    doc = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    sh = np.concatenate(sets) if sets else np.zeros(0, np.uint64)
    sig, _ = minhash.signatures(doc, sh, len(sets), mh.num_bands * mh.rows_per_band, mh.seed)
    bands = minhash.band_hashes(sig, mh.num_bands, mh.rows_per_band)
    offsets, values = minhash.bottom_k(doc, sh, len(sets), mh.sketch_size)
    sketch = pl.from_arrow(pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.uint32())))
    return {
        "signature": pl.Series(sig).cast(pl.List(pl.UInt64)),
        "bands": pl.Series(bands).cast(pl.List(pl.UInt64)),
        "sketch": pl.Series(sketch).cast(pl.List(pl.UInt32)),
    }


def random_keys(rng: np.random.Generator, n: int, cfg: CurateConfig) -> dict[str, pl.Series]:
    """Keys of the right sizes with random values (they match nothing)."""
    mh = cfg.dedup.minhash
    sketch = np.sort(rng.integers(0, 2**32, (n, mh.sketch_size), dtype=np.uint32), axis=1)
    return {
        "signature": pl.Series(rng.integers(0, 2**63, (n, mh.num_bands * mh.rows_per_band), dtype=np.uint64)).cast(
            pl.List(pl.UInt64)
        ),
        "bands": pl.Series(rng.integers(0, 2**63, (n, mh.num_bands), dtype=np.uint64)).cast(pl.List(pl.UInt64)),
        "sketch": pl.Series(sketch).cast(pl.List(pl.UInt32)),
    }


def random_rows(rng: np.random.Generator, n: int, prefix: str, num_bands: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": pl.Series("id", np.char.add(prefix, np.arange(n).astype(str))),
            "modality": pl.Series("modality", ["text"] * n),
            "exact": pl.Series("exact", rng.integers(0, 2**63, n).astype(str)),
            "bands": pl.Series("bands", rng.integers(0, 2**63, (n, num_bands), dtype=np.uint64)).cast(
                pl.List(pl.UInt64)
            ),
        }
    )


def place(rows: pl.DataFrame, at: np.ndarray, keys: dict[str, pl.Series]) -> pl.DataFrame:
    """`rows` with the key columns of the rows at positions `at` replaced by `keys`."""
    cols = ("signature", "bands", "sketch")
    planted = pl.DataFrame({"_i": at.astype(np.uint32), **{f"_{c}": keys[c] for c in cols}})
    out = rows.with_row_index("_i").join(planted, on="_i", how="left", maintain_order="left")
    return out.with_columns([pl.coalesce(f"_{c}", c).alias(c) for c in cols]).drop("_i", *[f"_{c}" for c in cols])


def build(workdir: Path, kept: int, new: int, originals: int, copies: int, file_rows: int, seed: int = 0) -> dict:
    """Write the kept lake and the new rows' keys under `workdir`; return the ground truth."""
    cfg = CurateConfig()
    nb = cfg.dedup.minhash.num_bands
    rng = np.random.default_rng(seed)
    base = [rng.integers(0, 2**64 - 1, SHINGLES, dtype=np.uint64) for _ in range(originals)]
    copy_sets, copy_of, jacc = [], [], []
    for o in range(originals):
        for _ in range(copies):
            r = rng.uniform(0.0, 0.18)  # replaced share r gives Jaccard (1 - r) / (1 + r): 0.69..1.0
            keep = rng.random(SHINGLES) >= r
            s = np.concatenate([base[o][keep], rng.integers(0, 2**64 - 1, int((~keep).sum()), dtype=np.uint64)])
            copy_sets.append(s)
            copy_of.append(o)
    kept_pos = np.sort(rng.choice(kept, originals, replace=False))
    ok = real_keys(base, cfg)
    (workdir / "kept").mkdir(parents=True, exist_ok=True)
    for f, lo in enumerate(range(0, kept, file_rows)):
        hi = min(lo + file_rows, kept)
        rows = random_rows(rng, hi - lo, f"k{f}-", nb).with_columns(
            pl.lit(None, pl.List(pl.UInt64)).alias("signature"),
            pl.lit(None, pl.List(pl.UInt32)).alias("sketch"),
            pl.lit(None, pl.UInt64).alias("phash"),
            pl.lit(None, pl.List(pl.UInt64)).alias("frame_phashes"),
        )
        idx = np.flatnonzero((kept_pos >= lo) & (kept_pos < hi))
        if len(idx):
            # the planted rows' sketch row groups are full (random sketches): verification
            # reads whole groups, so its I/O is that of a real lake
            group = ROW_GROUP_ROWS["dedup_sketches"]
            near = np.unique((kept_pos[idx] - lo) // group)
            fill_at = (near[:, None] * group + np.arange(group)).ravel()
            fill_at = np.setdiff1d(fill_at[fill_at < hi - lo], kept_pos[idx] - lo)
            rows = place(rows, fill_at, random_keys(rng, len(fill_at), cfg))
            rows = place(rows, kept_pos[idx] - lo, {c: ok[c].gather(idx) for c in ok})
        compact, sketches = split_keys(rows, nb)
        name = f"p{f:05d}"
        pq.write_table(compact.to_arrow(), workdir / "kept" / f"dedup_keys-{name}.parquet", **PARQUET_OPTIONS)
        pq.write_table(
            sketches.to_arrow(),
            workdir / "kept" / f"dedup_sketches-{name}.parquet",
            **(PARQUET_OPTIONS | {"row_group_size": ROW_GROUP_ROWS["dedup_sketches"]}),
        )
    # New rows: the copies spread at random positions among random rows, with real keys.
    nk = real_keys(copy_sets, cfg)
    new_pos = np.sort(rng.choice(new, len(copy_sets), replace=False))
    perm = rng.permutation(len(copy_sets))  # copies in random order among themselves
    rows = random_rows(rng, new, "n", nb)
    fill = real_keys([rng.integers(0, 2**64 - 1, SHINGLES, dtype=np.uint64) for _ in range(min(new, 2000))], cfg)
    rows = rows.with_columns(
        signature=pl.concat([fill["signature"]] * (new // max(len(fill["signature"]), 1) + 1))[:new],
        sketch=pl.concat([fill["sketch"]] * (new // max(len(fill["sketch"]), 1) + 1))[:new],
        phash=pl.lit(None, pl.UInt64),
        frame_phashes=pl.lit(None, pl.List(pl.UInt64)),
    )
    rows = place(rows, new_pos, {c: nk[c].gather(perm) for c in nk})
    rows.write_parquet(workdir / "new.parquet")
    # Ground truth: exact Jaccard with the original (kept, earlier) and with earlier copies.
    truth = []
    seen: dict[int, list[int]] = {}
    for pos, c in zip(new_pos, perm):
        o = copy_of[c]
        sets = [base[o]] + [copy_sets[e] for e in seen.get(o, [])]
        a = set(copy_sets[c].tolist())
        best = max(len(a & set(s.tolist())) / len(a | set(s.tolist())) for s in sets)
        if best >= THRESHOLD:
            truth.append(int(pos))
        seen.setdefault(o, []).append(c)
        jacc.append(best)
    return {"truth": truth, "planted": len(copy_sets)}


def child(workdir: Path, memory_mb: int, band_tasks: int) -> None:
    """One curate dedup of the new rows against the kept lake, in this process: print the figures."""
    cfg = CurateConfig()
    t0, c0 = time.perf_counter(), time.process_time()
    kept = KeptLake.of(
        sorted((workdir / "kept").glob("dedup_keys-*")), sorted((workdir / "kept").glob("dedup_sketches-*"))
    )
    new = pl.read_parquet(workdir / "new.parquet")
    work = workdir / "work"
    limits = Limits(memory_mb=memory_mb, threads=2)
    exact_step(new, kept, cfg, work, limits)
    del new
    t1 = time.perf_counter()
    pairs = [
        band_step(lo, hi, kept, cfg, work, limits) for lo, hi in band_ranges(cfg.dedup.minhash.num_bands, band_tasks)
    ]
    t2 = time.perf_counter()
    dups = verify_step(pairs, kept, cfg, work, limits)
    t3 = time.perf_counter()
    n_pairs = sum(pq.ParquetFile(p).metadata.num_rows for p in pairs)
    # VmHWM: this process's own peak RSS (ru_maxrss would carry the forking parent's over exec)
    peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(
        json.dumps(
            {
                "wall": t3 - t0,
                "cpu": time.process_time() - c0,
                "exact_s": t1 - t0,
                "bands_s": t2 - t1,
                "verify_s": t3 - t2,
                "peak_rss_mb": peak_kb / 1024,
                "pairs": n_pairs,
                "flagged": (dups["order"] - kept.total).to_list(),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="100 k and 1 M kept, 20 k new")
    ap.add_argument("--kept", default=None, help="comma-separated kept sizes (default 1000000,10000000)")
    ap.add_argument("--new", type=int, default=None, help="new rows (default 100000)")
    ap.add_argument("--originals", type=int, default=500)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--file-rows", type=int, default=250_000)
    ap.add_argument("--memory-mb", type=int, default=1024)
    ap.add_argument("--band-tasks", type=int, default=7)
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(Path(args.child), args.memory_mb, args.band_tasks)
        return
    sizes = [int(s) for s in (args.kept or ("100000,1000000" if args.quick else "1000000,10000000")).split(",")]
    n_new = args.new or (20_000 if args.quick else 100_000)
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for m in sizes:
            wd = Path(tmp) / f"kept-{m}"
            t = time.perf_counter()
            truth = build(wd, m, n_new, args.originals, args.copies, args.file_rows)
            built = time.perf_counter() - t
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(wd),
                    "--memory-mb",
                    str(args.memory_mb),
                    "--band-tasks",
                    str(args.band_tasks),
                ],
                capture_output=True,
                text=True,
            )
            if out.returncode:
                print(out.stderr[-3000:])
                raise SystemExit(1)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            pred, true = set(r.pop("flagged")), set(truth["truth"])
            tp = len(pred & true)
            r |= {"kept": m, "precision": tp / len(pred) if pred else 1.0, "recall": tp / len(true) if true else 1.0}
            size_mb = sum(p.stat().st_size for p in (wd / "kept").glob("dedup_keys-*")) / 2**20
            print(
                f"kept {m:>10,}  new {n_new:,}: peak RSS {r['peak_rss_mb']:7.0f} MB  wall {r['wall']:6.1f} s "
                f"(exact {r['exact_s']:.1f}, bands {r['bands_s']:.1f}, verify {r['verify_s']:.1f})  cpu {r['cpu']:6.1f} s  "
                f"{1e6 * r['wall'] / n_new:6.0f} us/new doc  pairs {r['pairs']:,}  "
                f"P {r['precision']:.4f} R {r['recall']:.4f} ({len(true)} true of {truth['planted']} planted)  "
                f"dedup_keys {size_mb:.0f} MB ({size_mb * 2**20 / m:.0f} B/row); built in {built:.0f} s",
                flush=True,
            )
            results.append(r)
            subprocess.run(["rm", "-rf", str(wd)])
    a, b = results[0], results[-1]
    print(
        f"time per new doc {b['kept']:,} vs {a['kept']:,} kept: {b['wall'] / a['wall']:.2f}x wall, "
        f"{b['cpu'] / a['cpu']:.2f}x CPU (goal <= 2x); "
        f"peak RSS {b['peak_rss_mb']:.0f} MB (goal < 2048)"
    )


if __name__ == "__main__":
    main()
