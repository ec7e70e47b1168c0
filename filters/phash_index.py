"""Near pairs of perceptual hashes within a Hamming bound, found without a quadratic join.

Contract:
  near_pairs(frames, has_new, bound) -> (a, b): every unordered pair of rows of `frames` (one
      row per distinct hash tuple, F uint64 frame hashes each) whose frames are ALL within
      `bound` bits of each other position by position, and at least one of which `has_new`:
      exactly the pairs a quadratic join with the same filter finds, each once.
  row_edges(frames, is_new, bound) -> (u, v): edges over the rows (in survivor order) whose
      connected components equal those of the quadratic join's edges {(u, v): u < v, v new,
      all frames within bound}, so clustering them gives the same clusters and survivors.
  video_edges(frame_lists, is_new, bound): row_edges per number of sampled frames.

How (multi-index hashing, Norouzi et al. 2012, "Fast search in Hamming space with multi-index
hashing", generalised): the 64 bits of the indexed frame are cut into m contiguous blocks,
m > bound. Two hashes within `bound` differ in at most `bound` blocks, so they agree exactly on
at least k = m - bound blocks (pigeonhole), hence on every block of at least one k-block
combination. Each combination is one independent equi-join on (hash & mask of its blocks) in
DuckDB, verified on the full distance of every frame; a pair is reported only by its first
agreeing combination (its first k agreeing blocks), so the combinations' outputs are disjoint
and their union is exact. One combination is one bounded task (DuckDB memory_limit, spilling
to a temporary folder): a caller can run `combination_pairs` for each of `combinations(...)`
on `index_table(...)` anywhere and concatenate. m is picked per call
by a cost model (`choose_blocks`): more blocks mean more joins but fewer candidates each.

Skew: identical hashes (blank images, black frames) are collapsed before the index, so the
joins see each distinct hash once and `row_edges` connects identical rows with one edge each
(a star), never all pairs. Many distinct hashes sharing a block value only make that block's
join larger (it streams and spills, memory stays bounded); the video index is built on the
frame position with the most distinct hashes, so videos that all start black do not share
one bucket. A dense cloud of DISTINCT near-identical hashes (thousands of near-blank images,
each a few bits from blank) is within the bound of itself: its exact pairs grow as its size
squared and most of it shares every combination's bucket. Around the class with the most
rows (the blank hub) those inner pairs are not searched at all (row_edges: they cannot change
a cluster), so the cloud costs one candidate per member and bucket neighbour. A dense cloud
with no heavy identical centre is still searched pair by pair (quadratic in its size, as its
exact answer is).
"""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

BITS = 64
# Cost model of one combination's join, in "row" units, measured here (DuckDB 2.0, 1 M random
# hashes, one thread): scanning and hashing a row of either side costs ~70 ns of CPU, about as
# much as producing and verifying one candidate pair; a query's fixed cost (planning, thread
# start: ~20 ms on the loaded 2-core development machine) is about that of 100,000 rows.
QUERY_ROWS = 100_000
MAX_COMBINATIONS = 5_000  # beyond this the per-query cost dominates whatever the candidates
DEFAULT_MEMORY_LIMIT = "1GB"
# A hub's cloud smaller than this is searched like the rest: its inner pairs (< 500,000) cost
# less than the second join per combination that skipping them takes.
MIN_CLOUD = 1_000


def block_masks(m: int) -> list[int]:
    """m contiguous blocks of the 64 bits (sizes differ by at most one), as bit masks."""
    edges = [round(i * BITS / m) for i in range(m + 1)]
    return [((1 << (hi - lo)) - 1) << lo for lo, hi in zip(edges, edges[1:], strict=False)]


def choose_blocks(bound: int, n_all: int, n_new: int) -> int:
    """The number of blocks m (> bound) with the least estimated work for uniform hashes:
    C(m, m - bound) joins, each scanning n_all + n_new rows and producing
    n_all * n_new / 2^(bits of k blocks) candidate pairs."""
    best, best_cost = bound + 1, math.inf
    for m in range(bound + 1, BITS + 1):
        k = m - bound
        combos = math.comb(m, k)
        if combos > MAX_COMBINATIONS and best_cost < math.inf:
            break
        cost = combos * (n_all + n_new + QUERY_ROWS + n_all * n_new / 2.0 ** (BITS * k / m))
        if cost < best_cost:
            best, best_cost = m, cost
    return best


