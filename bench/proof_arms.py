"""The data arms of bench/distill_proof.py, each made by the pipeline a user runs.

Every arm is one config run with `distillery run CONFIG --stages gather,curate,distill,shard`
in its own folder (a user's environment: no PREFECT_API_URL), against the noisy reference
teacher (teacher/reference/noisy.py) on loopback:

  verified     the noisy teacher's traces after distill's math verification (verify: math)
  unverified   the same teacher, the same prompts, verification off (verify: none)
  answers      the verified traces with their reasoning left out (shard.trace_reasoning: false)
  exact        (optional ceiling) the exact reference teacher, verified

The gathered problems include the held-out ones, as a crawl might: the curate stage's
decontamination (filters/decontam.py, an eval set of the held-out questions, word 4-grams:
"what is 57 38" is the whole question) must drop every one of them, and `check_arm`
asserts it did and that no shard row descends from a held-out question.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from distillery.lake import Lake
from distillery.sql import query
from teacher.arithmetic import reference_answer
from teacher.mathcheck import final_answer
from teacher.reference.noisy import MODEL as NOISY_MODEL
from teacher.reference.problems import arithmetic_problems

REPO = Path(__file__).resolve().parents[1]
ARMS = ("verified", "unverified", "answers", "exact")
# (teacher model, distill verify, shard trace_reasoning) per arm
ARM_SETTINGS = {
    "verified": (NOISY_MODEL, "math", True),
    "unverified": (NOISY_MODEL, "none", True),
    "answers": (NOISY_MODEL, "math", False),
    "exact": ("distillery-reference", "math", True),
}
DECONTAM_RULE = "decontam:heldout"

CONFIG = """\
name: proof-{arm}
lake: lake
sources:
  - {{name: problems, kind: jsonl, paths: ["problems.jsonl"], text_field: text, license: CC0-1.0}}
curate:
  web_rules_exempt_sources: [problems]   # questions are not web pages
  decontam:
    eval_sets: [{{name: heldout, path: heldout.jsonl}}]
    text_ngram: 4   # a question is 4 words ("what is 57 38"): a 4-gram match is the whole question
distill:
  base_url: {url}
  model: {model}
  concurrency: 16
  timeout_s: 60
  tasks:
    - {{name: arithmetic, template: "{{text}}", selector: {{sources: [problems]}}, verify: {verify}}}
shard:
  val_fraction: {val_fraction}
  trace_reasoning: {reasoning}
run:
  partition_rows: {partition_rows}
"""


def problems(n_train: int, n_test: int, digits: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Disjoint train / held-out additions (each question once), drawn with `seed`."""
    unique: dict[str, dict] = {}
    for p in arithmetic_problems(10 * (n_train + n_test), seed, digits):
        if " + " in p["question"]:
            unique.setdefault(p["question"], p)
    pool = list(unique.values())
    random.Random(seed).shuffle(pool)
    if len(pool) < n_train + n_test:
        raise SystemExit(f"only {len(pool)} distinct problems; ask for fewer")
    return pool[n_test : n_test + n_train], pool[:n_test]


def write_inputs(folder: Path, train: list[dict], test: list[dict], seed: int) -> None:
    """problems.jsonl (train and held-out mixed, as gathered) and heldout.jsonl (the eval set)."""
    folder.mkdir(parents=True, exist_ok=True)
    mixed = train + test
    random.Random(seed + 1).shuffle(mixed)
    _write_if_changed(folder / "problems.jsonl", [{"text": p["question"], "answer": p["answer"]} for p in mixed])
    _write_if_changed(folder / "heldout.jsonl", [{"text": p["question"]} for p in test])


# The inputs' mtime, whenever written: a source file's fingerprint (size:mtime) names its
# gather partitions, whose names order the shard build's rows, so a file rewritten with
# another mtime would train the students on another data order (and print other figures).
INPUT_MTIME_NS = 1_700_000_000 * 10**9


def _write_if_changed(path: Path, records: list[dict]) -> None:
    """Write JSONL unless `path` holds it already, with the fixed INPUT_MTIME_NS either way:
    a re-run with --work gathers nothing new, and every run orders the data alike."""
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    os.utime(path, ns=(INPUT_MTIME_NS, INPUT_MTIME_NS))


