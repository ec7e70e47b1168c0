"""Multi-index pHash search (filters.phash_index) against the quadratic all-pairs check it
replaces: random hashes with planted near pairs and skewed buckets (identical blank hashes,
near-blank ones, many hashes sharing one block value), new and existing rows interleaved."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from filters.dedup import components
from filters.phash_index import near_pairs, row_edges, video_edges

BOUND = 6


def _flip(rng: np.random.Generator, h: np.ndarray, max_bits: int) -> np.ndarray:
    """Each hash with 0..max_bits random bits flipped."""
    out = h.copy()
    for i, k in enumerate(rng.integers(0, max_bits + 1, len(h))):
        for bit in rng.choice(64, k, replace=False):
            out[i] ^= np.uint64(1) << np.uint64(bit)
    return out


def _hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    base = rng.integers(0, 2**64, n // 2, dtype=np.uint64)
    parts = [
        base,
        _flip(rng, rng.choice(base, n // 8), BOUND + 3),  # planted pairs, some beyond the bound
        np.zeros(n // 8, np.uint64),  # blank images: one hash many times
        _flip(rng, np.zeros(n // 8, np.uint64), BOUND + 3),  # near-blank
        rng.integers(0, 2**64, n - n // 2 - 3 * (n // 8), dtype=np.uint64) & ~np.uint64(0xFFFF),  # one block value
    ]
    return rng.permutation(np.concatenate(parts))


def _brute_pairs(frames: np.ndarray, has_new: np.ndarray, bound: int) -> set[tuple[int, int]]:
    """Every unordered pair within bound on all frames with a new side, by comparing all pairs."""
    dist = np.zeros((len(frames), len(frames)), np.int64)
    for i in range(frames.shape[1]):
        dist = np.maximum(dist, np.bitwise_count(frames[:, i][:, None] ^ frames[:, i][None, :]))
    a, b = np.nonzero(np.triu(dist <= bound, 1) & (has_new[:, None] | has_new[None, :]))
    return set(zip(a.tolist(), b.tolist(), strict=True))


def _brute_edges(frames: np.ndarray, is_new: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """The quadratic join's edges {(u, v): u < v, v new, every frame within bound}."""
    dist = np.zeros((len(frames), len(frames)), np.int64)
    for i in range(frames.shape[1]):
        dist = np.maximum(dist, np.bitwise_count(frames[:, i][:, None] ^ frames[:, i][None, :]))
    return np.nonzero(np.triu(dist <= bound, 1) & is_new[None, :])


def _check_edges(frames: np.ndarray, is_new: np.ndarray, u: np.ndarray, v: np.ndarray, bound: int) -> int:
    """Every edge is one of the quadratic join's and the clusters are the same; returns the
    number of the quadratic join's edges."""
    bu, bv = _brute_edges(frames, is_new, bound)
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    dist = np.max(np.bitwise_count(frames[lo] ^ frames[hi]), axis=1) if len(lo) else np.zeros(0)
    assert (lo < hi).all() and is_new[hi].all() and (dist <= bound).all(), "an edge the quadratic join lacks"
    assert np.array_equal(components(len(frames), u, v), components(len(frames), bu, bv))
    return len(bu)


@pytest.mark.parametrize("blocks", [None, BOUND + 2])
def test_near_pairs_equal_all_pairs(blocks: int | None) -> None:
    rng = np.random.default_rng(15)
    distinct = np.unique(_hashes(rng, 3000))
    has_new = rng.random(len(distinct)) < 0.6
    a, b = near_pairs(distinct, has_new, BOUND, blocks=blocks)
    found = list(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), strict=True))
    assert len(found) == len(set(found)), "a pair reported by two block combinations"
    want = _brute_pairs(distinct[:, None], has_new, BOUND)
    assert len(want) > 500  # planted pairs and the skewed buckets are there
    assert set(found) == want


def test_row_edges_cluster_like_all_pairs() -> None:
    rng = np.random.default_rng(16)
    hashes = _hashes(rng, 3000)
    for is_new in (rng.random(3000) < 0.5, np.arange(3000) >= 1000, np.ones(3000, bool)):
        for min_cloud in (10**9, 10):  # without and with the blank hub's cloud left out of the search
            u, v = row_edges(hashes, is_new, BOUND, min_cloud=min_cloud)
            quadratic = _check_edges(hashes[:, None], is_new, u, v, BOUND)
            assert len(u) < quadratic / 2  # identical blank hashes: a star of edges, not all their pairs


def test_video_edges_cluster_like_all_pairs() -> None:
    rng = np.random.default_rng(17)
    n = 1200
    frames = np.stack([_hashes(rng, n), _hashes(rng, n), _hashes(rng, n)], axis=1)
    frames[n // 2 :] = _flip(rng, frames[rng.integers(0, n // 2, n - n // 2)].reshape(-1), 4).reshape(-1, 3)
    frames[::7, 0] = 0  # many videos start with a black frame
    is_new = rng.random(n) < 0.7
    u, v = video_edges(pl.Series(frames.tolist(), dtype=pl.List(pl.UInt64)), is_new, BOUND)
    _check_edges(frames, is_new, u, v, BOUND)
    # Different frame counts never match; empty lists never match, not even each other.
    lists = [[1, 2], [1, 2, 3], [1, 2], [], [], [1, 2, 3]]
    u, v = video_edges(pl.Series(lists, dtype=pl.List(pl.UInt64)), np.ones(6, bool), BOUND)
    assert sorted(zip(u.tolist(), v.tolist(), strict=True)) == [(0, 2), (1, 5)]


def test_bounds_at_the_edges() -> None:
    """bound >= 64: every pair is near; bound < 0: none (as the quadratic join's filter)."""
    rng = np.random.default_rng(18)
    h = np.unique(rng.integers(0, 2**64, 40, dtype=np.uint64))
    has_new = np.arange(len(h)) % 3 == 0
    for bound in (64, -1):
        a, b = near_pairs(h, has_new, bound)
        got = set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), strict=True))
        assert got == _brute_pairs(h[:, None], has_new, bound)
