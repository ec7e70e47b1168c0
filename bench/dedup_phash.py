"""Benchmark of image near-dedup by multi-index hashing (python bench/dedup_phash.py [--quick]).

Synthetic pHashes (numpy, seeded): N images (1,000,000; --quick 100,000) of which
  - 85 % random 64-bit hashes (the originals),
  - 10 % planted near copies of an original, 1..bound bits flipped (must be found),
  - 2 % far copies, bound+1..bound+4 bits flipped (must not be found),
  - 3 % skew: one blank hash repeated (identical blank images), and 1.5 % near-blank
    copies of it, 1..bound bits set (all must be found as duplicates of the first blank).
    Near-blank hashes are within the bound of each other (15,000 of them: ~5e7 pairs) and
    share most blocks: the index leaves the pairs inside the blank hub's cloud out of the
    search (filters/phash_index.py, row_edges).
Originals come first, so every planted copy's survivor is its original (or the first blank).

1. Index: filters.dedup.find_duplicates on all N images as new rows (the default bound, 10),
   in a fresh process: wall, CPU, peak RSS (and RSS after the data was built), recall and
   precision of the planted pairs. At bound 10, random 64-bit hashes fall within the bound of
   each other by chance (about 1e-8 of all pairs: ~4,900 pairs among 1 M); those are true
   near pairs by the rule, reported, and counted against precision, with the expected count.
2. Reference in the same run: the quadratic DuckDB self-join the index replaced (the former
   image_duplicates, reproduced below) on a corpus of SUBSET images built the same way
   (20,000; --quick 5,000),
   against the index on that subset: same duplicates (checked), the time ratio, and the
   quadratic join's time extrapolated to N (x (N / SUBSET)^2 comparisons).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from filters import CurateConfig, find_duplicates  # noqa: E402
from filters.dedup import _cluster_dups, _dup_frame, _hamming, _prepared, _sql  # noqa: E402

SEED = 15


def _flip(rng: np.random.Generator, h: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Each hash with lo..hi distinct random bits flipped (vectorized: random bit ranks)."""
    k = rng.integers(lo, hi + 1, len(h))
    ranks = np.argsort(rng.random((len(h), 64)), axis=1)
    bits = (ranks < k[:, None]).astype(np.uint64) << np.arange(64, dtype=np.uint64)
    return h ^ np.bitwise_or.reduce(bits, axis=1)


