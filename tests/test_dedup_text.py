"""MinHash estimates vs exact Jaccard, near-duplicate clusters, survivor rule, exact keys."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from filters import CurateConfig, dedup_keys, find_duplicates, minhash
from filters.dedup import components

VOCAB = [
    f"{a}{b}"
    for a in ("ka", "lo", "mi", "ne", "po", "ru", "sa", "ti", "vo", "ze")
    for b in ("ber", "cat", "dun", "fel", "gor", "han", "jil", "kem", "lun", "mor", "nip", "pex")
]


def jaccard(a: str, b: str, n: int = 5) -> float:
    wa, wb = minhash.normalize(pl.Series([a, b])).str.split(" ").to_list()
    sa = {tuple(wa[i : i + n]) for i in range(len(wa) - n + 1)}
    sb = {tuple(wb[i : i + n]) for i in range(len(wb) - n + 1)}
    return len(sa & sb) / len(sa | sb)


def doc(rng: random.Random, n: int = 300) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(n)]


def edit(words: list[str], rng: random.Random, k: int) -> list[str]:
    out = list(words)
    for _ in range(k):
        out[rng.randrange(len(out))] = rng.choice(VOCAB)
    return out


def keys_of(texts: list[str], cfg: CurateConfig | None = None, start: int = 0) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "id": [f"d{start + i}" for i in range(len(texts))],
            "modality": ["text"] * len(texts),
            "text": texts,
            "media": [None] * len(texts),
        }
    )
    return dedup_keys(frame, cfg or CurateConfig(), Path("/nonexistent")).with_columns(
        (pl.int_range(pl.len()) + start).cast(pl.Int64).alias("order")
    )


def test_minhash_estimate_tracks_exact_jaccard():
    rng = random.Random(0)
    pairs = []
    for _ in range(150):
        a = doc(rng)
        pairs.append((" ".join(a), " ".join(edit(a, rng, rng.randint(0, 40)))))
    k = keys_of([x for p in pairs for x in p])
    sig = np.array(k["signature"].to_list(), dtype=np.uint64)
    est = (sig[0::2] == sig[1::2]).mean(axis=1)
    exact = np.array([jaccard(a, b) for a, b in pairs])
    assert np.abs(est - exact).mean() < 0.05
    assert np.abs(est - exact).max() < 0.2
    assert exact.min() < 0.5 and exact.max() > 0.95  # the pairs span the range


def test_near_duplicates_found_and_earliest_survives():
    rng = random.Random(1)
    base = doc(rng)
    texts = [
        " ".join(doc(rng)),
        " ".join(base),
        " ".join(edit(base, rng, 3)),
        " ".join(edit(base, rng, 4)),
        " ".join(doc(rng)),
        " ".join(edit(base, rng, 80)),
    ]
    assert jaccard(texts[1], texts[2]) > 0.8 and jaccard(texts[1], texts[5]) < 0.3
    dups = find_duplicates(keys_of(texts), None, CurateConfig())
    assert dups["id"].to_list() == ["d2", "d3"]
    assert dups["duplicate_of"].to_list() == ["d1", "d1"]
    assert dups["method"].to_list() == ["minhash", "minhash"]
    assert all(0.7 < s < 1.0 for s in dups["similarity"])


def test_existing_rows_win_over_new():
    rng = random.Random(2)
    base = doc(rng)
    existing = keys_of([" ".join(edit(base, rng, 2)), " ".join(doc(rng))])
    new = keys_of([" ".join(base), " ".join(doc(rng)), " ".join(edit(base, rng, 1))], start=10)
    dups = find_duplicates(new, existing, CurateConfig())
    assert dict(zip(dups["id"], dups["duplicate_of"])) == {"d10": "d0", "d12": "d0"}
    assert dups["order"].to_list() == [10, 12]


def test_exact_duplicates_use_normalized_text():
    a = "Hello,   World! This is the SAME text."
    texts = [a, "hello world this is the same text", "hello world this is another text"]
    k = keys_of(texts)
    assert k["exact"][0] == k["exact"][1] != k["exact"][2]
    dups = find_duplicates(k, None, CurateConfig())
    assert dups.select("id", "duplicate_of", "method", "similarity").rows() == [("d1", "d0", "exact", 1.0)]


def test_existing_exact_twin_wins_and_empty_text_has_no_bands():
    k = keys_of(["same words here in order", ""])
    assert k["bands"][1] is None and len(k["bands"][0]) == 14 and len(k["signature"][0]) == 112
    new = keys_of(["Same words, here in order!"], start=5)
    dups = find_duplicates(new, k, CurateConfig())
    assert dups.select("id", "duplicate_of", "method").rows() == [("d5", "d0", "exact")]


def test_minhash_keys_are_deterministic_across_calls():
    texts = [" ".join(doc(random.Random(3)))]
    assert keys_of(texts)["bands"].to_list() == keys_of(texts)["bands"].to_list()
    other_seed = CurateConfig.model_validate({"dedup": {"minhash": {"seed": 2}}})
    assert keys_of(texts)["bands"].to_list() != keys_of(texts, other_seed)["bands"].to_list()


def test_union_find_components():
    label = components(6, np.array([1, 3, 4]), np.array([2, 2, 5]))
    assert label.tolist() == [0, 1, 1, 1, 4, 4]
    chain = components(5, np.array([3, 2, 1, 0]), np.array([4, 3, 2, 1]))
    assert chain.tolist() == [0, 0, 0, 0, 0]


def test_sketch_verification_is_exact_for_short_docs_and_signature_fallback():
    rng = random.Random(4)
    base = doc(rng, 200)  # < 512 shingles: the bottom-k sketch holds the whole set
    near = edit(base, rng, 3)
    k = keys_of([" ".join(base), " ".join(near)])
    dups = find_duplicates(k, None, CurateConfig())
    assert dups["similarity"][0] == pytest.approx(jaccard(" ".join(base), " ".join(near)))
    no_sketch = CurateConfig.model_validate({"dedup": {"minhash": {"sketch_size": None}}})
    k2 = keys_of([" ".join(base), " ".join(near)], no_sketch)
    assert k2["sketch"].null_count() == 2
    dups2 = find_duplicates(k2.drop("sketch"), None, no_sketch)
    assert dups2.select("id", "duplicate_of", "method").rows() == [("d1", "d0", "minhash")]
    assert abs(dups2["similarity"][0] - dups["similarity"][0]) < 0.15


def test_verification_threshold_rejects_weak_candidates():
    rng = random.Random(5)
    base = doc(rng, 200)
    mid = edit(base, rng, 9)  # Jaccard ~0.6-0.75: may share a band, must not pass verification
    j = jaccard(" ".join(base), " ".join(mid))
    assert 0.5 < j < 0.8
    k = keys_of([" ".join(base), " ".join(mid)])
    assert find_duplicates(k, None, CurateConfig()).height == 0
    loose = CurateConfig.model_validate({"dedup": {"minhash": {"threshold": j - 0.01}}})
    shared_band = len(set(k["bands"][0]) & set(k["bands"][1])) > 0
    assert find_duplicates(k, None, loose).height == int(shared_band)
