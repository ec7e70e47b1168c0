"""One group of tokenized rows before it becomes SHARD_ROW Arrow columns.

Every tokenizer (text, image, audio, video, trace) returns an `Encoded`: the input row
numbers it covers, their sequences as a ragged array, and their spans as a ragged array
of (kind, start, length, loss). Spans of a row tile its sequence exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from distillery.tables import SPAN
from shards.ragged import offsets_of

# which SHARD_ROW counter a span kind adds to
BUCKET = {
    "text": "text",
    "prompt": "text",
    "reasoning": "text",
    "answer": "text",
    "image": "image",
    "audio": "audio",
    "video": "video",
}


@dataclass
class Encoded:
    rows: np.ndarray  # int64 input row numbers
    tokens: np.ndarray  # uint32 flat
    lengths: np.ndarray  # int64 per row
    span_kind: np.ndarray  # str, flat over spans
    span_start: np.ndarray  # int32
    span_length: np.ndarray  # int32
    span_loss: np.ndarray  # bool
    span_counts: np.ndarray  # int64 spans per row
    text_bytes: np.ndarray | None = None  # int64 per row
    quarantine: list[tuple[int, str, str]] = field(default_factory=list)  # (row, reason, message)
    rejects: list[tuple[int, str, float]] = field(default_factory=list)  # (row, rule, value)
    stats: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> "Encoded":
        z = np.zeros(0, np.int64)
        return cls(
            z,
            np.zeros(0, np.uint32),
            z,
            np.zeros(0, object),
            z.astype(np.int32),
            z.astype(np.int32),
            np.zeros(0, bool),
            z,
        )


def spans_from_pieces(n: int, kinds: list[str], losses: list[bool], lengths: list[np.ndarray]) -> tuple:
    """Return flat span columns for `n` rows that each have the same span kinds, one length per kind."""
    k = len(kinds)
    lens = np.stack([np.asarray(x, np.int64) for x in lengths], axis=1) if k else np.zeros((n, 0), np.int64)
    starts = np.cumsum(lens, axis=1) - lens
    return (
        np.tile(np.array(kinds, dtype=object), n),
        starts.reshape(-1).astype(np.int32),
        lens.reshape(-1).astype(np.int32),
        np.tile(np.array(losses, dtype=bool), n),
        np.full(n, k, dtype=np.int64),
    )


def counters(enc: Encoded) -> dict[str, np.ndarray]:
    """Return per-row n_text/image/audio/video_tokens summed from the spans by kind."""
    n = len(enc.rows)
    row_of_span = np.repeat(np.arange(n), enc.span_counts)
    out = {}
    for bucket in ("text", "image", "audio", "video"):
        kinds = [k for k, b in BUCKET.items() if b == bucket]
        mask = np.isin(enc.span_kind, kinds)
        out[f"n_{bucket}_tokens"] = np.bincount(row_of_span[mask], weights=enc.span_length[mask], minlength=n).astype(
            np.int64
        )
    return out


def spans_array(enc: Encoded) -> pa.ListArray:
    """Return the SPAN list column of `enc`."""
    structs = pa.StructArray.from_arrays(
        [
            pa.array(enc.span_kind.tolist(), pa.string()),
            pa.array(enc.span_start, pa.int32()),
            pa.array(enc.span_length, pa.int32()),
            pa.array(enc.span_loss, pa.bool_()),
        ],
        fields=list(SPAN),
    )
    return pa.ListArray.from_arrays(pa.array(offsets_of(enc.span_counts).astype(np.int32)), structs)


def concat_encoded(parts: list[Encoded]) -> Encoded:
    """Return the parts as one group (row order as given; quarantine/rejects/stats merged)."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return Encoded.empty()
    stats: dict[str, int] = {}
    for p in parts:
        for key, v in p.stats.items():
            stats[key] = stats.get(key, 0) + int(v)
    tb = [p.text_bytes if p.text_bytes is not None else np.zeros(len(p.rows), np.int64) for p in parts]
    return Encoded(
        np.concatenate([p.rows for p in parts]),
        np.concatenate([p.tokens for p in parts]),
        np.concatenate([p.lengths for p in parts]),
        np.concatenate([p.span_kind for p in parts]),
        np.concatenate([p.span_start for p in parts]),
        np.concatenate([p.span_length for p in parts]),
        np.concatenate([p.span_loss for p in parts]),
        np.concatenate([p.span_counts for p in parts]),
        np.concatenate(tb),
        [q for p in parts for q in p.quarantine],
        [r for p in parts for r in p.rejects],
        stats,
    )