def corpus(n: int, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, planted source row or -1): originals first, then copies in random order."""
    rng = np.random.default_rng(SEED)
    n_near, n_far, n_skew, n_faint = n // 10, n // 50, 3 * n // 100, 15 * n // 1000
    n_orig = n - n_near - n_far - n_skew - n_faint
    orig = rng.integers(0, 2**64, n_orig, dtype=np.uint64)
    orig[0] = 0  # the first blank image
    near_src = rng.integers(1, n_orig, n_near)
    far_src = rng.integers(1, n_orig, n_far)
    blank = np.concatenate([np.zeros(n_skew, np.uint64), _flip(rng, np.zeros(n_faint, np.uint64), 1, bound)])
    copies = np.concatenate(
        [_flip(rng, orig[near_src], 1, bound), _flip(rng, orig[far_src], bound + 1, bound + 4), blank]
    )
    source = np.concatenate([near_src, np.full(n_far, -1), np.zeros(n_skew + n_faint, np.int64)])
    perm = rng.permutation(len(copies))
    return np.concatenate([orig, copies[perm]]), np.concatenate([np.full(n_orig, -1), source[perm]])


def keys_of(hashes: np.ndarray) -> pl.DataFrame:
    n = len(hashes)
    return pl.DataFrame(
        {
            "id": pl.int_range(n, eager=True).cast(pl.Utf8),
            "modality": pl.repeat("image", n, eager=True),
            "phash": pl.Series(hashes, dtype=pl.UInt64),
            "order": pl.int_range(n, eager=True, dtype=pl.Int64),
        }
    )


def quadratic_image_duplicates(keys: pl.DataFrame, bound: int) -> pl.DataFrame:
    """The former image_duplicates: a DuckDB self-join of every pair (the reference)."""
    ik = _prepared(keys, True).filter(pl.col("phash").is_not_null()).with_row_index("_pos")
    pairs = _sql(
        f"""select a._pos as u, b._pos as v from ik a join ik b on a._pos < b._pos
            where b.is_new and bit_count(xor(a.phash, b.phash)) <= {bound}""",
        ik=ik.select("_pos", "is_new", "phash"),
    )
    dup, surv = _cluster_dups(ik, pairs["u"].to_numpy().astype(np.int64), pairs["v"].to_numpy().astype(np.int64))
    ph = ik["phash"].to_numpy()
    return _dup_frame(ik, dup, surv, "phash", 1.0 - _hamming(ph[dup], ph[surv]) / 64.0)


def run_index(n: int) -> dict:
    """Part 1, in this (fresh) process."""
    bound = CurateConfig().dedup.image_max_hamming
    hashes, source = corpus(n, bound)
    keys = keys_of(hashes)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, c0 = time.perf_counter(), time.process_time()
    dups = find_duplicates(keys, None, CurateConfig())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    found = dups.select(pl.col("id").cast(pl.Int64), pl.col("duplicate_of").cast(pl.Int64))
    planted = np.flatnonzero(source >= 0)
    got = np.full(n, -1, np.int64)
    got[found["id"].to_numpy()] = found["duplicate_of"].to_numpy()
    # A copy is found when it is reported in its original's cluster: as a duplicate of the
    # original, or of the row the original itself is a duplicate of (originals within the
    # bound of each other by chance).
    src = source[planted]
    right = int((got[planted] == np.where(got[src] >= 0, got[src], src)).sum())
    # Random 64-bit hashes within `bound` bits of each other by chance: C(n, 2) * P(d <= bound).
    chance = n * (n - 1) / 2 * sum(math.comb(64, i) for i in range(bound + 1)) / 2.0**64
    return {
        "n": n,
        "bound": bound,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_data_mb": rss_data,
        "planted": len(planted),
        "found": found.height,
        "recall": right / len(planted),
        "precision": right / max(found.height, 1),
        "expected_by_chance": chance,
    }


def run_reference(n: int, subset: int) -> dict:
    """Part 2: quadratic join vs index on the first `subset` rows of a corpus shaped alike."""
    bound = CurateConfig().dedup.image_max_hamming
    hashes, _ = corpus(subset, bound)
    keys = keys_of(hashes)
    t0 = time.perf_counter()
    ref = quadratic_image_duplicates(keys, bound)
    t_quad = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = find_duplicates(keys, None, CurateConfig())
    t_index = time.perf_counter() - t0
    same = ref.select("id", "duplicate_of", "similarity").equals(ours.select("id", "duplicate_of", "similarity"))
    return {
        "subset": subset,
        "quadratic_s": t_quad,
        "index_s": t_index,
        "same_duplicates": same,
        "duplicates": ours.height,
        "quadratic_at_n_s": t_quad * (n / subset) ** 2,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=["index"], help="internal: run part 1 in this process")
    ap.add_argument("--n", type=int)
    args = ap.parse_args()
    n = args.n or (100_000 if args.quick else 1_000_000)
    if args.part == "index":
        print(json.dumps(run_index(n)))
        return
    subset = 5_000 if args.quick else 20_000
    cmd = [sys.executable, __file__, "--part", "index", "--n", str(n)]
    idx = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    ref = run_reference(n, subset)
    print(f"index, {n:,} images (bound {idx['bound']}), fresh process:")
    print(f"  wall {idx['wall_s']:.1f} s, CPU {idx['cpu_s']:.1f} s, {n / idx['wall_s']:,.0f} images/s")
    print(f"  peak RSS {idx['peak_rss_mb']:.0f} MB ({idx['rss_after_data_mb']:.0f} MB after building the data)")
    print(
        f"  planted {idx['planted']:,}, found {idx['found']:,}: recall {idx['recall']:.4f}, precision {idx['precision']:.4f}"
    )
    other, chance = idx["found"] - round(idx["recall"] * idx["planted"]), idx["expected_by_chance"]
    print(
        f"  found beyond the planted copies: {other:,} (random hashes within the bound by chance: ~{chance:,.0f} expected)"
    )
    print(f"quadratic join (the former image_duplicates), reference on {subset:,} of them:")
    print(
        f"  quadratic {ref['quadratic_s']:.2f} s, index {ref['index_s']:.2f} s: {ref['quadratic_s'] / ref['index_s']:.1f}x"
    )
    print(f"  same duplicates and survivors: {ref['same_duplicates']} ({ref['duplicates']:,} duplicates)")
    q = ref["quadratic_at_n_s"]
    print(f"  quadratic extrapolated to {n:,}: {q:,.0f} s vs index {idx['wall_s']:.1f} s: {q / idx['wall_s']:.0f}x")


if __name__ == "__main__":
    main()
