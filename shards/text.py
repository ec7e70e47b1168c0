"""Text and code rows: tiktoken's batch encoder, then <|eos|>.

A sample is `tokens(text) <|eos|>` with one span ("text", loss True) over all of it.
Text is encoded with `encode_ordinary` semantics: a literal "<|endoftext|>" in the data is
plain text, never tiktoken's special id. Empty texts are rejected (rule empty_text).
"""

from __future__ import annotations

import numpy as np

from distillery.encoding import get_encoding
from shards.encoded import Encoded, spans_from_pieces
from shards.ragged import concat_rows, flatten_token_lists

BATCH_TEXTS = 4096  # bounds the list-of-Python-ints tiktoken returns (~36 bytes per token)


def encode_texts(texts: list[str], encoding: str, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (flat uint32 tokens, lengths) of `texts`, encoded in batches with `threads` threads."""
    enc = get_encoding(encoding)
    flats, lens = [np.zeros(0, np.uint32)], [np.zeros(0, np.int64)]
    for lo in range(0, len(texts), BATCH_TEXTS):
        f, ln = flatten_token_lists(enc.encode_ordinary_batch(texts[lo : lo + BATCH_TEXTS], num_threads=threads))
        flats.append(f)
        lens.append(ln)
    return np.concatenate(flats), np.concatenate(lens)


def tokenize_texts(rows: np.ndarray, texts: list, spec: dict, threads: int) -> Encoded:
    """Tokenize text/code rows (`texts[i]` belongs to input row `rows[i]`)."""
    empty = np.array([not isinstance(t, str) or t == "" for t in texts], dtype=bool)
    keep = ~empty
    kept_texts = [t for t, k in zip(texts, keep) if k]
    flat, lengths = encode_texts(kept_texts, spec["encoding"], threads)
    n = len(kept_texts)
    eos = spec["vocab"]["special"]["<|eos|>"]
    tokens, total = concat_rows([(flat, lengths), eos], n)
    kinds, starts, lens, loss, counts = spans_from_pieces(n, ["text"], [True], [total])
    text_bytes = np.fromiter((len(t.encode("utf-8")) for t in kept_texts), dtype=np.int64, count=n)
    enc = Encoded(rows[keep], tokens, total, kinds, starts, lens, loss, counts, text_bytes)
    enc.rejects = [(int(r), "empty_text", 0.0) for r in rows[empty]]
    return enc
