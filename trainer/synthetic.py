"""Synthetic shard dirs in the real shard format, for the trainer's tests and benchmarks.

The trainer must not depend on the shards/ stage to be tested, so this writes Parquet files
with `distillery.tables.SHARD_ROW` and a `manifest.json` (format "distillery-shards/1")
itself, with a small vocabulary laid out like the real one: text ids, specials, codebooks.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distillery.tables import SHARD_ROW, SPAN

SPECIALS = (
    "<|eos|>",
    "<|pad|>",
    "<|user|>",
    "<|assistant|>",
    "<|think|>",
    "<|/think|>",
    "<|boi|>",
    "<|eoi|>",
    "<|eor|>",
)


def layout(n_text: int = 1000, codebooks: dict[str, int] | None = None) -> dict:
    """A vocab section: [0, n_text) text, then SPECIALS, then each codebook in order."""
    ranges = [
        {"name": "text", "start": 0, "length": n_text},
        {"name": "special", "start": n_text, "length": len(SPECIALS)},
    ]
    special = {name: n_text + i for i, name in enumerate(SPECIALS)}
    start = n_text + len(SPECIALS)
    for name, size in (codebooks or {}).items():
        ranges.append({"name": name, "start": start, "length": size})
        start += size
    return {"size": start, "ranges": ranges, "special": special}


def write_shards(
    shard_dir: Path,
    rows: list[dict],
    vocab: dict,
    rows_per_group: int = 64,
    rows_per_file: int = 256,
    image_codebook: np.ndarray | None = None,
    image_grid: int = 2,
    image_patch: int = 2,
) -> Path:
    """Write `rows` as shards + manifest; return shard_dir.

    Each row: {"tokens": ints, "spans": [(kind, start, length, loss), ...], optional "split"
    ("train"), "modality" ("text"), "text_bytes" (number of text-range tokens)}.
    `image_codebook` (k, patch*patch*3) is written as the shards stage writes one (a Parquet
    file with a `vector` column, named in the manifest's tokenizer spec with its sha256),
    for images of image_grid x image_grid patches of image_patch pixels.
    """
    shard_dir = Path(shard_dir)
    shard_dir.mkdir(parents=True, exist_ok=True)
    tokenizer: dict = {"encoding": "cl100k_base", "vocab": vocab, "codebooks": []}
    if image_codebook is not None:
        cb = np.asarray(image_codebook, dtype=np.float32)
        pq.write_table(
            pa.table({"vector": pa.array(cb.tolist(), type=pa.list_(pa.float32()))}),
            shard_dir / "codebook-image.parquet",
        )
        digest = hashlib.sha256((shard_dir / "codebook-image.parquet").read_bytes()).hexdigest()
        tokenizer["codebooks"] = [{"name": "image", "file": "codebook-image.parquet", "sha256": digest, "params": {}}]
        tokenizer["image"] = {"patch": image_patch, "grid": image_grid, "side": image_grid * image_patch}
    text_end = vocab["ranges"][0]["length"]
    shards = []
    for f, lo in enumerate(range(0, max(len(rows), 1), rows_per_file)):
        part = rows[lo : lo + rows_per_file]
        toks = [np.asarray(r["tokens"], dtype=np.uint32) for r in part]
        n_text = [int((t < text_end).sum()) for t in toks]
        table = pa.table(
            {
                "id": [hashlib.sha256(f"{lo + i}".encode()).hexdigest()[:32] for i in range(len(part))],
                "source": ["synthetic"] * len(part),
                "modality": [r.get("modality", "text") for r in part],
                "split": [r.get("split", "train") for r in part],
                "tokens": pa.array([t.tolist() for t in toks], type=pa.list_(pa.uint32())),
                "spans": pa.array(
                    [[dict(zip(("kind", "start", "length", "loss"), s)) for s in r["spans"]] for r in part],
                    type=pa.list_(SPAN),
                ),
                "n_tokens": [len(t) for t in toks],
                "n_text_tokens": n_text,
                "n_image_tokens": [0] * len(part),
                "n_audio_tokens": [0] * len(part),
                "n_video_tokens": [0] * len(part),
                "text_bytes": [r.get("text_bytes", n) for r, n in zip(part, n_text)],
                "parents": [[] for _ in part],
                "uri": [None] * len(part),
                "license": [None] * len(part),
            },
            schema=SHARD_ROW,
        )
        name = f"shard-{f:05d}.parquet"
        pq.write_table(table, shard_dir / name, row_group_size=rows_per_group)
        data = (shard_dir / name).read_bytes()
        shards.append(
            {
                "file": name,
                "rows": len(part),
                "tokens": int(sum(map(len, toks))),
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
            }
        )
    manifest = {
        "format": "distillery-shards/1",
        "vocab": vocab,
        "shards": shards,
        "tokenizer": tokenizer,
        "codebooks": tokenizer["codebooks"],
    }
    (shard_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return shard_dir


def counting_rows(
    n: int, vocab: dict, seed: int = 0, length: tuple[int, int] = (20, 60), alphabet: int = 40, val_share: float = 0.1
) -> list[dict]:
    """Learnable text rows: each counts up modulo `alphabet` from a random start, then <|eos|>.

    A model that learns "next = this + 1" drives the loss towards zero, so the loss must fall.
    """
    rng = np.random.default_rng(seed)
    eos = vocab["special"]["<|eos|>"]
    rows = []
    for _ in range(n):
        k = int(rng.integers(*length))
        toks = ((int(rng.integers(alphabet)) + np.arange(k)) % alphabet).tolist() + [eos]
        split = "val" if rng.random() < val_share else "train"
        rows.append({"tokens": toks, "spans": [("text", 0, k + 1, True)], "split": split, "text_bytes": 3 * k})
    return rows


def media_rows(
    n: int,
    vocab: dict,
    seed: int = 0,
    text: tuple[int, int] = (1, 30),
    media: tuple[int, int] = (4, 40),
    max_spans: int = 3,
) -> list[dict]:
    """Rows of text and image spans. An image span of m tokens is recognisable anywhere:
    its first token is image code 1000 + m (a header carrying the length), the rest are codes
    1..m-1, so a cut span shows up as a run without header or of the wrong length.
    """
    rng = np.random.default_rng(seed)
    img0 = next(r["start"] for r in vocab["ranges"] if r["name"] == "image")
    eos = vocab["special"]["<|eos|>"]
    rows = []
    for _ in range(n):
        toks, spans = [], []
        for _ in range(int(rng.integers(1, max_spans + 1))):
            t = int(rng.integers(*text))
            spans.append(("text", len(toks), t, True))
            toks += rng.integers(0, 100, t).tolist()
            m = int(rng.integers(*media))
            spans.append(("image", len(toks), m, True))
            toks += [img0 + 1000 + m] + (img0 + np.arange(1, m)).tolist()
        spans.append(("text", len(toks), 1, True))
        toks.append(eos)
        rows.append({"tokens": toks, "spans": spans, "modality": "image"})
    return rows
