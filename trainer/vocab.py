"""The compact vocabulary: train on only the token ids the shards use.

The shard token space is wide: cl100k's 100,277 text ids, the special ids, then each media
codebook. A tiny model (n_embd=64) spends almost all its parameters and most of its CPU time
in the 100k-row embedding and the 100k-way softmax, although a small corpus uses a few
thousand of those ids. So the trainer keeps only the ids that occur in the shard dir (both
splits, so that evaluation never meets an id the model cannot name) plus every special id
(the model must be able to emit `<|eos|>` and the media delimiters), and renumbers them
densely in increasing order: compact id i stands for original id `vocab[i]`.

`vocab` (an int64 tensor) is saved in every checkpoint; sampling maps generated compact ids
back through it, and anything fed to the model maps forward through `remap_table`. With
`compact_vocab=False` the vocabulary is the identity over the whole token space.
"""

from __future__ import annotations

import numpy as np

from trainer.shardset import ShardIndex


def compact_vocabulary(index: ShardIndex, compact: bool = True) -> np.ndarray:
    """Return the sorted original ids the model's vocabulary consists of."""
    size = index.manifest.vocab_size
    if not compact:
        return np.arange(size, dtype=np.int64)
    keep = index.seen.copy()
    specials = np.array(list(index.manifest.special.values()), dtype=np.int64)
    keep[specials[(specials >= 0) & (specials < size)]] = True
    return np.flatnonzero(keep).astype(np.int64)


def remap_table(vocab: np.ndarray, size: int) -> np.ndarray:
    """original id -> compact id, as a lookup array over the whole token space (-1: not kept)."""
    table = np.full(size, -1, dtype=np.int64)
    table[vocab] = np.arange(len(vocab), dtype=np.int64)
    return table
