"""The noisy reference teacher over real loopback HTTP, and the distill stage's math verification
of its answers: the wrong ones are rejected with the rule, the right ones kept."""

from __future__ import annotations

import json

import polars as pl

from teacher import DistillConfig, distill_partition
from teacher.arithmetic import SYMBOL, parse_question
from teacher.mathcheck import final_answer
from teacher.reference.noisy import MODEL, Noise, errs
from teacher.reference.problems import arithmetic_problems, problems_frame
from teacher.reference.server import start_server

SOLVE = {"name": "solve", "template": "{text}", "selector": {"sources": ["arithmetic"]}, "verify": "math"}


def distill(url, tmp_path, verify="math"):
    rows = problems_frame(arithmetic_problems(160, seed=5, digits=3))
    cfg = DistillConfig(
        base_url=url, model=MODEL, tasks=[{**SOLVE, "verify": verify}], timeout_s=5, backoff_base_s=0.01
    )
    return rows, distill_partition(rows, cfg, tmp_path / f"cache-{verify}", tmp_path)


def test_math_verification_rejects_the_noisy_teachers_wrong_answers_and_keeps_the_right(tmp_path):
    noise = Noise(share=0.3, seed=1)
    server = start_server(noise=noise)
    try:
        rows, verified = distill(server.url, tmp_path)
        _, unverified = distill(server.url, tmp_path, verify="none")
    finally:
        server.stop()
    truth = {r["id"]: json.loads(r["meta"])["answer"] for r in rows.iter_rows(named=True)}
    wrong_ids = {r["id"] for r in rows.iter_rows(named=True) if errs(noise, r["text"])}
    assert 0.2 < len(wrong_ids) / rows.height < 0.4  # the seeded share, about 30 % of 160

    # verified: every wrong answer rejected with the rule, every right one kept
    s = verified.stats
    assert verified.rows_in == s["kept"] + s["rejected"] + s["quarantined"] and s["quarantined"] == 0
    rejects = verified.tables["rejects"]
    assert set(rejects["id"]) == wrong_ids and set(rejects["rule"]) == {"verification_failed"}
    traces = verified.tables["traces"]
    kept = traces.filter(pl.col("accepted"))
    assert {i for ids in kept["source_ids"] for i in ids} == set(truth) - wrong_ids
    assert all(final_answer(a) == truth[ids[0]] for a, ids in zip(kept["answer"], kept["source_ids"]))
    failed = traces.filter(~pl.col("accepted"))
    assert set(failed["verdict"]) == {"fail"} and failed.height == len(wrong_ids)
    for reasoning, answer, ids in zip(failed["reasoning"], failed["answer"], failed["source_ids"]):
        a, op, b = parse_question(rows.filter(pl.col("id") == ids[0])["text"][0])
        assert final_answer(answer) != truth[ids[0]]  # wrong, with working that reads like the real one
        steps = reasoning.splitlines()
        assert len(steps) >= 3 and steps[-1] == f"So {a} {SYMBOL[op]} {b} = {final_answer(answer)}."

    # verification off: the same answers, wrong ones kept too
    assert unverified.stats["kept"] == rows.height and unverified.tables["rejects"].height == 0
    by_key = dict(zip(traces["cache_key"], traces["answer"]))
    off = unverified.tables["traces"]
    assert sorted(off["answer"]) == sorted(by_key.values())


def test_noisy_answers_depend_only_on_seed_and_prompt(tmp_path):
    texts = [p["question"] for p in arithmetic_problems(400, seed=2, digits=2)]
    picked = [errs(Noise(0.3, seed=0), t) for t in texts]
    assert picked == [errs(Noise(0.3, seed=0), t) for t in texts]
    assert picked != [errs(Noise(0.3, seed=1), t) for t in texts]
    assert not any(errs(Noise(0.0), t) for t in texts) and all(errs(Noise(1.0), t) for t in texts)