def combinations(bound: int, n_all: int, n_new: int, blocks: int | None = None) -> list[tuple[int, ...]]:
    """The block combinations to join, each an independent task for `combination_pairs`;
    block i of combination c is block i of block_masks(number_of_blocks(c, bound))."""
    if bound >= BITS:
        return [()]  # no blocks: every pair is a candidate
    m = blocks or choose_blocks(bound, n_all, n_new)
    if m <= bound or m > BITS:
        raise ValueError(f"blocks must be in ({bound}, {BITS}], got {m}")
    return list(itertools.combinations(range(m), m - bound))


def number_of_blocks(combo: tuple[int, ...], bound: int) -> int:
    """m of a combination of k = m - bound blocks."""
    return len(combo) + bound if combo else BITS


def index_table(frames: np.ndarray, has_new: np.ndarray) -> pa.Table:
    """The table `combination_pairs` joins: cls (row number), has_new, f0..f{F-1}."""
    table = {"cls": np.arange(len(frames), dtype=np.int64), "has_new": np.asarray(has_new, bool)}
    return pa.table(table | {f"f{i}": frames[:, i] for i in range(frames.shape[1])})


def index_frame(frames: np.ndarray) -> int:
    """The frame position to index: the one with the most distinct hashes, so the least
    skewed buckets (videos that all start with a black frame)."""
    return max(range(frames.shape[1]), key=lambda i: (len(np.unique(frames[:, i])), -i))


def combination_pairs(
    con: duckdb.DuckDBPyConnection, combo: tuple[int, ...], bound: int, index: int, nframes: int, left: str = "t"
) -> tuple[np.ndarray, np.ndarray]:
    """One combination's pairs from table `t` (index_table) in `con`: agree on the
    combination's blocks of frame `index`, every frame within bound, and no earlier block
    outside the combination agrees (so this is the pair's first agreeing combination).
    left="q": pairs between table `q` (cloud rows, all new, none in `t`) and `t` instead."""
    masks = block_masks(number_of_blocks(combo, bound))
    key = sum(masks[j] for j in combo)
    earlier = [masks[j] for j in range(combo[-1]) if j not in combo] if combo else []
    checks = [f"bit_count(xor(a.f{i}, b.f{i})) <= {bound}" for i in range(nframes)]
    checks += [f"(xor(a.f{index}, b.f{index}) & {mk}::UBIGINT) <> 0" for mk in earlier]
    if left == "t":  # each unordered pair once, at least one side new
        checks.append("b.has_new and (not a.has_new or a.cls < b.cls)")
    found = con.execute(
        f"""select a.cls as a, b.cls as b from {left} as a join t as b
        on (a.f{index} & {key}::UBIGINT) = (b.f{index} & {key}::UBIGINT)
        where {" and ".join(checks)}"""
    ).fetchnumpy()
    return np.asarray(found["a"], np.int64), np.asarray(found["b"], np.int64)


