"""bench/distill_proof.py's --quick setting end to end: three arms through `distillery run`,
one student each. It checks the plumbing (decontamination, shards, the arms' data differing
as intended, an exact-match figure), not the result: that is the full benchmark's job."""

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
    # --quick as the README runs it; only where it runs differs (a folder, the session's
    # server, a free port: a bench may be running on the fixed one)
    argv = ["--quick", "--work", str(tmp_path), "--prefect-api", prefect_server.api_url]
    argv += ["--teacher-port", str(free_port())]
    out = distill_proof.main(argv)
    quick = distill_proof.QUICK

    counts = out["counts"]
    for arm in ("verified", "unverified", "answers"):
        assert counts[arm]["heldout_dropped"] == quick["test"]  # every held-out question was decontaminated
        assert counts[arm]["shard_rows"] > 0
        assert any((tmp_path / arm / "lake" / "shard").rglob("train-*.parquet"))
    # the noisy teacher's wrong answers: rejected in arms 1 and 3, trained on in arm 2
    for arm in ("verified", "answers"):
        assert counts[arm]["wrong_answers_kept"] == 0 and counts[arm]["verification_rejects"] > 0
    assert counts["unverified"]["wrong_answers_kept"] > 0 and counts["unverified"]["verification_rejects"] == 0
    assert counts["unverified"]["shard_rows"] > counts["verified"]["shard_rows"] == counts["answers"]["shard_rows"]
    # arm 3 is arm 1's rows without their reasoning
    assert counts["answers"]["rows_with_reasoning"] == 0 < counts["verified"]["rows_with_reasoning"]
    assert sorted((r["arm"], r["seed"]) for r in out["results"]) == [("answers", 0), ("unverified", 0), ("verified", 0)]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in out["results"])
