"""write_shards: repack SHARD_ROW sample files into byte-sized, content-named Parquet shards.

Rows stream through: input files are read a batch at a time, rows are cut into row groups
of ~row_group_bytes (estimated uncompressed size: 4 bytes per token, 13 per span, the
strings), and a shard is closed once its file passes target_shard_bytes. Memory is one
input batch plus one row group per split, whatever the corpus size.

Train and val rows go to separate shards (`train-00000-<sha16>.parquet`, `val-...`); a
shard's name ends with the first 16 hex digits of the sha256 of its bytes. Each file is
written to a temporary name, fsynced and moved into place (distillery.atomic); manifest.json
is written last, also atomically, and is the commit point: a reader trusts only the files it
lists. The same inputs (the same set of sample files) give byte-identical shards and
manifest: files are read in path order and cut points depend only on the rows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillery import atomic
from distillery.tables import SHARD_ROW
from shards.codebook_io import sha256_file
from shards.config import ShardConfig

FORMAT = "distillery-shards/1"
READ_BATCH_ROWS = 256
BUCKETS = ("text", "image", "audio", "video")
DICTIONARY_COLUMNS = ["source", "modality", "split", "license", "spans.list.element.kind"]


def row_bytes(batch: pa.RecordBatch) -> np.ndarray:
    """Estimated uncompressed bytes of each row (what row groups are sized by)."""
    n_tok = batch.column("n_tokens").to_numpy(zero_copy_only=False)
    n_span = pc.list_value_length(batch.column("spans")).fill_null(0).to_numpy(zero_copy_only=False)
    strings = sum(
        pc.binary_length(batch.column(c)).fill_null(0).to_numpy(zero_copy_only=False)
        for c in ("id", "source", "modality", "split")
    )
    return 4 * n_tok + 13 * n_span + strings + 64


class _ShardWriter:
    """Writes one split's shards; holds at most one row group in memory."""

    def __init__(self, split: str, out_dir: Path, cfg: ShardConfig):
        self.split, self.out_dir, self.cfg = split, out_dir, cfg
        self.pending: list[pa.RecordBatch] = []
        self.pending_bytes = 0
        self.writer = self.sink = self.tmp = None
        self.entries: list[dict] = []
        self._reset_counts()

    def _reset_counts(self):
        self.rows, self.tokens = 0, 0
        self.by_bucket = dict.fromkeys(BUCKETS, 0)

    def add(self, batch: pa.RecordBatch) -> None:
        """Queue `batch`, writing a row group each time the queue reaches row_group_bytes."""
        sizes = row_bytes(batch)
        start = 0
        while start < batch.num_rows:
            room = self.cfg.row_group_bytes - self.pending_bytes
            cum = np.cumsum(sizes[start:])
            take = int(np.searchsorted(cum, room, side="left")) + 1  # the row that fills the group joins it
            take = min(take, batch.num_rows - start)
            self.pending.append(batch.slice(start, take))
            self.pending_bytes += int(cum[take - 1])
            start += take
            if self.pending_bytes >= self.cfg.row_group_bytes:
                self._write_row_group()

    def _write_row_group(self) -> None:
        table = pa.Table.from_batches(self.pending, schema=SHARD_ROW)
        self.pending, self.pending_bytes = [], 0
        if table.num_rows == 0:
            return
        if self.writer is None:
            self.tmp = atomic.TempFile(self.out_dir, self.split)
            self.sink = pa.OSFile(self.tmp.path, "wb")
            self.writer = pq.ParquetWriter(
                self.sink,
                SHARD_ROW,
                compression="zstd",
                compression_level=self.cfg.zstd_level,
                write_statistics=True,
                # dictionaries only where values repeat: on token ids
                # the dictionary overflows and costs ~30 % write time
                use_dictionary=DICTIONARY_COLUMNS,
            )
        self.writer.write_table(table, row_group_size=table.num_rows)
        self.rows += table.num_rows
        self.tokens += int(pc.sum(table.column("n_tokens")).as_py() or 0)
        for b in BUCKETS:
            self.by_bucket[b] += int(pc.sum(table.column(f"n_{b}_tokens")).as_py() or 0)
        if self.sink.tell() >= self.cfg.target_shard_bytes:
            self._close_shard()

    def _close_shard(self) -> None:
        self.writer.close()
        self.sink.close()
        digest = sha256_file(Path(self.tmp.path))
        name = f"{self.split}-{len(self.entries):05d}-{digest[:16]}.parquet"
        self.tmp.commit(name)
        self.entries.append(
            {
                "file": name,
                "split": self.split,
                "rows": self.rows,
                "tokens": self.tokens,
                "tokens_by_modality": dict(self.by_bucket),
                "sha256": digest,
                "bytes": (self.out_dir / name).stat().st_size,
            }
        )
        self.writer = self.sink = self.tmp = None
        self._reset_counts()

    def finish(self) -> list[dict]:
        """Write what is queued, close the open shard, return the shard entries."""
        if self.pending:
            self._write_row_group()
        if self.writer is not None:
            self._close_shard()
        return self.entries


