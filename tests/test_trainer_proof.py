"""bench/distill_proof.py's smallest path end to end: two arms through `distillery run`, one
student each for a few steps. It checks the plumbing (decontamination, shards, the arms'
data differing as intended, an exact-match figure), not the result."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import free_port

REPO = Path(__file__).resolve().parents[1]


def test_quick_proof_arms_differ_as_intended(prefect_server, tmp_path):
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import distill_proof
    finally:
        sys.path.remove(str(REPO / "bench"))
    argv = ["--arms", "verified,unverified", "--train", "150", "--test", "20", "--steps", "3", "--seeds", "1"]
    argv += ["--layers", "1", "--embd", "16", "--work", str(tmp_path), "--prefect-api", prefect_server.api_url]
    argv += ["--teacher-port", str(free_port())]  # not the bench's fixed port: a bench may be running
    out = distill_proof.main(argv)

    counts = out["counts"]
    for arm in ("verified", "unverified"):
        assert counts[arm]["heldout_dropped"] == 20  # every held-out question gathered was decontaminated
        assert counts[arm]["shard_rows"] > 0
        assert any((tmp_path / arm / "lake" / "shard").rglob("train-*.parquet"))
    assert counts["verified"]["wrong_answers_kept"] == 0 and counts["verified"]["verification_rejects"] > 0
    assert counts["unverified"]["wrong_answers_kept"] > 0 and counts["unverified"]["verification_rejects"] == 0
    assert counts["unverified"]["shard_rows"] > counts["verified"]["shard_rows"]
    assert sorted((r["arm"], r["seed"]) for r in out["results"]) == [("unverified", 0), ("verified", 0)]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in out["results"])