def run_arm(
    arm: str, folder: Path, inputs: Path, url: str, val_fraction: float, log: Path, prefect_api: str | None = None
) -> Path:
    """Run the pipeline for one arm in `folder`; return its shard build's folder. With no
    `prefect_api` it runs as a user does (no PREFECT_API_URL: the CLI starts its own server)."""
    model, verify, reasoning = ARM_SETTINGS[arm]
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("problems.jsonl", "heldout.jsonl"):  # copies: gather refuses links out of the folder
        if not (folder / name).exists() or (folder / name).read_bytes() != (inputs / name).read_bytes():
            shutil.copy2(inputs / name, folder / name)
    n_rows = sum(1 for _ in open(inputs / "problems.jsonl"))
    config = CONFIG.format(
        arm=arm,
        url=url,
        model=model,
        verify=verify,
        reasoning=str(reasoning).lower(),
        val_fraction=val_fraction,
        partition_rows=max(1000, n_rows // 2),  # two partitions: both of the 2 cores busy in distill
    )
    (folder / "config.yaml").write_text(config)
    env = dict(os.environ, PYTHONPATH=str(REPO), DISTILLERY_RUN_DIR=str(folder / "run"))
    env["PREFECT_HOME"] = str(folder / "run" / "prefect")
    env.pop("PREFECT_API_URL", None)  # the user's default path: the CLI starts its own Prefect
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    cmd = [sys.executable, "-m", "distillery.cli", "run", "config.yaml", "--stages", "gather,curate,distill,shard"]
    with open(log, "ab") as out:
        done = subprocess.run(cmd, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"[{arm}] `distillery run` failed (exit {done.returncode}); see {log}")
    lake = Lake(folder / "lake")
    return lake.stage_dir("shard") / (lake.stage_dir("shard") / "CURRENT").read_text().strip()


def check_arm(arm: str, folder: Path, test: list[dict]) -> dict:
    """The arm's counts from its lake, after asserting that decontamination dropped every
    held-out question and that no shard row descends from one."""
    lake = Lake(folder / "lake")

    def one(sql: str) -> int:
        return int(query(lake, sql)[1][0][0])

    questions = ", ".join("'" + p["question"] + "'" for p in test)
    gathered = one(f"SELECT count(*) FROM documents WHERE text IN ({questions})")
    dropped = one(f"SELECT count(*) FROM rejects WHERE stage = 'curate' AND rule = '{DECONTAM_RULE}'")
    leaked = one(
        f"SELECT count(*) FROM shards s JOIN documents d ON list_contains(s.parents, d.id) WHERE d.text IN ({questions})"
    )
    if gathered != len(test) or dropped != len(test) or leaked:
        raise SystemExit(
            f"[{arm}] decontamination check failed: {gathered} held-out questions gathered, "
            f"{dropped} dropped by {DECONTAM_RULE}, {leaked} shard rows from held-out questions"
        )
    return {
        "heldout_dropped": dropped,
        "verification_rejects": one("SELECT count(*) FROM rejects WHERE rule = 'verification_failed'"),
        "wrong_answers_kept": wrong_answers_kept(lake),
        "shard_rows": one("SELECT count(*) FROM shards WHERE split = 'train'"),
        # more than the <|think|><|/think|> pair that frames an empty reasoning span
        "rows_with_reasoning": one(
            "SELECT count(*) FROM shards WHERE split = 'train'"
            " AND len([s FOR s IN spans IF s.kind = 'reasoning' AND s.length > 2]) > 0"
        ),
    }


def wrong_answers_kept(lake: Lake) -> int:
    """Accepted traces whose final answer is not the question's (the noisy answers an arm trains on)."""
    _, rows = query(
        lake,
        "SELECT t.answer, d.text FROM traces t JOIN documents d ON d.id = t.source_ids[1] WHERE t.accepted",
    )
    return sum(final_answer(answer) != reference_answer(text) for answer, text in rows)
