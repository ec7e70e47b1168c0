"""Building gather's output rows: content ids, meta JSON, and the per-partition row sink.

`content_id` is THE id function of the lake (tables.DOCUMENT: hex sha256 of
modality + NUL + content, first 32 chars); other stages import it from here.
For text and code the content is the UTF-8 of the text; for media, the raw file bytes.

`RowSink` collects the three outcome tables of a gather partition (documents, rejects,
quarantine) plus the ledger of files read, and checks the balance
rows_in == documents + rejects + quarantine when it is turned into a PartitionResult.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from distillery.result import PartitionResult

STAGE = "gather"
_READ_CHUNK = 1 << 20

DOCUMENT_COLUMNS = {
    "id": pl.String,
    "modality": pl.String,
    "source": pl.String,
    "uri": pl.String,
    "license": pl.String,
    "text": pl.String,
    "media": pl.String,
    "meta": pl.String,
    "parents": pl.List(pl.String),
}
REJECT_COLUMNS = {**DOCUMENT_COLUMNS, "stage": pl.String, "rule": pl.String, "value": pl.Float64}
QUARANTINE_COLUMNS = {
    "stage": pl.String,
    "source": pl.String,
    "uri": pl.String,
    "id": pl.String,
    "reason": pl.String,
    "error": pl.String,
}
FILE_COLUMNS = {"source": pl.String, "uri": pl.String, "fingerprint": pl.String, "rows": pl.Int64}


def content_id(modality: str, data: bytes) -> str:
    """The record id: hex sha256 of modality + NUL + data, first 32 characters."""
    return hashlib.sha256(modality.encode() + b"\0" + data).hexdigest()[:32]


def text_id(modality: str, text: str) -> str:
    """content_id of a text (its UTF-8 bytes)."""
    return content_id(modality, text.encode("utf-8"))


def file_hashes(modality: str, path: Path) -> tuple[str, str, int]:
    """(content_id, full sha256 hex, size) of a file, read in 1 MiB chunks (no whole-file load)."""
    rid = hashlib.sha256(modality.encode() + b"\0")
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_READ_CHUNK):
            rid.update(chunk)
            sha.update(chunk)
            size += len(chunk)
    return rid.hexdigest()[:32], sha.hexdigest(), size


def meta_json(meta: dict[str, Any]) -> str:
    """meta column value: compact JSON with sorted keys, so equal facts give equal strings.

    Compact separators match Polars' struct.json_encode, which the batch readers use.
    """
    return json.dumps(meta, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class RowSink:
    """Accumulates one partition's rows. Row dicts for per-item readers, frames for batch readers."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rows_in = 0
        self._docs: list[dict] = []
        self._doc_frames: list[pl.DataFrame] = []
        self._rejects: list[dict] = []
        self._quarantine: list[dict] = []
        self._files: list[dict] = []
        self.stats: Counter[str] = Counter()

    # -- all-or-nothing per item ---------------------------------------------------------
    def checkpoint(self) -> tuple:
        """Marker of the current state, for `rollback` when a reader fails half-way."""
        return (
            self.rows_in,
            len(self._docs),
            len(self._doc_frames),
            len(self._rejects),
            len(self._quarantine),
            Counter(self.stats),
        )

    def rollback(self, mark: tuple) -> None:
        self.rows_in, n_docs, n_frames, n_rejects, n_quarantine, stats = mark
        del self._docs[n_docs:], self._doc_frames[n_frames:], self._rejects[n_rejects:], self._quarantine[n_quarantine:]
        self.stats = stats

    # -- per-row outcomes ------------------------------------------------------------
    def document(
        self,
        *,
        id: str,
        modality: str,
        uri: str,
        license: str | None,
        meta: dict[str, Any],
        text: str | None = None,
        media: str | None = None,
        parents: list[str] | None = None,
    ) -> dict:
        row = {
            "id": id,
            "modality": modality,
            "source": self.source,
            "uri": uri,
            "license": license,
            "text": text,
            "media": media,
            "meta": meta_json(meta),
            "parents": parents or [],
        }
        self.rows_in += 1
        self._docs.append(row)
        self.stats[f"documents_{modality}"] += 1
        return row

    def document_frame(self, frame: pl.DataFrame) -> None:
        """A batch of documents already in DOCUMENT columns (tabular readers)."""
        self.rows_in += frame.height
        self._doc_frames.append(frame.select(list(DOCUMENT_COLUMNS)))
        self.stats["documents_text"] += frame.height

    def reject(
        self,
        *,
        modality: str,
        uri: str,
        rule: str,
        value: float,
        license: str | None = None,
        meta: dict[str, Any] | None = None,
        text: str | None = None,
        id: str | None = None,
    ) -> None:
        self.rows_in += 1
        self._rejects.append(
            {
                "id": id,
                "modality": modality,
                "source": self.source,
                "uri": uri,
                "license": license,
                "text": text,
                "media": None,
                "meta": meta_json(meta or {}),
                "parents": [],
                "stage": STAGE,
                "rule": rule,
                "value": float(value),
            }
        )
        self.stats[f"rejected_{rule}"] += 1

    def quarantine(self, *, uri: str, reason: str, error: str, id: str | None = None) -> None:
        self.rows_in += 1
        self._quarantine.append(
            {"stage": STAGE, "source": self.source, "uri": uri, "id": id, "reason": reason, "error": error[:2000]}
        )
        self.stats[f"quarantined_{reason}"] += 1

    def file(self, uri: str, fingerprint: str, rows: int) -> None:
        """Ledger row for an item read; `rows` = input rows it accounted for (all outcomes)."""
        self._files.append({"source": self.source, "uri": uri, "fingerprint": fingerprint, "rows": rows})

    # -- result ----------------------------------------------------------------------
    def result(self) -> PartitionResult:
        docs = pl.DataFrame(self._docs, schema=DOCUMENT_COLUMNS, orient="row") if self._docs else None
        frames = [f for f in [docs, *self._doc_frames] if f is not None and f.height]
        # Row dicts and batch frames come from different item kinds, never mixed in one source.
        documents = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=DOCUMENT_COLUMNS)
        rejects = pl.DataFrame(self._rejects, schema=REJECT_COLUMNS, orient="row")
        quarantine = pl.DataFrame(self._quarantine, schema=QUARANTINE_COLUMNS, orient="row")
        files = pl.DataFrame(self._files, schema=FILE_COLUMNS, orient="row")
        total = documents.height + rejects.height + quarantine.height
        if total != self.rows_in:  # a bug in a reader, never bad input
            raise AssertionError(f"gather balance broken: rows_in={self.rows_in} outputs={total}")
        stats = dict(sorted(self.stats.items()))
        return PartitionResult(
            rows_in=self.rows_in,
            tables={"documents": documents, "rejects": rejects, "quarantine": quarantine, "files": files},
            stats=stats,
        )
