"""The lake's tables: one Arrow schema per table, shared by every writer and by the catalog.

Every stage writes rows with exactly these columns (in this order), so that the DuckDB
views over a stage's partitions never disagree about types, and a view over a stage
that has not run yet can still be created (empty) from the schema alone.

The record schema (`DOCUMENT`) is the one schema for all modalities:

    id        content hash (hex sha256 of modality + NUL + content, first 32 chars)
    modality  text | code | image | audio | video
    source    the source's name in the pipeline config
    uri       where the item came from (path, path#row, repo path, URL)
    license   SPDX id or free text; null when unknown
    text      the text (text, code, or a text rendering of a media item); null for media
    media     content-addressed reference to the bytes in the lake: "media/ab/<sha256>"
    meta      JSON object: modality-specific facts (width, sample_rate, language, ...)
    parents   ids this record was derived from (lineage); empty for raw items
"""

from __future__ import annotations

import pyarrow as pa

MODALITIES = ("text", "code", "image", "audio", "video")

DOCUMENT = pa.schema(
    [
        ("id", pa.string()),
        ("modality", pa.string()),
        ("source", pa.string()),
        ("uri", pa.string()),
        ("license", pa.string()),
        ("text", pa.string()),
        ("media", pa.string()),
        ("meta", pa.string()),
        ("parents", pa.list_(pa.string())),
    ]
)

# A rejected row keeps its whole record plus the rule that dropped it and the measured value.
REJECT = pa.schema(
    list(DOCUMENT)
    + [
        ("stage", pa.string()),
        ("rule", pa.string()),
        ("value", pa.float64()),
    ]
)

# A duplicate keeps its whole record plus the id of the row that survived in its place.
DUPLICATE = pa.schema(
    list(DOCUMENT)
    + [
        ("stage", pa.string()),
        ("duplicate_of", pa.string()),
        ("method", pa.string()),
        ("similarity", pa.float64()),
    ]
)

# An item that could not be processed: where it was, a stable reason code, the message.
QUARANTINE = pa.schema(
    [
        ("stage", pa.string()),
        ("source", pa.string()),
        ("uri", pa.string()),
        ("id", pa.string()),
        ("reason", pa.string()),
        ("error", pa.string()),
    ]
)

# Gather's ledger of source files seen, so an unchanged file is skipped on the next run.
GATHERED_FILE = pa.schema(
    [
        ("source", pa.string()),
        ("uri", pa.string()),
        ("fingerprint", pa.string()),  # size:mtime_ns for files, commit sha for repositories
        ("rows", pa.int64()),
    ]
)

TRACE = pa.schema(
    [
        ("id", pa.string()),
        ("source_ids", pa.list_(pa.string())),
        ("source", pa.string()),
        ("task", pa.string()),
        ("sample_index", pa.int32()),
        ("model", pa.string()),
        ("messages", pa.string()),  # JSON list of chat messages sent (media by content hash)
        ("reasoning", pa.string()),
        ("answer", pa.string()),
        ("reference", pa.string()),
        ("verdict", pa.string()),  # pass | fail | unverified
        ("verdict_detail", pa.string()),
        ("accepted", pa.bool_()),  # goes on to the shards: pass, or unverified where allowed
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("cost", pa.float64()),
        ("cache_key", pa.string()),
    ]
)

SPAN = pa.struct(
    [
        ("kind", pa.string()),  # text | image | audio | video | prompt | answer | reasoning
        ("start", pa.int32()),
        ("length", pa.int32()),
        ("loss", pa.bool_()),
    ]
)

SHARD_ROW = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("modality", pa.string()),
        ("split", pa.string()),  # train | val
        ("tokens", pa.list_(pa.uint32())),
        ("spans", pa.list_(SPAN)),
        ("n_tokens", pa.int64()),
        ("n_text_tokens", pa.int64()),
        ("n_image_tokens", pa.int64()),
        ("n_audio_tokens", pa.int64()),
        ("n_video_tokens", pa.int64()),
        ("text_bytes", pa.int64()),
        ("parents", pa.list_(pa.string())),
        # lineage: the curated document's uri and license; a trace row has its first source
        # document's (the prompt's), `parents` then the trace id (distillery explain ID)
        ("uri", pa.string()),
        ("license", pa.string()),
    ]
)

RUN = pa.schema(
    [
        ("run_id", pa.string()),
        ("stage", pa.string()),
        ("batch", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("rows_in", pa.int64()),
        ("kept", pa.int64()),
        ("rejected", pa.int64()),
        ("duplicate", pa.int64()),
        ("quarantined", pa.int64()),
        ("skipped", pa.int64()),
        ("balanced", pa.bool_()),
        ("note", pa.string()),
        # JSON {variable: value}: the environment overrides (distillery/config.py ENV_OVERRIDES)
        # that decided this run's config; "{}" when none. Absent from runs files written before it.
        ("overrides", pa.string()),
    ]
)

# One row per partition of a stage: what it consumed and where every row went. Written in the
# same batch as the partition's data, so the ledger and the data commit together.
LEDGER = pa.schema(
    [
        ("stage", pa.string()),
        ("part", pa.string()),
        ("inputs", pa.list_(pa.string())),
        ("rows_in", pa.int64()),
        ("kept", pa.int64()),
        ("rejected", pa.int64()),
        ("duplicate", pa.int64()),
        ("quarantined", pa.int64()),
    ]
)
