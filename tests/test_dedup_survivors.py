"""Survivors that do not move: adding a source curates only its partitions against the rows
already kept, and removing one starts a curate generation without it (distillery/generations.py
curate_gen, distillery/plans.py curate_plan).

The user's path: `distillery run CONFIG --stages gather,curate` as a subprocess with no
PREFECT_API_URL. Source `a` is curated first; then source `b` (edited and exact copies of a's
documents, and a few new ones) is added, listed FIRST in the config: a's curated files stay
byte-identical, every row of a that was kept stays kept, b's copies are its duplicates, and the
run curates b's partitions only. Then `a` is removed: the views show none of its rows, and b's
copies, no longer duplicates of anything current, are kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from conftest import user_run

from distillery.config import load_config
from distillery.generations import curate_gen
from distillery.lake import Lake
from distillery.plans import plan_curate
from distillery.sql import query
from tests.test_filters_partition import VOCAB, article


def _config(folder: Path, sources: list[str], extra: str = "") -> Path:
    entries = "".join(f"  - {{name: {s}, kind: jsonl, paths: ['{s}.jsonl']}}\n" for s in sources)
    cfg = folder / "pipeline.yaml"
    cfg.write_text(
        f"lake: {folder / 'lake'}\nbase_dir: {folder}\nsources:\n{entries}run: {{partition_rows: 16}}\n{extra}"
    )
    return cfg


def _run(folder: Path, sources: list[str]) -> None:
    cfg = _config(folder, sources)
    out = user_run(cfg, folder, "gather,curate")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]


def _edited(seed: int) -> str:
    """article(seed) with one word changed in two of its twelve sentences (Jaccard ~0.9)."""
    lines = article(seed).split("\n")
    for i in (2, 7):
        word = lines[i].split()[1]
        lines[i] = lines[i].replace(f" {word} ", f" {VOCAB[(VOCAB.index(word) + 1) % len(VOCAB)]} ", 1)
    return "\n".join(lines)


def _write(path: Path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))


def _files(gen: Path) -> dict[str, bytes]:
    return {str(p.relative_to(gen)): p.read_bytes() for p in gen.glob("b-*/*.parquet")}


def test_added_source_keeps_survivors_and_removed_source_leaves_the_views(tmp_path):
    lake = Lake(tmp_path / "lake")
    originals = [article(seed) for seed in range(40)]
    _write(tmp_path / "a.jsonl", originals)  # 40 rows, partition_rows 16: three spans
    _run(tmp_path, ["a"])
    (gen,) = lake.stage_dir("curate").glob("g-*")
    before = _files(gen)
    kept_a = {r[0] for r in query(lake, "select id from curated")[1]}
    assert len(kept_a) == 40 and len([f for f in before if "/curated-" in f]) == 3

    edited = [_edited(seed) for seed in range(20)]
    _write(tmp_path / "b.jsonl", edited + originals[20:30] + [article(seed) for seed in range(100, 105)])
    _run(tmp_path, ["b", "a"])  # b first: config order only ranks new partitions
    assert [p.name for p in lake.stage_dir("curate").glob("g-*")] == [gen.name]
    after = _files(gen)
    assert {f: after[f] for f in before} == before  # a's curated files untouched
    assert len(after) > len(before)
    rows_in, skipped = query(lake, "select rows_in, skipped from runs where stage = 'curate' order by finished_at")[1][
        -1
    ]
    assert (rows_in, skipped) == (35, 3)  # b's 35 rows only; a's three partitions done before
    curated = dict(query(lake, "select id, source from curated")[1])
    assert kept_a <= set(curated) and sum(s == "b" for s in curated.values()) == 5
    dups = query(lake, "select duplicate_of, method from duplicates")[1]
    assert len(dups) == 30 and {d for d, _ in dups} <= kept_a
    assert sorted(m for _, m in dups).count("exact") == 10

    reordered = load_config(_config(tmp_path, ["a", "b"]))  # reordering: the same generation, nothing to do
    assert curate_gen(reordered, lake) == gen and not plan_curate(reordered, lake).has_work

    # Another curate config curates everything anew, in survivor order: sources in config order,
    # then each source's rows in file order (not the partitions' hashed file names).
    fresh = load_config(_config(tmp_path, ["b", "a"], "curate: {web_rules_exempt_sources: [a]}\n"))
    firsts = [pl.read_parquet(p["input"])[0] for p in plan_curate(fresh, lake).units[0].parts]
    assert [(f["source"][0], f["uri"][0].rsplit("#", 1)[1]) for f in firsts] == [
        (s, f"row{n}") for s in "ba" for n in (0, 16, 32)
    ]

    _run(tmp_path, ["b"])  # a removed: a new generation curates b alone
    assert len(list(lake.stage_dir("curate").glob("g-*"))) == 2
    assert query(lake, "select count(*) from curated where source = 'a'")[1][0][0] == 0
    assert query(lake, "select count(*), count(distinct id) from curated")[1][0] == (35, 35)
    assert query(lake, "select count(*) from duplicates")[1][0][0] == 0
    assert {f: p.read_bytes() for f, p in ((f, gen / f) for f in after)} == after  # the old one stays
