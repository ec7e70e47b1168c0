"""MinHash signatures and LSH band hashes, computed for a whole partition with numpy.

Text is normalized (lowercase, punctuation and symbols to spaces, whitespace folded),
split into words, and shingled into word n-grams (5 by default, as FineWeb / datatrove).
Word hashes are `string_hash64` (a polynomial hash of the UTF-8 bytes, vectorized over
Arrow buffers), so keys are stable across runs and library versions; n-gram hashes combine word
hashes by position (`textsplit.ngram_hashes`). A text with fewer words than n has one
shingle: all its words. An empty text has no signature (null bands).

The k-th permutation is h_k(x) = a_k * x + b_k mod 2^64 with a_k odd; a_k, b_k are
derived from the seed with SplitMix64 (no RNG stream whose output could change). The
minimum per document is a `np.minimum.reduceat` over the document-ordered shingles, one
numpy pass per permutation. Band b hashes rows [b*r, (b+1)*r) of the signature.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from filters.textsplit import explode_pieces, ngram_hashes, splitmix64

_MULT = np.array(
    [
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0x27D4EB2F165667C5,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
        0x94D049BB133111EB,
        0xBF58476D1CE4E5B9,
    ],
    dtype=np.uint64,
)


def normalize(texts: pl.Series) -> pl.Series:
    """Lowercase, punctuation/symbols to spaces, whitespace folded and trimmed."""
    return (
        texts.cast(pl.Utf8).fill_null("").str.to_lowercase().str.replace_all(r"[\p{P}\p{S}\s]+", " ").str.strip_chars()
    )


_P = np.uint64(0x100000001B3)  # FNV-64 prime (odd, so invertible mod 2^64)
_P_INV = np.uint64(pow(0x100000001B3, -1, 2**64))
_CHUNK_BYTES = 1 << 22


def string_hash64(values: pl.Series) -> np.ndarray:
    """A stable 64-bit hash of each string's UTF-8 bytes: the polynomial sum of b_j * P^j
    (mod 2^64) mixed by SplitMix64 with the length. Computed from Arrow's offsets and data
    buffers with prefix sums, so there is no Python loop per string, and the value depends
    on nothing but the bytes (not on a library's hash seed or version)."""
    arr = values.cast(pl.Utf8).fill_null("").to_arrow(compat_level=pl.CompatLevel.oldest())
    arr = arr.combine_chunks() if hasattr(arr, "combine_chunks") else arr
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    out = np.empty(n, dtype=np.uint64)
    lo = 0
    with np.errstate(over="ignore"):
        while lo < n:  # chunks of ~4 MiB of text keep the prefix arrays small
            hi = int(np.searchsorted(offsets, offsets[lo] + _CHUNK_BYTES, side="right")) - 1
            hi = min(max(hi, lo + 1), n)
            a, b = int(offsets[lo]), int(offsets[hi])
            seg = data[a:b].astype(np.uint64)
            pw = np.full(len(seg), _P, dtype=np.uint64)
            if len(seg):
                pw[0] = 1
            pw = np.cumprod(pw, dtype=np.uint64)
            prefix = np.concatenate([[np.uint64(0)], np.cumsum(seg * pw, dtype=np.uint64)])
            inv = np.full(len(seg) + 1, _P_INV, dtype=np.uint64)
            inv[0] = 1
            inv = np.cumprod(inv, dtype=np.uint64)
            starts = offsets[lo:hi] - a
            ends = offsets[lo + 1 : hi + 1] - a
            h = (prefix[ends] - prefix[starts]) * inv[starts]
            out[lo:hi] = splitmix64(h ^ (ends - starts).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
            lo = hi
    return out


def word_hashes(words: pl.Series) -> np.ndarray:
    """`string_hash64` of each word, computed once per distinct word of the partition
    (Polars' in-process hash only groups equal words; it never leaves this function)."""
    h0 = words.hash(seed=0)
    firsts = pl.DataFrame({"h0": h0}).with_row_index("i").group_by("h0").agg(pl.col("i").first())
    stable = pl.Series(string_hash64(words.gather(firsts["i"])), dtype=pl.UInt64)
    return h0.replace_strict(firsts["h0"], stable, return_dtype=pl.UInt64).to_numpy()


def shingles(norm: pl.Series, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(doc index, shingle hash) for all documents, in document order."""
    w = explode_pieces(norm.str.split(" ")).filter(pl.col("piece") != "")
    doc = w["doc"].to_numpy().astype(np.int64)
    wh = word_hashes(w["piece"])
    starts, g = ngram_hashes(wh, doc, n)
    sdoc = doc[starts]
    counts = np.bincount(doc, minlength=len(norm))
    short = np.flatnonzero((counts > 0) & (counts < n))
    if len(short):  # one shingle of all the words of a short document
        sh = string_hash64(norm.gather(short))
        sdoc = np.concatenate([sdoc, short])
        g = np.concatenate([g, splitmix64(sh ^ np.uint64(0xA5A5A5A5A5A5A5A5))])
        order = np.argsort(sdoc, kind="stable")
        sdoc, g = sdoc[order], g[order]
    return sdoc, g


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(num_perm, dtype=np.uint64) + np.uint64(seed) * np.uint64(1_000_003)
    a = splitmix64(k * np.uint64(2) + np.uint64(1)) | np.uint64(1)
    b = splitmix64(k * np.uint64(2) + np.uint64(2))
    return a, b


def signatures(doc: np.ndarray, sh: np.ndarray, n_docs: int, num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(signatures uint64[n_docs, num_perm], has_signature bool[n_docs]).

    One in-place multiply-add over all the partition's shingles per permutation, reduced per
    document with `np.minimum.reduceat` (measured faster here than (block x perm) matrices).
    """
    sig = np.full((n_docs, num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    has = np.zeros(n_docs, dtype=bool)
    if len(sh) == 0:
        return sig, has
    starts = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]])
    docs = doc[starts]
    has[docs] = True
    a, b = permutations(num_perm, seed)
    tmp = np.empty_like(sh)
    with np.errstate(over="ignore"):
        for k in range(num_perm):
            np.multiply(sh, a[k], out=tmp)
            tmp += b[k]
            sig[docs, k] = np.minimum.reduceat(tmp, starts)
    return sig, has


def band_hashes(sig: np.ndarray, num_bands: int, rows: int) -> np.ndarray:
    """uint64[n_docs, num_bands]: hash of each band's rows of the signature."""
    out = np.zeros((sig.shape[0], num_bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for b in range(num_bands):
            acc = np.full(sig.shape[0], np.uint64(b), dtype=np.uint64)
            for j in range(rows):
                acc = acc + sig[:, b * rows + j] * _MULT[j % len(_MULT)]
            out[:, b] = splitmix64(acc)
    return out


def bottom_k(doc: np.ndarray, sh: np.ndarray, n_docs: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per document, its k smallest distinct shingle hashes truncated to their top 32 bits,
    ascending. Returns (offsets int64[n_docs + 1], values uint32) for an Arrow list column.
    One sort of (doc << 32 | value) keys for the partition; no loop per document."""
    key = np.sort((doc.astype(np.uint64) << np.uint64(32)) | (sh >> np.uint64(32)))
    key = key[np.r_[True, key[1:] != key[:-1]]]
    d = (key >> np.uint64(32)).astype(np.int64)
    v = (key & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    start = np.r_[True, d[1:] != d[:-1]]
    group_start = np.maximum.accumulate(np.where(start, np.arange(len(d)), 0))
    keep = (np.arange(len(d)) - group_start) < k
    d, v = d[keep], v[keep]
    counts = np.bincount(d, minlength=n_docs)
    return np.r_[0, np.cumsum(counts)].astype(np.int64), v