def _write_json_atomic(path: Path, obj: dict) -> None:
    with atomic.open_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def _copy_codebooks(spec: dict, out_dir: Path) -> list[dict]:
    """Copy the spec's codebook files next to the shards (checking their sha256)."""
    out = []
    for cb in spec.get("codebooks", []):
        dst = out_dir / cb["file"]
        if not dst.exists():
            src = Path(spec["codebook_dir"]) / cb["file"]
            atomic.write_with(dst, lambda tmp, src=src: shutil.copyfile(src, tmp))
        if sha256_file(dst) != cb["sha256"]:
            raise ValueError(f"codebook {dst} does not have the sha256 {cb['sha256']} the spec names")
        out.append({k: cb[k] for k in ("name", "file", "sha256", "params")})
    return out


def write_shards(
    sample_files: list[Path], spec: dict, cfg: ShardConfig, out_dir: Path, inputs: dict | None = None
) -> dict:
    """Pack the rows of `sample_files` (SHARD_ROW Parquet) into shards in `out_dir`; return the manifest.

    Manifest (manifest.json, written last):
    {format: "distillery-shards/1", tokenizer: spec (without codebook_dir),
     vocab: {size, ranges: [{name, start, length}], special: {name: id}},
     codebooks: [{name, file, sha256, params}],
     shards: [{file, split, rows, tokens, tokens_by_modality: {text, image, audio, video}, sha256, bytes}],
     totals: {rows, tokens, bytes, shards, tokens_by_modality, splits: {train|val: {rows, tokens, shards}}},
     layout: {row_group_bytes, target_shard_bytes, compression},
     inputs: what the build was made from, as the caller describes it (present only when given;
     the shard stage gives distillery.trace_coverage's dict)}
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    codebooks = _copy_codebooks(spec, out_dir)
    writers = {s: _ShardWriter(s, out_dir, cfg) for s in ("train", "val")}
    for path in sorted(Path(p) for p in sample_files):
        for raw in pq.ParquetFile(path).iter_batches(batch_size=READ_BATCH_ROWS, columns=SHARD_ROW.names):
            table = pa.Table.from_batches([raw]).cast(SHARD_ROW).combine_chunks()
            split = table.column("split")
            unknown = table.num_rows - (pc.sum(pc.is_in(split, pa.array(["train", "val"]))).as_py() or 0)
            if unknown:  # samples come from tokenize_partition, which only writes these two
                raise ValueError(f"{path} has {unknown} rows whose split is neither 'train' nor 'val'")
            for name, writer in writers.items():
                for batch in table.filter(pc.equal(split, name)).to_batches():
                    writer.add(batch)
    shards = writers["train"].finish() + writers["val"].finish()
    totals = {
        "rows": sum(s["rows"] for s in shards),
        "tokens": sum(s["tokens"] for s in shards),
        "bytes": sum(s["bytes"] for s in shards),
        "shards": len(shards),
        "tokens_by_modality": {b: sum(s["tokens_by_modality"][b] for s in shards) for b in BUCKETS},
        "splits": {
            sp: {
                "rows": sum(s["rows"] for s in shards if s["split"] == sp),
                "tokens": sum(s["tokens"] for s in shards if s["split"] == sp),
                "shards": sum(1 for s in shards if s["split"] == sp),
            }
            for sp in ("train", "val")
        },
    }
    manifest = {
        "format": FORMAT,
        "tokenizer": {k: v for k, v in spec.items() if k != "codebook_dir"},
        "vocab": spec["vocab"],
        "codebooks": codebooks,
        "shards": shards,
        "totals": totals,
        "layout": {
            "row_group_bytes": cfg.row_group_bytes,
            "target_shard_bytes": cfg.target_shard_bytes,
            "compression": f"zstd({cfg.zstd_level})",
        },
    }
    if inputs is not None:
        manifest["inputs"] = inputs
    _write_json_atomic(out_dir / "manifest.json", manifest)
    return manifest
