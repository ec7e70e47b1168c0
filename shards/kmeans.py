"""k-means in numpy: k-means++ seeding, Lloyd iterations, chunked nearest-centroid search.

Distances use ||x||^2 - 2 x.c + ||c||^2, so the work is one matrix product per chunk of
`CHUNK_ROWS` points (memory: CHUNK_ROWS * k floats). Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

CHUNK_ROWS = 8192
INIT_POINTS_PER_CENTRE = 16


def assign(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (index of the nearest centroid, squared distance to it) for every row of `x`."""
    x = np.asarray(x, dtype=np.float32)
    c = np.asarray(centroids, dtype=np.float32)
    c_sq = np.einsum("ij,ij->i", c, c)
    labels = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x), dtype=np.float32)
    for lo in range(0, len(x), CHUNK_ROWS):
        xb = x[lo : lo + CHUNK_ROWS]
        d = c_sq[None, :] - 2.0 * (xb @ c.T)  # ||x||^2 is constant per row: add it only to the minimum
        j = np.argmin(d, axis=1)
        labels[lo : lo + len(xb)] = j
        dist[lo : lo + len(xb)] = np.maximum(d[np.arange(len(xb)), j] + np.einsum("ij,ij->i", xb, xb), 0.0)
    return labels, dist


def _plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007), one distance update per new centre."""
    centres = np.empty((k, x.shape[1]), dtype=np.float32)
    x_sq = np.einsum("ij,ij->i", x, x)

    def sq_dist(c: np.ndarray) -> np.ndarray:  # one mat-vec product, not an (n, d) temporary
        return np.maximum(x_sq - 2.0 * (x @ c) + float(c @ c), 0.0)

    centres[0] = x[rng.integers(len(x))]
    best = sq_dist(centres[0])
    for i in range(1, k):
        total = float(best.sum(dtype=np.float64))
        j = (
            int(rng.integers(len(x)))
            if total <= 0
            else int(np.searchsorted(np.cumsum(best, dtype=np.float64), rng.random() * total))
        )
        centres[i] = x[min(j, len(x) - 1)]
        best = np.minimum(best, sq_dist(centres[i]))
    return centres


def fit(x: np.ndarray, k: int, iters: int, seed: int) -> tuple[np.ndarray, dict]:
    """Fit `k` centroids to the rows of `x`; return (centroids float32 [k, d], fit facts).

    With fewer distinct points than `k`, some centroids repeat (the vocabulary keeps its
    declared size, so a layout never depends on how much data there was).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if len(x) == 0:
        raise ValueError("k-means needs at least one point")
    rng = np.random.default_rng(seed)
    # seed on a subsample: k-means++ is k sequential passes, and INIT_POINTS_PER_CENTRE
    # candidates per centre already spread the seeds over the data (Lloyd then uses all points)
    init = (
        x
        if len(x) <= INIT_POINTS_PER_CENTRE * k
        else x[np.sort(rng.choice(len(x), INIT_POINTS_PER_CENTRE * k, replace=False))]
    )
    c = _plus_plus(init, k, rng)
    for _ in range(iters):
        labels, dist = assign(x, c)
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros(c.shape, dtype=np.float64)
        order = np.argsort(labels, kind="stable")
        nz = np.flatnonzero(counts)
        starts = np.concatenate([[0], np.cumsum(counts[nz])[:-1]])
        sums[nz] = np.add.reduceat(x[order].astype(np.float64), starts, axis=0)
        empty = counts == 0
        c = np.where(empty[:, None], c, (sums / np.maximum(counts, 1)[:, None]).astype(np.float32))
        if empty.any():  # move empty centres onto the points that are worst served
            far = np.argsort(-dist, kind="stable")[: int(empty.sum())]
            c[np.flatnonzero(empty)[: len(far)]] = x[far]
    labels, dist = assign(x, c)
    # mse per dimension (per pixel channel / per mel band), comparable across patch sizes
    return c.astype(np.float32), {"points": int(len(x)), "iters": iters, "mse": float(dist.mean()) / x.shape[1]}
