"""Near-duplicate detection: our MinHash LSH (filters.dedup) vs datatrove's MinHash pipeline.

    python bench/dedup.py [--docs 1200] [--variants 400] [--no-datatrove]   (~1.5 min; datatrove ~30 docs/s)
    python bench/dedup.py --docs 300 --copies 15          (issue 15: originals with many edited copies)

Corpus: generated documents (sentences of Zipf-distributed words from a 6000-word
vocabulary), plus variants made by controlled edits of a source document (word
substitutions, insertions and deletions at a rate drawn per variant from 0..8%), so the
variants' Jaccard similarity to their source spans ~0.45..1.0 around the 0.8 threshold.
With `--copies K` every original gets K copies lightly edited from it (rate 0..4%) instead: the
corpus of issue 15 where one bucket holds an original and many copies, and a copy whose
bucket neighbour fails verification must still be compared with the original.
Ground truth: exact Jaccard on the same word 5-gram shingles (our normalization); a document
is a true duplicate when an EARLIER document has Jaccard >= 0.8 with it (only documents
of one family can be similar; unrelated generated documents share almost no 5-grams).
Precision and recall are over documents flagged as duplicates.

datatrove runs in its own virtualenv (bench/.venv-datatrove, created on first use with
`pip install datatrove spacy`), in a subprocess, so it never enters the project's
dependencies. Its time covers stages 1-3 (signatures, buckets, clusters) with the same
14 x 8 / 5-gram configuration, one worker, reading the corpus as one JSONL file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
# The script's folder (bench/) holds filters.py, which must not shadow the `filters` package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from filters import CurateConfig, dedup_keys, find_duplicates  # noqa: E402
from filters.minhash import normalize  # noqa: E402

VENV = ROOT / "bench" / ".venv-datatrove"
THRESHOLD = 0.8
# datatrove imports these without declaring them; spacy is its English word tokenizer.
DATATROVE_PACKAGES = ["datatrove", "spacy", "regex", "tokenizers", "orjson", "xxhash<4"]  # xxhash 4 rejects str

DATATROVE_SCRIPT = r"""
import json, struct, sys, time
from pathlib import Path
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                              MinhashDedupSignature)
from datatrove.pipeline.readers import JsonlReader
from datatrove.utils.hashing import HashConfig
work = Path(sys.argv[1])
cfg = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=14, hashes_per_bucket=8, n_grams=5)
t0, c0 = time.perf_counter(), time.process_time()
def run(steps, tasks, name):
    LocalPipelineExecutor(pipeline=steps, tasks=tasks, workers=1, logging_dir=str(work / "logs" / name)).run()
