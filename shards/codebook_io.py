"""Codebook files: reading and writing them, apart from fitting (shards/codebooks.py).

A codebook is a Parquet file (columns code, vector) named `<name>-<sha256[:16]>.parquet` by
the hash of its bytes; its fit parameters are in the file's key-value metadata under
`distillery.codebook`. This module imports nothing of shards' media code, so the modules that
use codebooks (media_rows, video, traces, show, write, verify, the trainer) and the module
that fits them (codebooks, which needs media_rows and video) form no import circle.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distillery import atomic

META_KEY = b"distillery.codebook"


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_codebook(out_dir: Path, name: str, centroids: np.ndarray, params: dict) -> dict:
    """Write centroids (k, d) as codebook `name` in `out_dir`; return its spec entry
    {name, file, sha256, params}. The file appears whole (distillery.atomic)."""
    table = pa.table(
        {
            "code": pa.array(np.arange(len(centroids), dtype=np.int32)),
            "vector": pa.array(list(centroids.astype(np.float32)), pa.list_(pa.float32())),
        }
    ).replace_schema_metadata({META_KEY: json.dumps(params, sort_keys=True).encode()})
    with atomic.TempFile(out_dir, "codebook") as tmp:
        pq.write_table(table, tmp.path, compression="zstd")
        digest = sha256_file(Path(tmp.path))
        file = f"{name}-{digest[:16]}.parquet"
        tmp.commit(file)
    return {"name": name, "file": file, "sha256": digest, "params": params}


@lru_cache(maxsize=16)
def _read_codebook(path: str, sha256: str) -> np.ndarray:
    actual = sha256_file(Path(path))
    if actual != sha256:
        raise ValueError(f"codebook {path} has sha256 {actual}, the spec says {sha256}")
    t = pq.read_table(path)
    return np.asarray(t.column("vector").combine_chunks().flatten(), dtype=np.float32).reshape(t.num_rows, -1)


def load_codebook(spec: dict, name: str, directory: Path | None = None) -> np.ndarray | None:
    """Return the centroids (k, d) of codebook `name` in `spec`, or None when it has none."""
    for cb in spec.get("codebooks", []):
        if cb["name"] == name:
            where = Path(directory) if directory is not None else Path(spec["codebook_dir"])
            return _read_codebook(str(where / cb["file"]), cb["sha256"])
    return None
