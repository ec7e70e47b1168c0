"""Vectorized splitting of a partition's texts into words, lines and paragraphs.

Every function takes a Utf8 Series of texts (one per document, nulls read as "") and
returns a long frame with `doc` (the row index into that Series, u32) and the piece, in
document order, so statistics become group-bys over one frame for the whole partition.

The word pattern approximates spaCy's blank English tokenizer (which datatrove uses for
its Gopher filters): URLs stay whole, "..." is one token, every other punctuation mark is
its own token, and words keep inner apostrophes, dots and commas ("it's", "3.14", "x.com").
"""

from __future__ import annotations

import numpy as np
import polars as pl

WORD_PATTERN = r"https?://\S+|[\p{L}\p{N}_]+(?:['’.,][\p{L}\p{N}_]+)*|\.\.\.|[^\s\p{L}\p{N}_]"

# Python's str.splitlines() boundaries, folded to "\n" before splitting.
_LINE_BREAKS = r"\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"


def _texts(texts: pl.Series) -> pl.Series:
    return texts.cast(pl.Utf8).fill_null("")


def explode_pieces(pieces: pl.Series) -> pl.DataFrame:
    """A list[str] Series -> long frame (doc, pos, piece); an empty list yields no rows."""
    frame = pl.DataFrame({"piece": pieces}).with_row_index("doc").explode("piece")
    frame = frame.filter(pl.col("piece").is_not_null())
    return frame.with_columns(pl.int_range(pl.len()).over("doc").cast(pl.UInt32).alias("pos"))


def words(texts: pl.Series) -> pl.DataFrame:
    """(doc, pos, piece) for each word token of each text."""
    return explode_pieces(_texts(texts).str.extract_all(WORD_PATTERN))


def splitlines(texts: pl.Series) -> pl.DataFrame:
    """(doc, pos, piece) for each line, with Python's str.splitlines() semantics
    (no trailing empty line; an empty text has no lines)."""
    folded = _texts(texts).str.replace_all(_LINE_BREAKS, "\n").str.replace(r"\n$", "")
    pieces = pl.when(folded == "").then(pl.lit([], dtype=pl.List(pl.Utf8))).otherwise(folded.str.split("\n"))
    return explode_pieces(pl.select(pieces.alias("p")).to_series())


def split_regex(texts: pl.Series, pattern: str, *, strip: bool = False) -> pl.DataFrame:
    """(doc, pos, piece) for `re.split(pattern, text)` (optionally of text.strip())."""
    t = _texts(texts)
    if strip:
        t = t.str.strip_chars()
    # A NUL cannot appear in our texts' pieces after this replacement; it marks the cuts.
    return explode_pieces(t.str.replace_all(pattern, "\x00").str.split("\x00"))


def per_doc(values: pl.DataFrame, n_docs: int, column: str, default: float = 0.0) -> np.ndarray:
    """Scatter a (doc, column) aggregate into a dense array of length n_docs."""
    out = np.full(n_docs, default, dtype=np.float64)
    if values.height:
        out[values["doc"].to_numpy()] = values[column].cast(pl.Float64).fill_null(default).to_numpy()
    return out


_NGRAM_MULTIPLIERS = np.array(
    [
        0x9E3779B97F4A7C15,
        0xBF58476D1CE4E5B9,
        0x94D049BB133111EB,
        0xD6E8FEB86659FD93,
        0xA0761D6478BD642F,
        0xE7037ED1A0B428DB,
        0x8EBC6AF09C88C6E3,
        0x589965CC75374CC3,
        0x1D8E4E27C47D124F,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0x27D4EB2F165667C5,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
        0x2545F4914F6CDD1D,
        0x4F6CDD1D2545F491,
    ],
    dtype=np.uint64,
)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """Finaliser of SplitMix64 (Steele et al. 2014): a bijective, well-mixing uint64 -> uint64."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def ngram_hashes(token_hashes: np.ndarray, doc: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every window of n consecutive tokens that stays inside one document.

    `token_hashes` and `doc` are aligned, with each document's tokens contiguous and in
    order. Returns (start index of each window, its uint64 hash). A window's hash is a
    position-weighted sum of its tokens' hashes, mixed; no Python loop over windows.
    """
    m = len(token_hashes)
    if m < n:
        return np.empty(0, np.int64), np.empty(0, np.uint64)
    starts = np.arange(m - n + 1)
    valid = doc[: m - n + 1] == doc[n - 1 :]
    starts = starts[valid]
    acc = np.zeros(len(starts), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):  # n <= 16 columns, each a full-array numpy operation
            acc += token_hashes[starts + k] * _NGRAM_MULTIPLIERS[k % len(_NGRAM_MULTIPLIERS)]
    return starts, splitmix64(acc ^ np.uint64(n))