def near_pairs(
    frames: np.ndarray,
    has_new: np.ndarray,
    bound: int,
    blocks: int | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    cloud: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, b) of rows of `frames` (n x F uint64, rows distinct) within `bound` on every
    frame, at least one side `has_new`; each unordered pair once (see the module docstring).
    `blocks` overrides the cost model's m (must exceed bound). `cloud` (a mask of rows with
    has_new): pairs with both sides in it are left out, and never become candidates. Runs
    every combination in one DuckDB limited to `memory_limit` (spilling to a temporary folder)."""
    frames = np.asarray(frames, dtype=np.uint64).reshape(len(has_new), -1)
    empty = np.zeros(0, np.int64)
    if len(frames) < 2 or not has_new.any() or bound < 0:
        return empty, empty
    combos = combinations(bound, len(frames), int(has_new.sum()), blocks)
    index = index_frame(frames)
    spill = tempfile.mkdtemp(prefix="phash_index_")
    con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": spill})
    try:
        table = index_table(frames, has_new)
        cloud = np.zeros(len(frames), bool) if cloud is None else np.asarray(cloud, bool)
        con.register("t", table.filter(pa.array(~cloud)))
        con.register("q", table.filter(pa.array(cloud)))
        sides = ["t", "q"] if cloud.any() else ["t"]
        found = [combination_pairs(con, c, bound, index, frames.shape[1], side) for c in combos for side in sides]
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


def row_edges(
    frames: np.ndarray, is_new: np.ndarray, bound: int, blocks: int | None = None, min_cloud: int = MIN_CLOUD
) -> tuple[np.ndarray, np.ndarray]:
    """Edges over rows 0..n-1 (row order = survivor order) with the same connected components
    as the quadratic join's {(u, v): u < v, v new, every frame within bound}; every returned
    edge is one of those. O(rows + near pairs of distinct hashes) edges, whatever the skew.

    Why it is equivalent: rows with one hash form a class; let L be the class's last new row.
    Each row x < L has the edge (x, L), so {x <= L} is one component; rows after L (all
    existing; a class without new rows has only such "tail" rows) have no edge inside the
    class. For two near classes a, b: if both have new rows, (L_a, L_b) joins them; a tail
    row x of a is joined to every near class b with L_b > x. Those classes nest as x grows,
    so x joins the one with the largest L_b, and the first tail row of a joins all of them.
    The hub's cloud (when it has >= min_cloud classes): the class with the most rows (blank
    images), when it has new rows, and the classes within the bound of it whose last row is
    new (no tail rows). Pairs inside the cloud are not searched: both sides are joined to
    the hub by (L_q, L_hub) already, and they have no tail rows that could need them."""
    frames = np.asarray(frames, dtype=np.uint64).reshape(len(is_new), -1)
    n = len(frames)
    empty = np.zeros(0, np.int64)
    if n < 2:
        return empty, empty
    is_new = np.asarray(is_new, bool)
    flat = frames[:, 0] if frames.shape[1] == 1 else frames
    _, cls = np.unique(flat, axis=0, return_inverse=True)
    cls = cls.reshape(-1)
    nc = int(cls.max()) + 1
    pos = np.arange(n, dtype=np.int64)
    last_new = np.full(nc, -1, np.int64)
    np.maximum.at(last_new, cls[is_new], pos[is_new])
    class_frames = _class_frames(frames, cls, nc)
    cloud = _hub_cloud(class_frames, cls, last_new, bound, min_cloud)
    pa_, pb = near_pairs(class_frames, last_new >= 0, bound, blocks, cloud=cloud)
    lc = last_new[cls]
    inside = pos < lc
    edges_u, edges_v = [pos[inside]], [lc[inside]]
    both = (last_new[pa_] >= 0) & (last_new[pb] >= 0)
    edges_u.append(last_new[pa_[both]])
    edges_v.append(last_new[pb[both]])
    tail = pos > lc
    da, db = np.concatenate([pa_, pb]), np.concatenate([pb, pa_])
    near_last = np.full(nc, -1, np.int64)
    np.maximum.at(near_last, da, last_new[db])
    reach = tail & (near_last[cls] > pos)
    edges_u.append(pos[reach])
    edges_v.append(near_last[cls[reach]])
    first_tail = np.full(nc, n, np.int64)
    np.minimum.at(first_tail, cls[tail], pos[tail])
    joins = last_new[db] > first_tail[da]
    edges_u.append(first_tail[da[joins]])
    edges_v.append(last_new[db[joins]])
    return np.concatenate(edges_u), np.concatenate(edges_v)


def _hub_cloud(
    class_frames: np.ndarray, cls: np.ndarray, last_new: np.ndarray, bound: int, min_cloud: int
) -> np.ndarray | None:
    """The hub's cloud (see row_edges) as a mask of classes, or None when it is small."""
    counts = np.bincount(cls, minlength=len(class_frames))
    hub = int(np.argmax(np.where(last_new >= 0, counts, -1)))
    if last_new[hub] < 0:
        return None
    last_row = np.full(len(class_frames), -1, np.int64)
    np.maximum.at(last_row, cls, np.arange(len(cls)))
    near = np.bitwise_count(class_frames ^ class_frames[hub]).max(axis=1) <= bound
    cloud = near & (last_new >= 0) & (last_row == last_new)
    cloud[hub] = False
    return cloud if cloud.sum() >= min_cloud else None


def _class_frames(frames: np.ndarray, cls: np.ndarray, nc: int) -> np.ndarray:
    out = np.empty((nc, frames.shape[1]), np.uint64)
    out[cls] = frames
    return out


def video_edges(frame_lists: pl.Series, is_new: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """row_edges among videos with the same number of sampled frames (only those can match,
    position by position). Empty lists never match (as in the quadratic join); lists with a
    null frame are left out (dedup_keys never writes one)."""
    lens = frame_lists.list.len().to_numpy()
    ok = ~frame_lists.list.eval(pl.element().is_null()).list.any().to_numpy()
    us, vs = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for nf in np.unique(lens[ok & (lens > 0)]):
        rows = np.flatnonzero(ok & (lens == nf))
        if len(rows) < 2:
            continue
        frames = frame_lists.gather(rows).list.to_array(int(nf)).to_numpy().astype(np.uint64)
        u, v = row_edges(frames, np.asarray(is_new)[rows], bound)
        us.append(rows[u])
        vs.append(rows[v])
    return np.concatenate(us), np.concatenate(vs)