run([JsonlReader(str(work / "data")), MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg)], 1, "s1")
run([MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"), config=cfg)], cfg.num_buckets, "s2")
run([MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove"), config=cfg)], 1, "s3")
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
removed = []
f = work / "remove" / "000000.remove"
if f.exists():
    data = f.read_bytes()
    removed = list(struct.unpack("<%dI" % (len(data) // 4), data))
print(json.dumps({"seconds": elapsed, "cpu": cpu, "removed": removed}))
"""


def make_vocab(rng: np.random.Generator, n: int = 6000) -> np.ndarray:
    syll = [
        "ka",
        "lo",
        "mi",
        "ne",
        "po",
        "ru",
        "sa",
        "ti",
        "vo",
        "ze",
        "bar",
        "den",
        "fil",
        "gor",
        "hun",
        "jam",
        "kel",
        "lin",
        "mor",
        "nat",
        "per",
        "quo",
        "ris",
        "sun",
        "tam",
        "ul",
        "ver",
        "wis",
        "yon",
        "zel",
    ]
    words = set()
    while len(words) < n:
        k = rng.integers(1, 4)
        words.add("".join(rng.choice(syll, k)))
    return np.array(sorted(words))


def make_doc(rng: np.random.Generator, vocab: np.ndarray, probs: np.ndarray, n_words: int) -> list[str]:
    return list(rng.choice(vocab, n_words, p=probs))


def render(words: list[str], rng: np.random.Generator) -> str:
    """Words -> sentences with capitals and punctuation (normalization removes both)."""
    out, i = [], 0
    while i < len(words):
        k = int(rng.integers(8, 20))
        s = words[i : i + k]
        out.append(" ".join([s[0].capitalize()] + s[1:]) + ".")
        i += k
    return " ".join(out)


def edit(words: list[str], rate: float, rng: np.random.Generator, vocab: np.ndarray, probs: np.ndarray) -> list[str]:
    out = list(words)
    for _ in range(int(round(rate * len(words)))):
        op = rng.integers(0, 3)
        j = int(rng.integers(0, len(out)))
        if op == 0:
            out[j] = str(rng.choice(vocab, p=probs))
        elif op == 1:
            out.insert(j, str(rng.choice(vocab, p=probs)))
        elif len(out) > 10:
            del out[j]
    return out


def shingle_set(text: str, n: int = 5) -> set:
    w = text.split(" ")
    return {hash(tuple(w[i : i + n])) for i in range(max(len(w) - n + 1, 1))}


def build_corpus(n_docs: int, n_variants: int, seed: int = 0, copies: int = 0):
    rng = np.random.default_rng(seed)
    vocab = make_vocab(rng)
    probs = 1.0 / np.arange(1, len(vocab) + 1) ** 1.0
    probs /= probs.sum()
    words = [make_doc(rng, vocab, probs, int(rng.integers(150, 600))) for _ in range(n_docs)]
    family = list(range(n_docs))
    sources = [i for i in range(n_docs) for _ in range(copies)] if copies else None
    for k in range(len(sources) if copies else n_variants):
        # a variant may be made from a variant; a copy is made from its original
        src = sources[k] if copies else int(rng.integers(0, len(words)))
        words.append(edit(words[src], float(rng.uniform(0, 0.04 if copies else 0.08)), rng, vocab, probs))
        family.append(family[src])
    order = rng.permutation(len(words))  # variants spread through the corpus, sometimes before their source
    texts = [render(words[i], rng) for i in order]
    fam = [family[i] for i in order]
    return texts, fam


def ground_truth(texts: list[str], fam: list[int]) -> tuple[set[int], list[float]]:
    norm = normalize(pl.Series(texts)).to_list()
    groups: dict[int, list[int]] = {}
    for i, f in enumerate(fam):
        groups.setdefault(f, []).append(i)
    true_dups, best_j = set(), []
    for members in groups.values():
        if len(members) < 2:
            continue
        sets = {i: shingle_set(norm[i]) for i in members}
        for a_pos, a in enumerate(members):
            best = 0.0
            for b in members[:a_pos]:
                sa, sb = sets[a], sets[b]
                best = max(best, len(sa & sb) / len(sa | sb))
            if a_pos:
                best_j.append(best)
            if best >= THRESHOLD:
                true_dups.add(a)
    return true_dups, best_j


def scores(pred: set[int], truth: set[int]) -> tuple[float, float]:
    tp = len(pred & truth)
    return (tp / len(pred) if pred else 1.0), (tp / len(truth) if truth else 1.0)


def run_ours(texts: list[str], cfg: CurateConfig | None = None) -> tuple[set[int], float, float]:
    cfg = cfg or CurateConfig()
    frame = pl.DataFrame(
        {
            "id": [str(i) for i in range(len(texts))],
            "modality": ["text"] * len(texts),
            "text": texts,
            "media": [None] * len(texts),
        },
        schema_overrides={"media": pl.Utf8},
    )
    t0, c0 = time.perf_counter(), time.process_time()
    keys = dedup_keys(frame, cfg, ROOT).with_columns(pl.int_range(pl.len()).cast(pl.Int64).alias("order"))
    dups = find_duplicates(keys, None, cfg)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {int(i) for i in dups["id"]}, elapsed, cpu


def ensure_datatrove() -> Path | None:
    py = VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {VENV} (pip install {' '.join(DATATROVE_PACKAGES)}) ...", flush=True)
        r = subprocess.run([sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True)
        if r.returncode:
            return None
    check = subprocess.run(
        [
            str(py),
            "-c",
            'import datatrove, spacy, regex, tokenizers, orjson, datatrove.pipeline.dedup.minhash; import xxhash; xxhash.xxh64_intdigest("a")',
        ],
        capture_output=True,
    )
    if check.returncode:
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", *DATATROVE_PACKAGES], capture_output=True, text=True)
        if r.returncode:
            print("datatrove could not be installed:", r.stderr.strip().splitlines()[-1:] or r.returncode)
            return None
    return py


def run_datatrove(texts: list[str]) -> tuple[set[int], float, float] | None:
    py = ensure_datatrove()
    if py is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        with open(work / "data" / "corpus.jsonl", "w") as f:
            for i, t in enumerate(texts):
                f.write(json.dumps({"id": str(i), "text": t}) + "\n")
        (work / "run.py").write_text(DATATROVE_SCRIPT)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
        r = subprocess.run([str(py), str(work / "run.py"), str(work)], capture_output=True, text=True, env=env)
        if r.returncode:
            print("datatrove run failed:", r.stderr.strip().splitlines()[-3:])
            return None
        out = json.loads(r.stdout.strip().splitlines()[-1])
    return set(out["removed"]), out["seconds"], out["cpu"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1200)
    ap.add_argument("--variants", type=int, default=400)
    ap.add_argument("--copies", type=int, default=0, help="K edited copies of every original instead of --variants")
    ap.add_argument("--no-datatrove", action="store_true")
    args = ap.parse_args()
    texts, fam = build_corpus(args.docs, args.variants, copies=args.copies)
    truth, best_j = ground_truth(texts, fam)
    bj = np.array(best_j)
    print(
        f"corpus: {len(texts)} docs, {sum(len(t.split()) for t in texts) / len(texts):.0f} words/doc; "
        f"{len(truth)} true duplicates at Jaccard >= {THRESHOLD} "
        f"({((bj >= 0.7) & (bj < 0.8)).sum()} family members in [0.7, 0.8), {((bj >= 0.8) & (bj < 0.9)).sum()} in [0.8, 0.9))"
    )
    run_ours(texts[:20])  # warm-up: imports, thread pools, DuckDB connection
    ours, t_ours, c_ours = run_ours(texts)
    p, r = scores(ours, truth)
    print(
        f"ours      : precision {p:.4f}  recall {r:.4f}  {len(texts) / t_ours:9.0f} docs/s  ({t_ours:.2f} s, CPU {c_ours:.2f} s, {len(ours)} flagged)"
    )
    for label, over in [("sketch 256", {"sketch_size": 256}), ("signature", {"sketch_size": None})]:
        cfg = CurateConfig.model_validate({"dedup": {"minhash": over}})
        alt, t_alt, _ = run_ours(texts, cfg)
        pa_, ra_ = scores(alt, truth)
        print(f"  variant verify={label:10s}: precision {pa_:.4f}  recall {ra_:.4f}  {len(texts) / t_alt:9.0f} docs/s")
    if args.no_datatrove:
        return
    dt = run_datatrove(texts)
    if dt is None:
        print("datatrove : NOT RUN (could not be installed or run; see above)")
        return
    removed, t_dt, c_dt = dt
    p, r = scores(removed, truth)
    print(
        f"datatrove : precision {p:.4f}  recall {r:.4f}  {len(texts) / t_dt:9.0f} docs/s  ({t_dt:.2f} s, CPU {c_dt:.2f} s, {len(removed)} flagged)"
    )
    print(f"speed ratio ours/datatrove: {t_dt / t_ours:.1f}x wall, {c_dt / c_ours:.1f}x CPU")


if __name__ == "__main__":
    main()
