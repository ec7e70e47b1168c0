"""tokenize_partition: one curated or traces partition -> SHARD_ROW samples.

Every input row ends in exactly one table: `samples` (SHARD_ROW), `rejects` (REJECT,
stage "shard": empty_text, empty_answer, verdict_<v>) or `quarantine` (QUARANTINE, stage
"shard": media_missing, bad_media_ref, image_decode_error, audio_decode_error,
video_no_frames, no_image_codebook, no_audio_codebook, bad_messages, unknown_modality).

split: "val" when the first 8 bytes of sha256("split:" + key), read as a fraction of 2^64,
fall below val_fraction; key is the row id, and for a trace its first source id, so a
document and the traces distilled from it land in the same split (no train/val leak).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from distillery.result import PartitionResult, conform
from distillery.tables import DOCUMENT, QUARANTINE, REJECT, SHARD_ROW, TRACE
from shards.config import ShardConfig
from shards.encoded import Encoded, concat_encoded, counters, spans_array
from shards.media_rows import tokenize_audio, tokenize_images
from shards.ragged import list_array
from shards.text import tokenize_texts
from shards.traces import tokenize_traces
from shards.video import tokenize_videos

STAGE = "shard"


def split_of(keys: Sequence[str], val_fraction: float) -> list[str]:
    """Return "train"/"val" per key, stable across runs, machines and partitionings."""
    cut = int(val_fraction * 2**64)
    return [
        "val" if int.from_bytes(hashlib.sha256(b"split:" + k.encode()).digest()[:8], "big") < cut else "train"
        for k in keys
    ]


def _read(input_file: Path, schema: pa.Schema) -> pa.Table:
    table = pq.read_table(input_file)
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise ValueError(f"{input_file} lacks columns {missing} of its schema")
    return table.select(schema.names).cast(schema)


def _samples(enc: Encoded, keys: dict, cfg: ShardConfig) -> pa.Table:
    ids, sources, modalities, split_keys, parents = (
        keys[k] for k in ("ids", "sources", "modalities", "split_keys", "parents")
    )
    order = np.argsort(enc.rows, kind="stable")
    cols = counters(enc)
    table = pa.table(
        {
            "id": pa.array([ids[r] for r in enc.rows], pa.string()),
            "source": pa.array([sources[r] for r in enc.rows], pa.string()),
            "modality": pa.array([modalities[r] for r in enc.rows], pa.string()),
            "split": pa.array(split_of([split_keys[r] for r in enc.rows], cfg.val_fraction), pa.string()),
            "tokens": list_array(enc.tokens, enc.lengths, pa.uint32()),
            "spans": spans_array(enc),
            "n_tokens": pa.array(enc.lengths, pa.int64()),
            **{k: pa.array(v, pa.int64()) for k, v in cols.items()},
            "text_bytes": pa.array(
                enc.text_bytes if enc.text_bytes is not None else np.zeros(len(enc.rows), np.int64), pa.int64()
            ),
            "parents": pa.array([parents[r] for r in enc.rows], pa.list_(pa.string())),
            "uri": pa.array([keys["row_uris"][r] for r in enc.rows], pa.string()),
            "license": pa.array([keys["licenses"][r] for r in enc.rows], pa.string()),
        }
    )
    return table.select(SHARD_ROW.names).cast(SHARD_ROW).take(pa.array(order))


def _quarantine(enc: Encoded, ids: list, sources: list, uris: list) -> pl.DataFrame:
    q = sorted(enc.quarantine)
    return pl.DataFrame(
        {
            "stage": [STAGE] * len(q),
            "source": [sources[r] for r, _, _ in q],
            "uri": [uris[r] for r, _, _ in q],
            "id": [ids[r] for r, _, _ in q],
            "reason": [x[1] for x in q],
            "error": [x[2] for x in q],
        },
        schema={n: pl.String for n in QUARANTINE.names},
    )


def _curated(table: pa.Table, spec: dict, cfg: ShardConfig, lake_root: Path) -> tuple[Encoded, dict]:
    mod = np.array(table.column("modality").to_pylist(), dtype=object)
    rows = np.arange(table.num_rows, dtype=np.int64)
    col = {n: table.column(n).to_pylist() for n in ("text", "media", "meta")}
    parts, unknown = [], Encoded.empty()

    def pick(values, mask):
        return [values[i] for i in np.flatnonzero(mask)]

    is_text = np.isin(mod, ["text", "code"])
    parts.append(tokenize_texts(rows[is_text], pick(col["text"], is_text), spec, cfg.threads))
    m = mod == "image"
    if m.any():
        parts.append(tokenize_images(rows[m], pick(col["media"], m), spec, lake_root, cfg.threads))
    m = mod == "audio"
    if m.any():
        parts.append(tokenize_audio(rows[m], pick(col["media"], m), spec, lake_root, cfg.threads))
    m = mod == "video"
    if m.any():
        parts.append(tokenize_videos(rows[m], pick(col["meta"], m), spec, lake_root, cfg.threads))
    other = ~np.isin(mod, ["text", "code", "image", "audio", "video"])
    unknown.quarantine = [
        (int(r), "unknown_modality", f"modality {mod[r]!r} is not one of text, code, image, audio, video")
        for r in rows[other]
    ]
    parts.append(unknown)
    ids = table.column("id").to_pylist()
    keys = {
        "ids": ids,
        "sources": table.column("source").to_pylist(),
        "modalities": mod.tolist(),
        "split_keys": ids,
        "parents": [[i] for i in ids],
        "uris": table.column("uri").to_pylist(),
    }
    keys.update(row_uris=keys["uris"], licenses=table.column("license").to_pylist())
    return concat_encoded(parts), keys


def _traces(
    table: pa.Table,
    spec: dict,
    cfg: ShardConfig,
    verdicts: tuple[str, ...],
    lake_root: Path,
    parent_files: Sequence[Path],
) -> tuple[Encoded, dict]:
    rows = np.arange(table.num_rows, dtype=np.int64)
    verdict = table.column("verdict").to_pylist()
    if "accepted" in table.column_names:  # where the distill stage decided, its decision stands
        verdict = [
            "accepted" if (a if a is not None else v in verdicts) else v
            for a, v in zip(table.column("accepted").to_pylist(), verdict)
        ]
        verdicts = ("accepted",)
    enc = tokenize_traces(
        rows,
        table.column("messages").to_pylist(),
        table.column("reasoning").to_pylist() if cfg.trace_reasoning else [""] * table.num_rows,
        table.column("answer").to_pylist(),
        verdict,
        tuple(verdicts),
        spec,
        cfg.threads,
        lake_root,
    )
    ids = table.column("id").to_pylist()
    srcs = [s or [] for s in table.column("source_ids").to_pylist()]
    keys = {
        "ids": ids,
        "sources": table.column("source").to_pylist(),
        "modalities": ["text"] * len(ids),
        "split_keys": [s[0] if s else i for s, i in zip(srcs, ids)],
        "parents": [s + [i] for s, i in zip(srcs, ids)],
        "uris": [f"trace:{i}" for i in ids],
    }
    firsts = [s[0] if s else None for s in srcs]
    found = _source_rows(parent_files, firsts)
    keys.update(
        row_uris=[found.get(f, (None, None))[0] for f in firsts],
        licenses=[found.get(f, (None, None))[1] for f in firsts],
    )
    return enc, keys


def _source_rows(files: Sequence[Path], ids: list) -> dict[str, tuple[str | None, str | None]]:
    """id -> (uri, license) of the curated rows `ids` among `files` (one filtered scan)."""
    wanted = sorted({i for i in ids if i is not None})
    if not files or not wanted:
        return {}
    found = (
        pl.scan_parquet([str(f) for f in files])
        .select("id", "uri", "license")
        .filter(pl.col("id").is_in(wanted))
        .unique("id", keep="first")
        .collect()
    )
    return {i: (u, lic) for i, u, lic in found.iter_rows()}


def _trace_rejects(table: pa.Table, enc: Encoded, keys: dict) -> pl.DataFrame:
    rj = sorted(enc.rejects)
    r = [x[0] for x in rj]
    verdict, task, model = (table.column(c).to_pylist() for c in ("verdict", "task", "model"))
    return pl.DataFrame(
        {
            "id": [keys["ids"][i] for i in r],
            "modality": ["text"] * len(r),
            "source": [keys["sources"][i] for i in r],
            "uri": [keys["uris"][i] for i in r],
            "meta": [json.dumps({"verdict": verdict[i], "task": task[i], "model": model[i]}) for i in r],
            "parents": [keys["parents"][i] for i in r],
            "stage": [STAGE] * len(r),
            "rule": [x[1] for x in rj],
            "value": [x[2] for x in rj],
        },
        schema_overrides={"parents": pl.List(pl.String), "value": pl.Float64},
    )


def _curated_rejects(table: pa.Table, enc: Encoded) -> pl.DataFrame:
    rj = sorted(enc.rejects)
    base = pl.from_arrow(table.take(pa.array([x[0] for x in rj], pa.int64())))
    return base.with_columns(
        pl.lit(STAGE).alias("stage"),
        pl.Series("rule", [x[1] for x in rj], dtype=pl.String),
        pl.Series("value", [x[2] for x in rj], dtype=pl.Float64),
    )


def tokenize_partition(
    input_file: Path,
    kind: Literal["curated", "traces"],
    spec: dict,
    cfg: ShardConfig,
    lake_root: Path,
    *,
    verdicts: Sequence[str] = ("pass",),
    parent_files: Sequence[Path] = (),
) -> PartitionResult:
    """Tokenize one partition file of `kind` with the tokenizer `spec` (from fit_codebooks).

    Returns tables "samples" (SHARD_ROW), "rejects" (REJECT), "quarantine" (QUARANTINE);
    rows_in == samples + rejects + quarantine. For traces, only rows whose verdict is in
    `verdicts` are kept (pass ["pass", "unverified"] when verification is off). Media are
    read from `lake_root`. Image/audio parameters come from the spec (what the codebooks
    were fitted with), not from cfg; cfg gives threads and val_fraction. A sample's `uri` and
    `license` are its document's; a trace's are those of its first source document, looked up
    in `parent_files` (the curated partitions; none given: null).
    """
    if kind == "curated":
        table = _read(Path(input_file), DOCUMENT)
        enc, keys = _curated(table, spec, cfg, Path(lake_root))
        rejects = _curated_rejects(table, enc)
    elif kind == "traces":
        table = _read(Path(input_file), TRACE)
        enc, keys = _traces(table, spec, cfg, tuple(verdicts), Path(lake_root), parent_files)
        rejects = _trace_rejects(table, enc, keys)
    else:
        raise ValueError(f"kind must be 'curated' or 'traces', not {kind!r}")
    samples = _samples(enc, keys, cfg)
    quarantine = _quarantine(enc, keys["ids"], keys["sources"], keys["uris"])
    stats = dict(enc.stats)
    stats.update(
        samples=samples.num_rows,
        tokens=int(enc.lengths.sum()),
        rejected=len(enc.rejects),
        quarantined=len(enc.quarantine),
    )
    return PartitionResult(
        rows_in=table.num_rows,
        tables={
            "samples": pl.from_arrow(samples),
            "rejects": pl.from_arrow(conform(rejects, REJECT)),
            "quarantine": pl.from_arrow(conform(quarantine, QUARANTINE)),
        },
        stats=stats,
    )
