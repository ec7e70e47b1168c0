"""Hostile rows, one input each: a JSONL row with raw Latin-1 bytes is quarantined, not a
crash; a huge JSONL line and CSV/Parquet values over max_row_bytes are rejected as
oversized with their size, in memory bounded by max_row_bytes; audio of NaN or inf
samples is rejected by curate with their share.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hostile_files import non_utf8_jsonl, write_huge_line_jsonl
from hostile_media import nan_wav

REPO = Path(__file__).resolve().parents[1]


def test_non_utf8_jsonl_row_is_quarantined_not_a_crash(tmp_path):
    """A JSONL row whose string holds raw Latin-1 bytes is one bad row (bad_encoding), not a
    reason to stop the stage; the UTF-8 row beside it is kept."""
    import sources
    from sources.config import JsonlSource

    (tmp_path / "rows.jsonl").write_bytes(non_utf8_jsonl())
    src = JsonlSource(name="rows", paths=["rows.jsonl"])
    items = list(sources.discover(src, tmp_path))
    result = sources.read_items(src, items, tmp_path / "media")
    docs, quarantine = result.tables["documents"], result.tables.get("quarantine")
    assert docs.height == 1 and "ok row" in docs["text"][0]
    assert quarantine is not None and quarantine["reason"].to_list() == ["bad_encoding"]
    assert quarantine["uri"][0].endswith("#row1")


def test_audio_with_nan_or_inf_samples_is_rejected_by_curate_with_their_share(tmp_path):
    import hashlib
    import io

    import numpy as np
    import polars as pl
    import soundfile as sf

    from distillery.result import conform
    from distillery.tables import DOCUMENT
    from filters import CurateConfig, filter_partition

    def put(data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        (tmp_path / "media" / sha[:2]).mkdir(parents=True, exist_ok=True)
        (tmp_path / "media" / sha[:2] / sha).write_bytes(data)
        return f"media/{sha[:2]}/{sha}"

    def float_wav(samples: np.ndarray) -> bytes:
        buf = io.BytesIO()
        sf.write(buf, samples.astype(np.float32), 16_000, format="WAV", subtype="FLOAT")
        return buf.getvalue()

    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000)
    quarter_inf = tone.copy()
    quarter_inf[:4000] = np.inf
    wavs = [nan_wav(), float_wav(quarter_inf), float_wav(tone)]
    docs = pl.from_arrow(
        conform(
            pl.DataFrame(
                [
                    {
                        "id": f"id{i}",
                        "modality": "audio",
                        "source": "a",
                        "uri": f"u{i}",
                        "license": None,
                        "text": None,
                        "media": put(w),
                        "meta": None,
                        "parents": [],
                    }
                    for i, w in enumerate(wavs)
                ],
                schema_overrides={"parents": pl.List(pl.Utf8)},
            ),
            DOCUMENT,
        )
    )
    res = filter_partition(docs, CurateConfig(), tmp_path)
    rejects = res.tables["rejects"]
    assert sorted(zip(rejects["id"], rejects["rule"], rejects["value"])) == [
        ("id0", "audio_non_finite", 1.0),
        ("id1", "audio_non_finite", 0.25),
    ]
    assert res.tables["curated"]["id"].to_list() == ["id2"]


_READ_JSONL_MEASURED = """
import json, resource, sys
from pathlib import Path
import sources
from sources.config import JsonlSource
base = Path(sys.argv[1])
warm = JsonlSource(name="warm", paths=["warm.jsonl"])  # imports and first allocations, before the baseline
sources.read_items(warm, list(sources.discover(warm, base)), base / "media")
src = JsonlSource(name="rows", paths=["rows.jsonl"], max_row_bytes=2**20)
items = list(sources.discover(src, base))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = sources.read_items(src, items, base / "media")
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
rej = result.tables["rejects"]
print(json.dumps({"grown_kb": grown, "docs": sorted(result.tables["documents"]["uri"]),
                  "rejects": list(zip(rej["uri"], rej["rule"], rej["value"]))}))
"""


def test_huge_jsonl_line_is_rejected_oversized_and_memory_stays_below_the_line(tmp_path):
    """A 64 MB line over a 1 MiB max_row_bytes is rejected as oversized with its size, before
    parsing, and reading it grows peak RSS by a bound set by max_row_bytes, not by the line
    (under a quarter of it; the reader before this held the line whole, then copies of it:
    465 MB of growth measured for this file)."""
    line = 64 * 2**20
    write_huge_line_jsonl(tmp_path / "rows.jsonl", line)
    write_huge_line_jsonl(tmp_path / "warm.jsonl", 1000)
    out = subprocess.run(
        [sys.executable, "-c", _READ_JSONL_MEASURED, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.splitlines()[-1])
    uri = str(tmp_path / "rows.jsonl")
    assert r["docs"] == [f"{uri}#row{i}" for i in (0, 1, 3, 4)]
    assert r["rejects"] == [[f"{uri}#row2", "oversized", float(line)]]
    assert r["grown_kb"] * 1024 < line / 4, f"reading grew peak RSS by {r['grown_kb'] // 1024} MB for a 64 MB line"


def test_csv_and_parquet_values_over_max_row_bytes_are_rejected_oversized_and_the_rest_kept(tmp_path):
    import polars as pl

    import sources
    from sources.config import CsvSource, ParquetSource

    texts = ["short one", "x" * 5000, "short two"]
    pl.DataFrame({"text": texts}).write_csv(tmp_path / "rows.csv")
    pl.DataFrame({"text": texts}).write_parquet(tmp_path / "rows.parquet")
    for src in (
        CsvSource(name="c", paths=["rows.csv"], max_row_bytes=1000),
        ParquetSource(name="p", paths=["rows.parquet"], max_row_bytes=1000),
    ):
        result = sources.read_items(src, list(sources.discover(src, tmp_path)), tmp_path / "media")
        rej = result.tables["rejects"]
        uri = str(tmp_path / src.paths[0])
        assert list(zip(rej["uri"], rej["rule"], rej["value"])) == [(f"{uri}#row1", "oversized", 5000.0)], src.kind
        assert result.tables["documents"]["text"].to_list() == ["short one", "short two"], src.kind
