"""Image rows for bench/dedup_scale.py --images: a synthetic kept lake of pHashes in the stored
layout, new image rows with planted near copies, and the score of what curate's dedup reported.

Kept lake (`build_images`): K image rows as curate stores them (filters/dedup_lake.py
split_keys of filters.dedup.dedup_keys rows: 32-hex id, modality "image", exact = a 64-hex
sha256, band columns null, phash set, frame_phashes null; dedup_sketches row-aligned, all
null, in row groups of ROW_GROUP_ROWS). Every kept pHash is random but one, the blank image
(hash 0) at a random position.

New rows (N, in random order; seeded):
  - 5 % near copies of a random KEPT row, 1..bound bits flipped (must be found),
  - 5 % near copies of a random EARLIER new random row, 1..bound bits flipped (must be found),
  - 2 % far copies (half of kept rows, half of earlier new ones), bound+1..bound+4 bits
    flipped (must not be found),
  - 3 % blank (hash 0, other bytes: no exact duplicate) and 1.5 % near-blank, 1..bound bits
    set: duplicates of the kept blank image (the skew of bench/dedup_phash.py),
  - the rest random.
Exact keys are all distinct, so the exact step finds nothing and every duplicate is the
image step's (method "phash").

Score (`score`): image clusters are connected components of the pairs within the bound (the
survivor is a cluster's first row; filters.dedup.image_duplicates). A planted copy is found
when it is reported with a survivor no later than its source: its source, what its new
source is reported a duplicate of, or (counted apart) an earlier row the cluster reaches
through a pair within the bound by chance (a kept random pHash with few bits set near a
near-blank copy joins the whole blank cluster). A reported duplicate is right when it is
within the bound of the row it is reported to duplicate or of any earlier row (which is
then in its cluster); a row reported only because a LATER row joins its cluster to an
earlier one is wrong. Random hashes fall within 10 bits of each other by chance (about 1e-8
of pairs): random new rows reported that way are right by that rule and are counted apart,
with the count expected by chance.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from bench.dedup_phash import _flip
from distillery.lake import PARQUET_OPTIONS, ROW_GROUP_ROWS
from filters.dedup import KEY_SCHEMA
from filters.dedup_lake import split_keys

RANDOM, NEAR_KEPT, NEAR_NEW, FAR_KEPT, FAR_NEW, BLANK, NEAR_BLANK = range(7)
PLANTED = (NEAR_KEPT, NEAR_NEW, BLANK, NEAR_BLANK)
FAR = (FAR_KEPT, FAR_NEW)


def hex_strings(rng: np.random.Generator, n: int, nbytes: int) -> pl.Series:
    """n random hex strings of 2 * nbytes characters (vectorized: Arrow binary, hex-encoded)."""
    buf = pa.py_buffer(rng.bytes(n * nbytes))
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(nbytes), n, [None, buf])
    return pl.Series(pl.from_arrow(fixed.cast(pa.binary()))).bin.encode("hex")


def image_rows(ids: pl.Series, exact: pl.Series, hashes: np.ndarray) -> pl.DataFrame:
    """Key rows (KEY_SCHEMA) of images: what filters.dedup.dedup_keys makes for them."""
    n = len(hashes)
    return pl.DataFrame(
        {"id": ids, "modality": pl.repeat("image", n, eager=True), "exact": exact}
        | {c: pl.Series(c, [None] * n, dtype=KEY_SCHEMA[c]) for c in ("signature", "bands", "sketch")}
        | {
            "phash": pl.Series(hashes, dtype=pl.UInt64),
            "frame_phashes": pl.Series([None] * n, dtype=pl.List(pl.UInt64)),
        },
        schema=KEY_SCHEMA,
    )


def _earlier(rng: np.random.Generator, pool: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For each position in `at`, a random element of the sorted `pool` below it (-1: none)."""
    below = np.searchsorted(pool, at)
    pick = (rng.random(len(at)) * below).astype(np.int64)
    return np.where(below > 0, pool[np.minimum(pick, len(pool) - 1)], -1)


