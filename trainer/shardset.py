"""A shard directory, read for training: its manifest, an index of its rows, and row groups.

A shard dir holds Parquet files with the `distillery.tables.SHARD_ROW` schema and a
`manifest.json` (written last). The trainer relies on the manifest's `vocab.size`,
`vocab.ranges`, `vocab.special` (at least `<|eos|>`) and `shards[].file`, nothing more.

`build_index` makes one pass over the shards, a row group at a time, and keeps only small
per-row facts: where the row is, its length, its split, its media spans, plus the set of
token ids seen (for the compact vocabulary). `load_group` later decodes one row group into
flat per-token arrays (token, loss flag, span kind, text bytes) for the loader. Both are
vectorised over the row group with pyarrow compute and numpy; nothing loops over rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Span kinds as small integer codes, so a batch carries one int8 per token. "none" is a token
# no span covers (and padding); "other" is a span kind this trainer does not know.
KINDS = ("none", "text", "prompt", "reasoning", "answer", "image", "audio", "video", "other")
KIND_CODE = {k: i for i, k in enumerate(KINDS)}
SPLITS = ("train", "val")
MEDIA_CODES = np.array([KIND_CODE["image"], KIND_CODE["audio"], KIND_CODE["video"]], dtype=np.int8)


@dataclass(frozen=True)
class Manifest:
    vocab_size: int
    ranges: dict[str, tuple[int, int]]  # name -> (start, length)
    special: dict[str, int]
    files: list[Path]
    raw: dict = field(repr=False)

    @property
    def eos(self) -> int:
        return self.special["<|eos|>"]

    @property
    def pad(self) -> int:
        """The id padding uses: `<|pad|>` when the vocabulary has one, else `<|eos|>`."""
        return self.special.get("<|pad|>", self.eos)


def read_manifest(shard_dir: Path) -> Manifest:
    """Read `shard_dir/manifest.json`; raise ValueError naming what is missing or malformed."""
    path = Path(shard_dir) / "manifest.json"
    if not path.exists():
        raise ValueError(f"{path} does not exist: the shard dir is incomplete (the manifest is written last)")
    raw = json.loads(path.read_text())
    try:
        vocab = raw["vocab"]
        size = int(vocab["size"])
        ranges = {r["name"]: (int(r["start"]), int(r["length"])) for r in vocab["ranges"]}
        special = {str(k): int(v) for k, v in vocab["special"].items()}
        files = [Path(shard_dir) / s["file"] for s in raw["shards"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: malformed manifest, missing {exc}") from None
    if "<|eos|>" not in special:
        raise ValueError(f"{path}: vocab.special has no '<|eos|>'")
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise ValueError(f"{path} lists shard files that do not exist: {missing[:5]}")
    return Manifest(size, ranges, special, files, raw)


def _lists(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(row lengths, flattened values) of a list column; null lists count as empty."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return lengths, pc.list_flatten(col)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _spans(column: pa.ChunkedArray, row_len: np.ndarray) -> tuple[np.ndarray, ...]:
    """Flatten a spans column to (row, kind code, start, end, loss), clipped to each row."""
    n_spans, flat = _lists(column)
    row = np.repeat(np.arange(len(n_spans)), n_spans)

    def num(name: str, default) -> np.ndarray:
        return pc.struct_field(flat, name).fill_null(default).to_numpy(zero_copy_only=False)

    code = pc.index_in(pc.struct_field(flat, "kind"), value_set=pa.array(KINDS))
    code = code.fill_null(KIND_CODE["other"]).to_numpy(zero_copy_only=False).astype(np.int8)
    start = np.clip(num("start", 0).astype(np.int64), 0, row_len[row])
    end = np.clip(start + np.maximum(num("length", 0).astype(np.int64), 0), 0, row_len[row])
    return row, code, start, end, num("loss", False).astype(bool)


def _merge(doc: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, ...]:
    """Union overlapping [start, end) intervals per doc; input and output sorted by (doc, start)."""
    if len(doc) == 0:
        return doc, start, end
    shift = np.int64(1) << 32  # doc-major key: a running max never carries over to the next doc
    reach = np.maximum.accumulate(doc * shift + end)
    new = np.ones(len(doc), dtype=bool)
    new[1:] = (doc[1:] != doc[:-1]) | (doc[1:] * shift + start[1:] >= reach[:-1])
    first = np.flatnonzero(new)
    return doc[first], start[first], np.maximum.reduceat(end, first)


@dataclass
class ShardIndex:
    """Per-row facts of every row in the shard dir, in file / row-group / row order.

    Rows are "docs" here. `groups[g]` is (file index, row group); the docs of group g are
    `group_first[g] : group_first[g + 1]`. `n_eff` is the row's length once the loader has
    appended `<|eos|>` where the row does not end with one (0 for unusable rows). Media spans
    are CSR per doc: `media_start/end[media_ptr[d] : media_ptr[d + 1]]`, merged and sorted.
    """

    manifest: Manifest
    groups: np.ndarray
    group_first: np.ndarray
    doc_group: np.ndarray
    length: np.ndarray
    n_eff: np.ndarray
    split: np.ndarray  # int8 per doc: 0 train, 1 val, 2 anything else (not used, counted)
    media_ptr: np.ndarray
    media_start: np.ndarray
    media_end: np.ndarray
    seen: np.ndarray  # bool per vocabulary id: does any row use it
    rows_invalid: int  # rows dropped for token ids outside the vocabulary (counted, never silent)

    @property
    def rows_other_split(self) -> int:
        """Rows whose split is neither "train" nor "val": neither trained nor evaluated on."""
        return int((self.split == 2).sum())

    def docs(self, split: str) -> np.ndarray:
        """Ids of the usable docs of `split` ("train" or "val"), in file order."""
        return np.flatnonzero((self.split == SPLITS.index(split)) & (self.n_eff > 0))


def build_index(shard_dir: Path) -> ShardIndex:
    """Index every row of the shard dir, one row group in memory at a time."""
    m = read_manifest(shard_dir)
    seen = np.zeros(m.vocab_size, dtype=bool)
    groups, counts, lengths, n_effs, vals = [], [], [], [], []
    media = []  # (doc, start, end) per group
    first_doc, rows_invalid = 0, 0
    for fi, path in enumerate(m.files):
        pf = pq.ParquetFile(path)
        for rg in range(pf.num_row_groups):
            t = pf.read_row_group(rg, columns=["tokens", "spans", "split"])
            row_len, values = _lists(t.column("tokens"))
            values = values.to_numpy(zero_copy_only=False).astype(np.int64)
            off = _offsets(row_len)
            nonempty = row_len > 0
            # a row with any id outside the vocabulary is unusable: count it, train without it
            bad = np.zeros(len(row_len), dtype=bool)
            if len(values):
                row_max = np.maximum.reduceat(values, off[:-1][nonempty])
                bad[nonempty] = row_max >= m.vocab_size
            rows_invalid += int(bad.sum())
            ok_tok = values[values < m.vocab_size]
            seen[ok_tok] = True
            last = np.full(len(row_len), -1, dtype=np.int64)
            last[nonempty] = values[off[1:][nonempty] - 1]
            n_eff = np.where(nonempty & ~bad, row_len + (last != m.eos), 0)
            split = pc.index_in(t.column("split"), value_set=pa.array(SPLITS)).fill_null(len(SPLITS))
            row, code, start, end, _ = _spans(t.column("spans"), row_len)
            is_media = np.isin(code, MEDIA_CODES) & (end > start)
            media.append((row[is_media] + first_doc, start[is_media], end[is_media]))
            groups.append((fi, rg))
            counts.append(len(row_len))
            lengths.append(row_len)
            n_effs.append(n_eff)
            vals.append(split.to_numpy(zero_copy_only=False))
            first_doc += len(row_len)
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    mdoc, mstart, mend = (cat([g[i] for g in media], np.int64) for i in range(3))
    order = np.lexsort((mstart, mdoc))
    mdoc, mstart, mend = _merge(mdoc[order], mstart[order], mend[order])
    n_docs = first_doc
    return ShardIndex(
        manifest=m,
        groups=np.array(groups, dtype=np.int64).reshape(-1, 2),
        group_first=_offsets(np.array(counts, dtype=np.int64)),
        doc_group=np.repeat(np.arange(len(counts)), counts),
        length=cat(lengths, np.int64),
        n_eff=cat(n_effs, np.int64),
        split=cat(vals, np.int8),
        media_ptr=_offsets(np.bincount(mdoc, minlength=n_docs)),
        media_start=mstart,
        media_end=mend,
        seen=seen,
        rows_invalid=rows_invalid,
    )


@dataclass
class GroupData:
    """One row group decoded to flat per-token arrays; row r is `offsets[r] : offsets[r + 1]`."""

    tokens: np.ndarray  # int64, already mapped through the vocabulary remap
    loss: np.ndarray  # bool: does this token carry loss (as a prediction target)
    kind: np.ndarray  # int8 KIND_CODE of the span covering the token ("none" if uncovered)
    nbytes: np.ndarray  # float32: text bytes this token stands for (0 for non-text tokens)
    offsets: np.ndarray


def load_group(index: ShardIndex, g: int, remap: np.ndarray | None) -> GroupData:
    """Decode row group g. Span flags are written per token by vectorised scatter.

    Text bytes: a row's `text_bytes` is spread evenly over its tokens in the vocabulary's
    "text" range, so a row's tokens sum to its text_bytes exactly (bits per byte is then
    exact over whole rows, approximate per token).
    """
    m = index.manifest
    fi, rg = index.groups[g]
    t = pq.ParquetFile(m.files[fi]).read_row_group(int(rg), columns=["tokens", "spans", "text_bytes"])
    row_len, values = _lists(t.column("tokens"))
    tokens = values.to_numpy(zero_copy_only=False).astype(np.int64)
    off = _offsets(row_len)
    n = len(tokens)
    loss = np.zeros(n, dtype=bool)
    kind = np.zeros(n, dtype=np.int8)
    row, code, start, end, lflag = _spans(t.column("spans"), row_len)
    span_len = end - start
    # position of every covered token: row offset + span start + 0..len-1, without a loop
    total = int(span_len.sum())
    first = np.cumsum(span_len) - span_len
    pos = np.repeat(off[row] + start - first, span_len) + np.arange(total)
    kind[pos] = np.repeat(code, span_len)  # later spans win where spans overlap
    loss[pos] = np.repeat(lflag, span_len)
    tstart, tlen = m.ranges.get("text", (0, 0))
    is_text = (tokens >= tstart) & (tokens < tstart + tlen)
    tok_row = np.repeat(np.arange(len(row_len)), row_len)
    n_text = np.bincount(tok_row, weights=is_text, minlength=len(row_len))
    text_bytes = t.column("text_bytes").fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64)
    per_tok = np.divide(text_bytes, n_text, out=np.zeros_like(text_bytes), where=n_text > 0)
    nbytes = np.where(is_text, per_tok[tok_row], 0.0).astype(np.float32)
    if remap is not None:
        tokens = remap[np.minimum(tokens, len(remap) - 1)]  # invalid rows are never read
    return GroupData(tokens, loss, kind, nbytes, off)
