"""MinHash signatures and LSH band hashes, computed for a whole partition with numpy.

Text is normalized (lowercase, punctuation and symbols to spaces, whitespace folded),
split into words, and shingled into word n-grams (5 by default, as FineWeb / datatrove).
Word hashes are the low 64 bits of MD5 (computed in DuckDB on the partition's distinct
words), so keys are stable across runs and library versions; n-gram hashes combine word
hashes by position (`textsplit.ngram_hashes`). A text with fewer words than n has one
shingle: all its words. An empty text has no signature (null bands).

The k-th permutation is h_k(x) = a_k * x + b_k mod 2^64 with a_k odd; a_k, b_k are
derived from the seed with SplitMix64 (no RNG stream whose output could change). The
minimum per document is a `np.minimum.reduceat` over the document-ordered shingles, one
numpy pass per permutation. Band b hashes rows [b*r, (b+1)*r) of the signature.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from filters.textsplit import explode_pieces, ngram_hashes, splitmix64

_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5,
                  0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9],
                 dtype=np.uint64)


def normalize(texts: pl.Series) -> pl.Series:
    """Lowercase, punctuation/symbols to spaces, whitespace folded and trimmed."""
    return (texts.cast(pl.Utf8).fill_null("").str.to_lowercase()
            .str.replace_all(r"[\p{P}\p{S}]", " ").str.replace_all(r"\s+", " ").str.strip_chars())


def md5_64(values: pl.Series) -> np.ndarray:
    """Low 64 bits of MD5 of each string (DuckDB, over the distinct values only)."""
    uniq = pl.DataFrame({"v": values.unique()})
    hashed = duckdb.sql(
        "select v, (md5_number(v) & 18446744073709551615::UHUGEINT)::UBIGINT as h from uniq"
    ).pl()
    return (pl.DataFrame({"v": values}).join(hashed, on="v", how="left", maintain_order="left")["h"]
            .to_numpy().astype(np.uint64))


def shingles(norm: pl.Series, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(doc index, shingle hash) for all documents, in document order."""
    w = explode_pieces(norm.str.split(" ")).filter(pl.col("piece") != "")
    doc = w["doc"].to_numpy().astype(np.int64)
    wh = md5_64(w["piece"])
    starts, g = ngram_hashes(wh, doc, n)
    sdoc = doc[starts]
    counts = np.bincount(doc, minlength=len(norm))
    short = np.flatnonzero((counts > 0) & (counts < n))
    if len(short):  # one shingle of all the words of a short document
        sh = md5_64(norm.gather(short))
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
    """(signatures uint64[n_docs, num_perm], has_signature bool[n_docs])."""
    sig = np.full((n_docs, num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    has = np.zeros(n_docs, dtype=bool)
    if len(sh) == 0:
        return sig, has
    starts = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]])
    docs = doc[starts]
    has[docs] = True
    a, b = permutations(num_perm, seed)
    with np.errstate(over="ignore"):
        for k in range(num_perm):  # one vectorized pass over every shingle per permutation
            sig[docs, k] = np.minimum.reduceat(sh * a[k] + b[k], starts)
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