def build_images(
    workdir: Path, kept: int, new: int, file_rows: int, bound: int, num_bands: int, seed: int = 15
) -> dict:
    """Write the kept image lake and the new image rows under `workdir` (as bench/dedup_scale.py's
    child reads them); return the ground truth: every row's pHash and id in survivor order
    (kept rows first), and per new row its kind and planted source (an order, or -1)."""
    rng = np.random.default_rng(seed)
    kept_h = rng.integers(0, 2**64, kept, dtype=np.uint64)
    blank_at = int(rng.integers(kept))
    kept_h[blank_at] = 0
    ids = hex_strings(rng, kept + new, 16)
    exact = hex_strings(rng, kept + new, 32)
    (workdir / "kept").mkdir(parents=True, exist_ok=True)
    for f, lo in enumerate(range(0, kept, file_rows)):
        hi = min(lo + file_rows, kept)
        compact, sketches = split_keys(image_rows(ids[lo:hi], exact[lo:hi], kept_h[lo:hi]), num_bands)
        pq.write_table(compact.to_arrow(), workdir / "kept" / f"dedup_keys-p{f:05d}.parquet", **PARQUET_OPTIONS)
        pq.write_table(
            sketches.to_arrow(),
            workdir / "kept" / f"dedup_sketches-p{f:05d}.parquet",
            **(PARQUET_OPTIONS | {"row_group_size": ROW_GROUP_ROWS["dedup_sketches"]}),
        )
    shares = {NEAR_KEPT: new // 20, NEAR_NEW: new // 20, FAR_KEPT: new // 100, FAR_NEW: new // 100}
    shares |= {BLANK: 3 * new // 100, NEAR_BLANK: 15 * new // 1000}
    kind = np.full(new, RANDOM, np.int64)
    kind[: sum(shares.values())] = np.repeat(list(shares), list(shares.values()))
    kind = rng.permutation(kind)
    new_h = rng.integers(0, 2**64, new, dtype=np.uint64)
    source = np.full(new, -1, np.int64)  # in survivor order: kept rows 0..K-1, new rows K..
    # copies of new rows: of a random row before them; one with none before it copies a kept row
    for of_new, of_kept in ((NEAR_NEW, NEAR_KEPT), (FAR_NEW, FAR_KEPT)):
        at = np.flatnonzero(kind == of_new)
        src = _earlier(rng, np.flatnonzero(kind == RANDOM), at)
        kind[at[src < 0]] = of_kept
        source[at[src >= 0]] = kept + src[src >= 0]
    for k in (NEAR_KEPT, FAR_KEPT):
        at = np.flatnonzero(kind == k)
        source[at] = rng.integers(0, kept, len(at))
    source[(kind == BLANK) | (kind == NEAR_BLANK)] = blank_at
    all_h = np.concatenate([kept_h, new_h])
    for kinds, lo, hi in ((PLANTED, 1, bound), (FAR, bound + 1, bound + 4)):
        at = np.flatnonzero(np.isin(kind, kinds) & (kind != BLANK))
        # sources precede their copies (kept, or an earlier random row): they are final here
        new_h[at] = _flip(rng, all_h[source[at]], lo, hi)
    new_h[kind == BLANK] = 0
    image_rows(ids[kept:], exact[kept:], new_h).write_parquet(workdir / "new.parquet")
    return {
        "kept": kept,
        "bound": bound,
        "hashes": np.concatenate([kept_h, new_h]),
        "ids": ids,
        "kind": kind,
        "source": source,
    }


def chance_expected(truth: dict) -> float:
    """Random new rows expected within the bound of some earlier row by chance: each meets the
    K kept rows and, on average, half the new ones; a pair is within b bits with probability
    sum_{i <= b} C(64, i) / 2^64."""
    p = sum(math.comb(64, i) for i in range(truth["bound"] + 1)) / 2.0**64
    n_random = int((truth["kind"] == RANDOM).sum())
    return n_random * (truth["kept"] + len(truth["kind"]) / 2) * p


def score(dups: pl.DataFrame, truth: dict) -> dict:
    """Recall and precision of `dups` (DUP_SCHEMA, as verify_step returns) against `truth`."""
    k, h, bound, kind, source = truth["kept"], truth["hashes"], truth["bound"], truth["kind"], truth["source"]
    order_of = pl.DataFrame({"duplicate_of": truth["ids"], "s": np.arange(len(h), dtype=np.int64)})
    d = dups.join(order_of, on="duplicate_of", how="left")
    if d["s"].null_count():
        raise ValueError("a duplicate_of that is no row of the corpus")
    dup, surv = d["order"].to_numpy(), d["s"].to_numpy()
    got = np.full(len(kind), -1, np.int64)
    got[dup - k] = surv
    # A copy is in its source's cluster (their pair is an edge), whose survivor is its first
    # row: the source, what a new source is reported a duplicate of, or an earlier row the
    # cluster reaches through a pair within the bound by chance.
    src_got = np.where(source >= k, got[np.maximum(source - k, 0)], -1)
    own = np.where(src_got >= 0, src_got, source)
    planted = np.isin(kind, PLANTED)
    found = planted & (got >= 0) & (got <= source)
    # right: within the bound of some earlier row (that row is then in its cluster)
    right = np.bitwise_count(h[dup] ^ h[surv]) <= bound
    for i in np.flatnonzero(~right):  # a few rows: each against all earlier hashes
        right[i] = np.bitwise_count(h[: dup[i]] ^ h[dup[i]]).min() <= bound
    return {
        "reported": len(dup),
        "methods": sorted(set(dups["method"].to_list())),
        "planted": int(planted.sum()),
        "recall": int(found.sum()) / max(int(planted.sum()), 1),
        "via_chance": int((found & (got != own)).sum()),
        "precision": float(right.mean()) if len(dup) else 1.0,
        "wrong": int((~right).sum()),
        "far_reported": int((np.isin(kind, FAR) & (got >= 0)).sum()),
        "far": int(np.isin(kind, FAR).sum()),
        "random_reported": int((kind[dup[right] - k] == RANDOM).sum()),
        "chance_expected": chance_expected(truth),
    }
