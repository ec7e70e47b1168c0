"""Ragged arrays (one variable-length run of values per row) as flat numpy + lengths.

The tokenizers build a partition's sequences without a Python loop per row: every piece
of a sequence (a text's tokens, an image's code grid, a special token) is a ragged array
over the partition's rows, and `concat_rows` lays the pieces out row by row with one
scatter per piece.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import pyarrow as pa

# A piece: (flat values, lengths per row) or a single token id repeated once per row.
Piece = Union[tuple[np.ndarray, np.ndarray], int]


def offsets_of(lengths: np.ndarray) -> np.ndarray:
    """Return the n+1 offsets of runs with `lengths` (offsets[i]..offsets[i+1] is row i)."""
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def piece_lengths(piece: Piece, n: int) -> np.ndarray:
    """Return the per-row lengths of `piece` over `n` rows."""
    return np.ones(n, dtype=np.int64) if isinstance(piece, (int, np.integer)) else np.asarray(piece[1], dtype=np.int64)


def concat_rows(pieces: list[Piece], n: int, dtype=np.uint32) -> tuple[np.ndarray, np.ndarray]:
    """Return (flat, lengths) where row i is pieces[0][i] + pieces[1][i] + ... (concatenated)."""
    lens = [piece_lengths(p, n) for p in pieces]
    total = np.sum(lens, axis=0) if lens else np.zeros(n, dtype=np.int64)
    out = np.empty(int(total.sum()), dtype=dtype)
    before = offsets_of(total)[:-1].copy()  # where the current piece starts in each row
    for piece, ln in zip(pieces, lens):
        if isinstance(piece, (int, np.integer)):
            out[before] = piece
        else:
            values = np.asarray(piece[0])
            src = offsets_of(ln)[:-1]
            idx = np.repeat(before - src, ln) + np.arange(len(values), dtype=np.int64)
            out[idx] = values
        before += ln
    return out, total


def list_array(flat: np.ndarray, lengths: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    """Return an Arrow list array of `value_type` with runs `lengths` over `flat`."""
    offs = offsets_of(lengths).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offs, pa.int32()), pa.array(flat, value_type))


def flatten_token_lists(token_lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Return (flat uint32, lengths) of tiktoken's list-of-lists output, without a row loop in Python bytecode."""
    from itertools import chain

    lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    flat = np.fromiter(chain.from_iterable(token_lists), dtype=np.uint32, count=int(lengths.sum()))
    return flat, lengths
