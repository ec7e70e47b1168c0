"""Gopher filters: ours (filters.gopher, vectorized over the partition) vs datatrove's
GopherRepetitionFilter + GopherQualityFilter (one document at a time), same thresholds.

    python bench/filters.py [--docs 2000]   (~1.5 min; datatrove ~30-50 docs/s)

Corpus: generated documents of many kinds, each kind aimed at one Gopher rule and drawn
on both sides of its threshold: ordinary prose, short notes, long-word jargon, hashtag
and ellipsis heavy posts, bullet lists, trailing-ellipsis teasers, number tables, text
without stop words, repeated lines / paragraphs, and n-gram spam.
Reported: docs/s for each, the share of documents where keep/drop agree (goal >= 99%),
and the disagreements (with both sides' reasons). Both apply repetition rules first, then
quality rules (datatrove's order). Our language-id rate is printed too (a per-document
library call, the one non-vectorized step of filter_partition).
datatrove runs in bench/.venv-datatrove (see bench/dedup.py), in a subprocess.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
# This file is bench/filters.py: the script's folder must not shadow the `filters` package.
sys.path[0] = str(ROOT)

_spec = importlib.util.spec_from_file_location("bench_dedup", ROOT / "bench" / "dedup.py")
_bench_dedup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench_dedup)
ensure_datatrove = _bench_dedup.ensure_datatrove  # the shared datatrove venv (bench/.venv-datatrove)

from filters import CurateConfig, filter_partition, gopher, langid  # noqa: E402
from filters.config import GopherQualityConfig, GopherRepetitionConfig, LanguageConfig  # noqa: E402
from filters.rules import first_failure  # noqa: E402

DATATROVE_SCRIPT = r"""
import json, sys, time
from datatrove.data import Document
from datatrove.pipeline.filters.gopher_quality_filter import GopherQualityFilter
from datatrove.pipeline.filters.gopher_repetition_filter import GopherRepetitionFilter
texts = json.load(open(sys.argv[1]))
rep, qual = GopherRepetitionFilter(), GopherQualityFilter()
qual.filter(Document(text="warm up the tokenizer " * 20, id="w"))
t0 = time.perf_counter()
out = []
for i, t in enumerate(texts):
    d = Document(text=t, id=str(i))
    r = rep.filter(d)
    if r is True:
        r = qual.filter(d)
    out.append(None if r is True else (r[1] if isinstance(r, tuple) else "dropped"))
