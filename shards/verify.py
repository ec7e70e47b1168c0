"""verify: check a shard directory against its manifest; every problem as one precise sentence.

Checks: the manifest (format, vocabulary layout with no overlaps or gaps), each codebook
(present, sha256, size), each shard (present, bytes, sha256, readable, schema, row and
token counts per modality), and each row (n_tokens equals the sequence length, token ids
inside the vocabulary, split matches the shard, spans inside the sequence, non-overlapping,
of a known kind, counters equal to the spans' sums). Rows are checked a row group at a time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillery.tables import SHARD_ROW
from shards.codebook_io import sha256_file
from shards.encoded import BUCKET
from shards.vocab import layout_problems, range_of
from shards.write import BUCKETS, FORMAT

MAX_ROWS_REPORTED = 10  # per file and kind of problem; the rest are counted


class _Report:
    def __init__(self):
        self.problems: list[str] = []
        self.counts: dict[tuple[str, str], int] = {}

    def row(self, file: str, check: str, sentence: str) -> None:
        n = self.counts.get((file, check), 0) + 1
        self.counts[(file, check)] = n
        if n <= MAX_ROWS_REPORTED:
            self.problems.append(sentence)

    def finish(self) -> list[str]:
        for (file, check), n in sorted(self.counts.items()):
            if n > MAX_ROWS_REPORTED:
                self.problems.append(
                    f"{file}: {n - MAX_ROWS_REPORTED} more rows with the problem '{check}' (not listed)"
                )
        return self.problems


def _check_rows(file: str, t: pa.Table, first: int, split: str, vocab_size: int, rep: _Report) -> None:
    ids = t.column("id").to_pylist()
    tokens = t.column("tokens").combine_chunks()
    lengths = pc.list_value_length(tokens).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    n_tokens = t.column("n_tokens").to_numpy()
    where = lambda i: f"{file}: row {first + i} (id {ids[i]})"  # noqa: E731
    for i in np.flatnonzero(lengths != n_tokens):
        rep.row(file, "n_tokens", f"{where(i)}: n_tokens is {n_tokens[i]} but the sequence has {lengths[i]} tokens")
    flat = tokens.flatten().to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(flat >= vocab_size)
    if len(bad):
        row_of = np.repeat(np.arange(len(lengths)), lengths)
        offs = np.concatenate([[0], np.cumsum(lengths)])
        for r in np.unique(row_of[bad]):
            p = bad[row_of[bad] == r][0]
            rep.row(
                file,
                "vocab",
                f"{where(r)}: token {flat[p]} at position {p - offs[r]} is outside the vocabulary [0, {vocab_size})",
            )
    splits = np.array(t.column("split").to_pylist(), dtype=object)
    for i in np.flatnonzero(splits != split):
        rep.row(file, "split", f"{where(i)}: split is {splits[i]!r} in a {split!r} shard")
    spans = t.column("spans").combine_chunks()
    n_sp = pc.list_value_length(spans).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat_sp = spans.flatten()
    kind = np.array(flat_sp.field("kind").to_pylist(), dtype=object)
    start = flat_sp.field("start").to_numpy(zero_copy_only=False).astype(np.int64)
    length = flat_sp.field("length").to_numpy(zero_copy_only=False).astype(np.int64)
    row = np.repeat(np.arange(len(n_sp)), n_sp)
    for s in np.flatnonzero((start < 0) | (length < 0) | (start + length > lengths[row])):
        rep.row(
            file,
            "span bounds",
            f"{where(row[s])}: span {kind[s]!r} [{start[s]}, {start[s] + length[s]}) is outside the sequence of {lengths[row[s]]} tokens",
        )
    order = np.lexsort((start, row))
    r_o, s_o, e_o = row[order], start[order], (start + length)[order]
    for k in np.flatnonzero((r_o[1:] == r_o[:-1]) & (s_o[1:] < e_o[:-1])):
        rep.row(
            file,
            "span overlap",
            f"{where(r_o[k])}: spans {kind[order[k]]!r} [{s_o[k]}, {e_o[k]}) and {kind[order[k + 1]]!r} [{s_o[k + 1]}, {e_o[k + 1]}) overlap",
        )
    for s in np.flatnonzero(~np.isin(kind, list(BUCKET))):
        rep.row(file, "span kind", f"{where(row[s])}: span kind {kind[s]!r} is not one of {sorted(BUCKET)}")
    for b in BUCKETS:
        mask = np.isin(kind, [k for k, v in BUCKET.items() if v == b])
        want = np.bincount(row[mask], weights=length[mask], minlength=len(n_sp)).astype(np.int64)
        have = t.column(f"n_{b}_tokens").to_numpy()
        for i in np.flatnonzero(want != have):
            rep.row(
                file, f"n_{b}_tokens", f"{where(i)}: n_{b}_tokens is {have[i]} but its {b} spans cover {want[i]} tokens"
            )


def _check_shard(shard_dir: Path, entry: dict, vocab_size: int, rep: _Report) -> None:
    file = entry.get("file", "?")
    path = shard_dir / file
    if not path.is_file():
        rep.problems.append(f"{file}: listed in the manifest but missing from {shard_dir}")
        return
    size = path.stat().st_size
    if size != entry.get("bytes"):
        rep.problems.append(f"{file}: has {size} bytes, the manifest says {entry.get('bytes')}")
    digest = sha256_file(path)
    if digest != entry.get("sha256"):
        rep.problems.append(
            f"{file}: sha256 is {digest}, the manifest says {entry.get('sha256')} (the file was changed or corrupted)"
        )
    try:
        pf = pq.ParquetFile(path)
        if not pf.schema_arrow.equals(SHARD_ROW):
            rep.problems.append(f"{file}: schema differs from SHARD_ROW: {pf.schema_arrow}")
            return
        rows, tokens, by = 0, 0, dict.fromkeys(BUCKETS, 0)
        for g in range(pf.num_row_groups):
            t = pf.read_row_group(g)
            _check_rows(file, t, rows, entry.get("split"), vocab_size, rep)
            rows += t.num_rows
            tokens += int(pc.sum(t.column("n_tokens")).as_py() or 0)
            for b in BUCKETS:
                by[b] += int(pc.sum(t.column(f"n_{b}_tokens")).as_py() or 0)
    except Exception as exc:  # a corrupted file can fail in thrift, decompression or decoding
        rep.problems.append(f"{file}: cannot be read as Parquet ({type(exc).__name__}: {exc})")
        return
    if rows != entry.get("rows"):
        rep.problems.append(f"{file}: has {rows} rows, the manifest says {entry.get('rows')}")
    if tokens != entry.get("tokens"):
        rep.problems.append(f"{file}: has {tokens} tokens, the manifest says {entry.get('tokens')}")
    if by != entry.get("tokens_by_modality"):
        rep.problems.append(f"{file}: has tokens by modality {by}, the manifest says {entry.get('tokens_by_modality')}")


def verify(shard_dir: Path) -> list[str]:
    """Return every problem found in `shard_dir` as a sentence naming file, row and what; [] means OK."""
    shard_dir = Path(shard_dir)
    mpath = shard_dir / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        return [f"{mpath}: missing (no committed shard set in {shard_dir})"]
    except ValueError as exc:
        return [f"{mpath}: not valid JSON ({exc})"]
    rep = _Report()
    if manifest.get("format") != FORMAT:
        rep.problems.append(f"manifest.json: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    vocab = manifest.get("vocab") or {}
    try:
        rep.problems += [f"manifest.json: {p}" for p in layout_problems(vocab)]
        vocab_size = int(vocab["size"])
    except (KeyError, TypeError) as exc:
        return rep.problems + [f"manifest.json: vocab layout is incomplete (missing {exc})"]
    for cb in manifest.get("codebooks", []):
        path = shard_dir / cb["file"]
        if not path.is_file():
            rep.problems.append(f"{cb['file']}: codebook {cb['name']!r} is missing")
            continue
        if sha256_file(path) != cb["sha256"]:
            rep.problems.append(f"{cb['file']}: codebook {cb['name']!r} sha256 differs from the manifest")
            continue
        rng = range_of(vocab, cb["name"])
        rows = pq.ParquetFile(path).metadata.num_rows
        if rng is None or rng[1] != rows:
            rep.problems.append(
                f"{cb['file']}: codebook {cb['name']!r} has {rows} entries but the vocabulary range is {rng}"
            )
    totals = {"rows": 0, "tokens": 0}
    for entry in manifest.get("shards", []):
        _check_shard(shard_dir, entry, vocab_size, rep)
        totals["rows"] += entry.get("rows", 0)
        totals["tokens"] += entry.get("tokens", 0)
    for k, v in totals.items():
        if manifest.get("totals", {}).get(k) != v:
            rep.problems.append(
                f"manifest.json: totals.{k} is {manifest.get('totals', {}).get(k)} but the shards add up to {v}"
            )
    return rep.finish()
