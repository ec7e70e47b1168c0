"""Dedup against the kept lake out of core (filters/dedup_lake.py): the same duplicates as
find_duplicates in memory, and memory that does not grow with the kept lake."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl

from distillery.lake import ROW_GROUP_ROWS
from filters import CurateConfig, find_duplicates
from filters.dedup_lake import KeptLake, Limits, band_ranges, band_step, exact_step, split_keys, verify_step
from tests.test_dedup_text import doc, edit, keys_of

ROOT = Path(__file__).resolve().parents[1]


def write_kept(folder: Path, frames: list[pl.DataFrame], num_bands: int = 14) -> KeptLake:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        compact, sketches = split_keys(f, num_bands)
        compact.write_parquet(folder / f"dedup_keys-p{i}.parquet")
        sketches.write_parquet(folder / f"dedup_sketches-p{i}.parquet", row_group_size=ROW_GROUP_ROWS["dedup_sketches"])
    return KeptLake.of(sorted(folder.glob("dedup_keys-*")), sorted(folder.glob("dedup_sketches-*")))


def lake_dedup(new: pl.DataFrame, kept: KeptLake, cfg: CurateConfig, work: Path) -> pl.DataFrame:
    limits = Limits(memory_mb=64, threads=1)
    exact_step(new, kept, cfg, work, limits)
    pairs = [band_step(lo, hi, kept, cfg, work, limits) for lo, hi in band_ranges(cfg.dedup.minhash.num_bands, 3)]
    return verify_step(pairs, kept, cfg, work, limits)


def test_lake_dedup_finds_what_find_duplicates_finds(tmp_path):
    rng = random.Random(7)
    bases = [doc(rng) for _ in range(6)]
    kept_texts = [" ".join(b) for b in bases[:3]] + [" ".join(doc(rng)) for _ in range(5)]
    new_texts = []
    for b in bases:  # copies of kept and of new originals, some far below the threshold
        new_texts += [" ".join(b)] + [" ".join(edit(b, rng, rng.choice([1, 3, 6, 40]))) for _ in range(4)]
    new_texts += ["Exact twin: " + kept_texts[4], " ".join(doc(rng))]
    kept_keys = keys_of(kept_texts)
    new = keys_of(new_texts, start=len(kept_texts))
    cfg = CurateConfig()
    expected = find_duplicates(new, kept_keys, cfg)
    assert set(expected["method"]) == {"exact", "minhash"} and expected.height > 10
    kept = write_kept(tmp_path / "kept", [kept_keys.head(5), kept_keys.tail(3)])
    got = lake_dedup(new.drop("order"), kept, cfg, tmp_path / "work")
    assert got.rows() == expected.rows()


CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from filters import CurateConfig
from filters.dedup_lake import KeptLake
from tests.test_dedup_lake import lake_dedup
import polars as pl
root = Path(sys.argv[1])
cfg = CurateConfig.model_validate({"dedup": {"minhash": {"sketch_size": None}}})
kept = KeptLake.of(sorted(root.glob("kept/dedup_keys-*")), sorted(root.glob("kept/dedup_sketches-*")))
dups = lake_dedup(pl.read_parquet(root / "new.parquet"), kept, cfg, root / "work")
# VmHWM: this process's own peak (ru_maxrss would carry the forking parent's over exec)
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"peak_mb": peak_kb / 1024, "dups": dups["id"].to_list()}))
"""


def synthetic(rng: np.random.Generator, n: int, prefix: str) -> pl.DataFrame:
    """Key rows with random bands and signatures (no two alike) and no sketches."""
    return pl.DataFrame(
        {
            "id": [f"{prefix}{i}" for i in range(n)],
            "modality": ["text"] * n,
            "exact": rng.integers(0, 2**62, n).astype(str),
            "signature": pl.Series(rng.integers(0, 2**63, (n, 112), dtype=np.uint64)).cast(pl.List(pl.UInt64)),
            "bands": pl.Series(rng.integers(0, 2**63, (n, 14), dtype=np.uint64)).cast(pl.List(pl.UInt64)),
            "sketch": pl.Series([None] * n, dtype=pl.List(pl.UInt32)),
            "phash": pl.Series([None] * n, dtype=pl.UInt64),
            "frame_phashes": pl.Series([None] * n, dtype=pl.List(pl.UInt64)),
        }
    )


def measure(tmp: Path, n_kept: int) -> dict:
    """Dedup 2 000 new rows against `n_kept` kept ones in a fresh process; one new row is a
    copy of a kept row's keys. Returns its peak RSS and what it found."""
    rng = np.random.default_rng(n_kept)
    kept = synthetic(rng, n_kept, "k")
    new = synthetic(rng, 2000, "n")
    twin = kept[n_kept // 2].with_columns(id=pl.lit("copy"), exact=pl.lit("other text"))
    new = pl.concat([new.head(1000), twin, new.tail(999)])
    write_kept(tmp / "kept", [kept.slice(i, 50_000) for i in range(0, n_kept, 50_000)])
    new.write_parquet(tmp / "new.parquet")
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp), str(ROOT)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_dedup_memory_does_not_grow_with_the_kept_lake(tmp_path):
    """200 k kept rows hold 180 MB of signatures and 30 MB of candidate keys; reading them
    all (what the in-memory dedup did) would grow the process by well over 100 MB."""
    small, large = measure(tmp_path / "small", 2_000), measure(tmp_path / "large", 200_000)
    assert small["dups"] == ["copy"] and large["dups"] == ["copy"]
    assert large["peak_mb"] - small["peak_mb"] < 80, (small, large)
