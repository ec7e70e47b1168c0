"""Curate's dedup against a large kept lake: peak memory, wall and CPU time per new row.

    python bench/dedup_scale.py                     # text: kept lakes of 1 M and 10 M rows, 100 k new rows (~8 min)
    python bench/dedup_scale.py --quick             # text: 100 k and 1 M kept, 20 k new (~1 min)
    python bench/dedup_scale.py --images            # images: 1 M kept pHashes, 100 k new (~1 min)
    python bench/dedup_scale.py --images --quick    # images: 100 k kept, 20 k new (~10 s)

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

Images (--images, bench/dedup_scale_images.py): a kept lake of image rows as curate stores
them (phash set, band, sketch and signature columns null) and new image rows: random ones,
planted near copies (1..bound bits flipped) of kept rows and of earlier new rows, far copies
(bound+1..bound+4 bits, must not be found), identical blank and near-blank hashes. The same
three steps run in a fresh subprocess; verify_step reads every kept image row's pHash
(dedup_lake._kept_media) and clusters kept and new rows by multi-index hashing
(filters/phash_index.py). It prints peak RSS (and after each step), wall and CPU per step,
microseconds per new image, what reading the kept image rows costs alone, recall and
precision of the planted copies (the rule is in bench/dedup_scale_images.py), and the random
rows reported as within the bound of an earlier row by chance, with the count expected.

Goals (issue 15): peak RSS < 2 GB at 10 M kept; time per new document within 2x between
the smallest and the largest lake; precision and recall of the planted pairs unchanged.
Images: 100 k new images against 1 M kept in bounded memory (< 2 GB), with recall 1 on the
planted copies and no far copy reported except by chance.
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

from bench.dedup_scale_images import build_images, score  # noqa: E402
from distillery.lake import PARQUET_OPTIONS, ROW_GROUP_ROWS  # noqa: E402
from filters import CurateConfig, minhash  # noqa: E402
from filters.dedup_lake import (  # noqa: E402
    KeptLake,
    Limits,
    _kept_media,
    band_ranges,
    band_step,
    exact_step,
    split_keys,
    verify_step,
)

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
    """One curate dedup of the new rows against the kept lake, in this process: print the
    figures (wall, CPU and peak RSS so far after each step) and write dups.parquet."""
    cfg = CurateConfig()
    marks = [(time.perf_counter(), time.process_time())]

    def mark() -> float:
        marks.append((time.perf_counter(), time.process_time()))
        # VmHWM: this process's own peak RSS (ru_maxrss would carry the forking parent's over exec)
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024

    kept = KeptLake.of(
        sorted((workdir / "kept").glob("dedup_keys-*")), sorted((workdir / "kept").glob("dedup_sketches-*"))
    )
    new = pl.read_parquet(workdir / "new.parquet")
    work = workdir / "work"
    limits = Limits(memory_mb=memory_mb, threads=2)
    exact_step(new, kept, cfg, work, limits)
    del new
    peak_exact = mark()
    pairs = [
        band_step(lo, hi, kept, cfg, work, limits) for lo, hi in band_ranges(cfg.dedup.minhash.num_bands, band_tasks)
    ]
    peak_bands = mark()
    dups = verify_step(pairs, kept, cfg, work, limits)
    peak = mark()
    n_pairs = sum(pq.ParquetFile(p).metadata.num_rows for p in pairs)
    dups.write_parquet(workdir / "dups.parquet")
    # after the measurement: what verify_step's read of the kept image and video rows costs alone
    media = _kept_media(kept, work / "media", limits)
    mark()
    (w0, c0), (w1, c1), (w2, c2), (w3, c3), (w4, c4) = marks
    print(
        json.dumps(
            {
                "wall": w3 - w0,
                "cpu": c3 - c0,
                "exact_s": w1 - w0,
                "bands_s": w2 - w1,
                "verify_s": w3 - w2,
                "exact_cpu": c1 - c0,
                "bands_cpu": c2 - c1,
                "verify_cpu": c3 - c2,
                "peak_rss_mb": peak,
                "peak_exact_mb": peak_exact,
                "peak_bands_mb": peak_bands,
                "media_load_s": w4 - w3,
                "media_load_cpu": c4 - c3,
                "media_rows": 0 if media is None else media.height,
                "media_mb": 0 if media is None else media.estimated_size() / 2**20,
                "pairs": n_pairs,
            }
        )
    )


def run_child(wd: Path, args: argparse.Namespace) -> dict:
    """`child` on `wd` in a fresh process (its peak RSS is its own): its figures."""
    cmd = [sys.executable, __file__, "--child", str(wd), "--memory-mb", str(args.memory_mb)]
    out = subprocess.run(cmd + ["--band-tasks", str(args.band_tasks)], capture_output=True, text=True)
    if out.returncode:
        print(out.stderr[-3000:])
        raise SystemExit(1)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_text(args: argparse.Namespace, tmp: Path) -> None:
    """Text keys: one line per kept size, then the time per new doc, largest vs smallest lake."""
    sizes = [int(s) for s in (args.kept or ("100000,1000000" if args.quick else "1000000,10000000")).split(",")]
    n_new = args.new or (20_000 if args.quick else 100_000)
    results = []
    for m in sizes:
        wd = tmp / f"kept-{m}"
        t = time.perf_counter()
        truth = build(wd, m, n_new, args.originals, args.copies, args.file_rows)
        built = time.perf_counter() - t
        r = run_child(wd, args)
        pred, true = set((pl.read_parquet(wd / "dups.parquet")["order"] - m).to_list()), set(truth["truth"])
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


def run_images(args: argparse.Namespace, tmp: Path) -> None:
    """Image pHashes (bench/dedup_scale_images.py): one block of lines per kept size."""
    cfg = CurateConfig()
    sizes = [int(s) for s in (args.kept or ("100000" if args.quick else "1000000")).split(",")]
    n_new = args.new or (20_000 if args.quick else 100_000)
    for m in sizes:
        wd = tmp / f"images-{m}"
        t = time.perf_counter()
        truth = build_images(wd, m, n_new, args.file_rows, cfg.dedup.image_max_hamming, cfg.dedup.minhash.num_bands)
        built = time.perf_counter() - t
        r = run_child(wd, args)
        s = score(pl.read_parquet(wd / "dups.parquet"), truth)
        size_mb = sum(p.stat().st_size for p in (wd / "kept").glob("dedup_*")) / 2**20
        print(
            f"images: kept {m:,}  new {n_new:,} (bound {truth['bound']}): peak RSS {r['peak_rss_mb']:.0f} MB "
            f"(after exact {r['peak_exact_mb']:.0f}, bands {r['peak_bands_mb']:.0f})\n"
            f"  wall {r['wall']:.1f} s (exact {r['exact_s']:.1f}, bands {r['bands_s']:.1f}, verify {r['verify_s']:.1f})  "
            f"CPU {r['cpu']:.1f} s (exact {r['exact_cpu']:.1f}, bands {r['bands_cpu']:.1f}, "
            f"verify {r['verify_cpu']:.1f})  {1e6 * r['wall'] / n_new:,.0f} us/new image\n"
            f"  kept media rows read alone (_kept_media, after the run): {r['media_rows']:,} rows, "
            f"{r['media_mb']:.0f} MB in Polars, {r['media_load_s']:.1f} s wall, {r['media_load_cpu']:.1f} s CPU\n"
            f"  reported {s['reported']:,} ({', '.join(s['methods']) or 'none'}): planted {s['planted']:,}, "
            f"recall {s['recall']:.4f} ({s['via_chance']} of them with an earlier survivor their cluster reaches "
            f"by a chance pair); precision {s['precision']:.4f} ({s['wrong']} within the bound of no earlier row)\n"
            f"  random rows reported right (within the bound of an earlier row by chance): {s['random_reported']:,} "
            f"(~{s['chance_expected']:,.0f} expected); far copies reported {s['far_reported']} of {s['far']:,}\n"
            f"  kept dedup_keys + dedup_sketches {size_mb:.0f} MB; built in {built:.0f} s",
            flush=True,
        )
        subprocess.run(["rm", "-rf", str(wd)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="100 k and 1 M kept, 20 k new (--images: 100 k kept)")
    ap.add_argument("--images", action="store_true", help="image pHashes instead of text keys (1 M kept)")
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
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        (run_images if args.images else run_text)(args, Path(tmp))


if __name__ == "__main__":
    main()