print(json.dumps({"seconds": time.perf_counter() - t0, "reasons": out}))
"""

WORDS = (
    "time year people way day man thing woman life child world school state family student group "
    "country problem hand part place case week company system program question work government "
    "number night point home water room mother area money story fact month lot right study book "
    "eye job word business issue side kind head house service friend father power hour game line "
    "end member law car city community name president team minute idea kid body information back "
    "parent face others level office door health person art war history party result change morning "
    "reason research girl guy moment air teacher force education river garden window bridge"
).split()
STOP = ["the", "of", "and", "to", "that", "with", "have", "be"]
LONG = ["internationalization", "electroencephalography", "counterrevolutionaries", "uncharacteristically"]


def sentence(rng: np.random.Generator, n: int | None = None, stop: bool = True) -> str:
    n = n or int(rng.integers(8, 18))
    ws = list(rng.choice(WORDS, n))
    if stop:
        for j in range(0, n, 3):
            ws[j] = str(rng.choice(STOP))
    return " ".join([ws[0].capitalize()] + ws[1:]) + str(rng.choice([".", ".", ".", "!", "?"]))


def prose(rng, n_sent):
    lines, cur = [], []
    for _ in range(n_sent):
        cur.append(sentence(rng))
        if rng.random() < 0.3:
            lines.append(" ".join(cur))
            cur = []
    if cur:
        lines.append(" ".join(cur))
    return ("\n\n" if rng.random() < 0.5 else "\n").join(lines)


def make_doc(rng: np.random.Generator) -> str:
    kind = int(rng.integers(0, 12))
    if kind <= 2:
        return prose(rng, int(rng.integers(6, 40)))
    if kind == 3:  # around 50 words
        return " ".join(sentence(rng, 8) for _ in range(int(rng.integers(3, 9))))
    if kind == 4:  # long words
        base = prose(rng, 6).split()
        k = int(rng.integers(0, len(base)))
        idx = rng.choice(len(base), k, replace=False)
        for i in idx:
            base[i] = str(rng.choice(LONG))
        return " ".join(base)
    if kind == 5:  # hashtags / ellipses
        base = prose(rng, 8)
        sym = str(rng.choice(["#tag", "..."]))
        return base + " " + " ".join([sym] * int(rng.integers(0, 25))) + " " + sentence(rng)
    if kind == 6:  # bullets
        n = int(rng.integers(5, 20))
        k = int(rng.integers(0, n + 1))
        return "\n".join(("- " if i < k else "") + sentence(rng) for i in range(n))
    if kind == 7:  # trailing ellipses
        n = int(rng.integers(6, 20))
        k = int(rng.integers(0, n // 2 + 1))
        return "\n".join(sentence(rng)[:-1] + ("..." if i < k else ".") for i in range(n))
    if kind == 8:  # numbers
        base = prose(rng, 6)
        return (
            base
            + "\n"
            + "\n".join(" ".join(str(x) for x in rng.integers(0, 9999, 5)) for _ in range(int(rng.integers(0, 8))))
        )
    if kind == 9:  # no stop words
        return " ".join(sentence(rng, stop=False) for _ in range(8)) + (" " + " ".join(STOP[: int(rng.integers(0, 3))]))
    if kind == 10:  # repeated lines / paragraphs
        uniq = [sentence(rng) for _ in range(int(rng.integers(4, 12)))]
        reps = [uniq[int(rng.integers(0, len(uniq)))] for _ in range(int(rng.integers(0, 6)))]
        return str(rng.choice(["\n", "\n\n"])).join(uniq + reps)
    phrase = " ".join(rng.choice(WORDS, int(rng.integers(2, 6))))  # n-gram spam
    return prose(rng, 8) + " " + " ".join([phrase] * int(rng.integers(0, 12))) + " " + sentence(rng)


def ours(texts: list[str]) -> tuple[list[str | None], float]:
    rcfg, qcfg = GopherRepetitionConfig(), GopherQualityConfig()
    s = pl.Series(texts)
    t0 = time.perf_counter()
    stats = pl.concat([gopher.repetition_stats(s, rcfg), gopher.quality_stats(s, qcfg)], how="horizontal")
    verdict = first_failure(stats, gopher.repetition_rules(rcfg) + gopher.quality_rules(qcfg))["rule"].to_list()
    return verdict, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    texts = [make_doc(rng) for _ in range(args.docs)]
    mine, t_mine = ours(texts)
    print(f"corpus: {len(texts)} docs; ours drops {sum(v is not None for v in mine)}")
    print(f"ours      : {len(texts) / t_mine:9.0f} docs/s ({t_mine:.2f} s)")
    t0 = time.perf_counter()
    langid.stats(pl.Series(texts), LanguageConfig())
    print(f"langid    : {len(texts) / (time.perf_counter() - t0):9.0f} docs/s (py3langid, per-document call)")
    docs = pl.DataFrame(
        {
            "id": [str(i) for i in range(len(texts))],
            "modality": ["text"] * len(texts),
            "source": ["bench"] * len(texts),
            "uri": [f"doc{i}" for i in range(len(texts))],
            "text": texts,
        }
    )
    t0 = time.perf_counter()
    res = filter_partition(docs, CurateConfig(), ROOT)
    t_all = time.perf_counter() - t0
    print(
        f"filter_partition (all filters, langid, PII): {len(texts) / t_all:9.0f} docs/s; "
        f"kept {res.tables['curated'].height}, rejected {res.tables['rejects'].height}"
    )
    py = ensure_datatrove()
    if py is None:
        print("datatrove : NOT RUN (could not be installed)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "texts.json").write_text(json.dumps(texts))
        (Path(tmp) / "run.py").write_text(DATATROVE_SCRIPT)
        r = subprocess.run(
            [str(py), str(Path(tmp) / "run.py"), str(Path(tmp) / "texts.json")], capture_output=True, text=True
        )
    if r.returncode:
        print("datatrove : run failed:", r.stderr.strip().splitlines()[-3:])
        return
    res = json.loads(r.stdout.strip().splitlines()[-1])
    theirs, t_dt = res["reasons"], res["seconds"]
    print(f"datatrove : {len(texts) / t_dt:9.0f} docs/s ({t_dt:.2f} s); drops {sum(v is not None for v in theirs)}")
    print(f"speed ratio ours/datatrove: {t_dt / t_mine:.1f}x")
    agree = [(a is None) == (b is None) for a, b in zip(mine, theirs)]
    print(f"keep/drop agreement: {np.mean(agree):.4f} ({sum(agree)}/{len(agree)}; goal >= 0.99)")
    dis = [i for i, ok in enumerate(agree) if not ok]
    print(f"disagreements: {len(dis)}")
    for i in dis[:15]:
        print(f"  doc {i}: ours={mine[i]} datatrove={theirs[i]} :: {texts[i][:90]!r}")


if __name__ == "__main__":
    main()
