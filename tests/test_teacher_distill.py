"""distill_partition against the reference teacher over real loopback HTTP."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import soundfile
from PIL import Image

from distillery.result import conform
from distillery.tables import DOCUMENT, QUARANTINE, REJECT, TRACE
from teacher import DistillConfig, distill_partition
from teacher.cache import cached_spend
from teacher.reference.problems import arithmetic_problems, problems_frame
from teacher.reference.server import start_server


@pytest.fixture
def server():
    handle = start_server()
    yield handle
    handle.stop()


def doc(text=None, *, modality="text", source="web", media=None, meta=None, uri=None):
    key = (text or media or "").encode()
    return {
        "id": hashlib.sha256(modality.encode() + b"\0" + key).hexdigest()[:32],
        "modality": modality, "source": source, "uri": uri or f"{source}/{key[:12]!r}",
        "license": None, "text": text, "media": media, "meta": json.dumps(meta or {}), "parents": [],
    }  # fmt: skip


def frame(records):
    return pl.from_arrow(pa.Table.from_pylist(records, schema=DOCUMENT))


def config(url, tasks, **kw):
    return DistillConfig(base_url=url, tasks=tasks, timeout_s=5, backoff_base_s=0.01, **kw)


SOLVE = {"name": "solve", "template": "solve", "selector": {"sources": ["arithmetic"]}, "verify": "math"}


def balanced(result):
    s = result.stats
    assert result.rows_in == s["kept"] + s["rejected"] + s["quarantined"]
    assert result.tables["rejects"].height == s["rejected"]
    assert result.tables["quarantine"].height == s["quarantined"]
    for name, schema in (("traces", TRACE), ("rejects", REJECT), ("quarantine", QUARANTINE)):
        assert conform(result.tables[name], schema).schema == schema


def test_run_returns_verified_traces_and_rerun_is_free(server, tmp_path):
    rows = problems_frame(arithmetic_problems(6, seed=3, digits=4))
    passage = doc("Distillation moves knowledge. A teacher answers. The student learns. Then it ends.")
    rows = pl.concat([rows, frame([passage])])
    qa = {"name": "qa", "template": "qa_from_passage", "selector": {"sources": ["web"]}}
    cfg = config(server.url, [SOLVE, qa])
    first = distill_partition(rows, cfg, tmp_path / "cache", tmp_path)
    balanced(first)
    traces = first.tables["traces"]
    assert first.rows_in == 7 and first.stats["kept"] == 7
    assert traces.height == 7 and server.stats.completed == 7
    solved = traces.filter(pl.col("task") == "solve")
    assert solved["verdict"].to_list() == ["pass"] * 6
    assert all(r.startswith(("Add", "Subtract", "Multiply")) for r in solved["reasoning"])  # apart
    assert all("Answer:" in a and "column" not in a and "partial" not in a for a in solved["answer"])
    assert traces.filter(pl.col("task") == "qa")["verdict"].to_list() == ["unverified"]
    assert traces["source_ids"].to_list()[0] == [rows["id"][0]]
    assert traces["id"].to_list() == [hashlib.sha256(k.encode()).hexdigest()[:32] for k in traces["cache_key"]]

    requests_before = server.stats.requests
    second = distill_partition(rows, cfg, tmp_path / "cache", tmp_path)
    assert server.stats.requests == requests_before  # zero requests: all from the cache
    assert second.stats["cache_hits"] == 7
    assert second.tables["traces"].equals(traces)  # deterministic, identical output


def test_wrong_reference_is_rejected_with_passing_fraction(server, tmp_path):
    problems = arithmetic_problems(3, seed=5, digits=3)
    problems[1]["answer"] = str(int(problems[1]["answer"]) + 1)  # a wrong reference fails the teacher
    rows = problems_frame(problems)
    result = distill_partition(rows, config(server.url, [SOLVE]), tmp_path / "c", tmp_path)
    balanced(result)
    rejects = result.tables["rejects"]
    assert result.stats["kept"] == 2 and rejects.height == 1
    assert rejects["id"].to_list() == [rows["id"][1]]
    assert rejects.row(0, named=True) | {} == rejects.row(0, named=True)
    assert (rejects["stage"][0], rejects["rule"][0], rejects["value"][0]) == ("distill", "verification_failed", 0.0)
    assert result.tables["traces"].height == 3  # the failing trace is kept with its verdict
    assert sorted(result.tables["traces"]["verdict"]) == ["fail", "pass", "pass"]


def test_math_reference_computed_when_meta_has_none(server, tmp_path):
    rows = frame([doc("What is 4096 * 37?", source="arithmetic")])
    result = distill_partition(rows, config(server.url, [SOLVE]), tmp_path / "c", tmp_path)
    trace = result.tables["traces"].row(0, named=True)
    assert trace["reference"] == str(4096 * 37) and trace["verdict"] == "pass"


def test_n_samples_separate_requests_and_server_side(server, tmp_path):
    rows = problems_frame(arithmetic_problems(2, seed=1, digits=2))
    sep = distill_partition(rows, config(server.url, [SOLVE], n_samples=3), tmp_path / "a", tmp_path)
    assert sep.tables["traces"].height == 6 and server.stats.completed == 6
    assert sep.tables["traces"]["sample_index"].to_list() == [0, 1, 2, 0, 1, 2]
    assert len(set(sep.tables["traces"]["cache_key"])) == 6
    assert max(server.stats.by_request.values()) == 1  # seeds differ per sample

    both = config(server.url, [SOLVE], n_samples=3, server_side_n=True)
    grouped = distill_partition(rows, both, tmp_path / "b", tmp_path)
    assert server.stats.completed == 8  # one request per prompt
    traces = grouped.tables["traces"]
    assert traces.height == 6 and len(set(traces["id"])) == 6
    assert traces["cache_key"][1].endswith("#1")
    balanced(grouped)


def test_code_verification_runs_tests_in_subprocess(server, tmp_path):
    good = doc(
        "def add(a, b):\n    return a + b\n",
        modality="code",
        source="repo",
        meta={"language": "python", "tests": "assert add(2, 3) == 5"},
    )
    bad = doc(
        "def add(a, b):\n    return a - b\n",
        modality="code",
        source="repo",
        meta={"language": "python", "tests": "assert add(2, 3) == 5"},
    )
    hang = doc(
        "def spin():\n    pass\n",
        modality="code",
        source="repo",
        meta={"language": "python", "tests": "while True:\n    pass"},
    )
    untested = doc("x = 1\n", modality="code", source="repo", meta={"language": "python"})
    task = {"name": "code", "template": "explain_improve_code", "selector": {"modalities": ["code"]}, "verify": "code"}
    rows = frame([good, bad, hang, untested])
    result = distill_partition(rows, config(server.url, [task], verify_timeout_s=1.0), tmp_path / "c", tmp_path)
    balanced(result)
    verdicts = dict(zip(result.tables["traces"]["source_ids"].list.first(), result.tables["traces"]["verdict"]))
    assert verdicts == {good["id"]: "pass", bad["id"]: "fail", hang["id"]: "fail", untested["id"]: "unverified"}
    assert result.stats["kept"] == 1
    assert set(result.tables["rejects"]["id"]) == {bad["id"], hang["id"], untested["id"]}


def test_judge_verdicts_and_only_verified(server, tmp_path):
    rows = pl.concat([
        problems_frame(arithmetic_problems(2, seed=9, digits=3)),
        frame([doc("Nothing to compute here. Just prose.", source="arithmetic")]),
    ])  # fmt: skip
    judged = {"name": "judged", "template": "solve", "selector": {"sources": ["arithmetic"]}, "verify": "judge"}
    result = distill_partition(rows, config(server.url, [judged]), tmp_path / "c", tmp_path)
    balanced(result)
    assert result.tables["traces"]["verdict"].to_list() == ["pass", "pass", "unverified"]
    assert result.stats["kept"] == 2 and result.stats["rejected"] == 1
    lenient = config(server.url, [judged], only_verified=False)
    again = distill_partition(rows, lenient, tmp_path / "c", tmp_path)
    assert again.stats["kept"] == 3


def _png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(out, format="PNG")
    return out.getvalue()


def _audio(fmt: str) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, np.sin(np.linspace(0, 100, 800)).astype("float32"), 8000, format=fmt)
    return out.getvalue()


def _store(root, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    path = root / "media" / digest[:2] / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"media/{digest[:2]}/{digest}"


def test_media_prompts_send_bytes_but_store_hashes(server, tmp_path):
    image = doc(modality="image", source="pics", media=_store(tmp_path, _png()))
    wav = doc(modality="audio", source="sounds", media=_store(tmp_path, _audio("WAV")))
    flac = doc(modality="audio", source="sounds", media=_store(tmp_path, _audio("FLAC")))
    missing = doc(modality="image", source="pics", media="media/00/" + "0" * 64)
    tasks = [
        {"name": "describe", "template": "describe_image", "selector": {"modalities": ["image"]}},
        {"name": "listen", "template": "transcribe_audio", "selector": {"modalities": ["audio"]}},
    ]
    rows = frame([image, wav, flac, missing])
    result = distill_partition(rows, config(server.url, tasks), tmp_path / "c", tmp_path)
    balanced(result)
    traces = result.tables["traces"]
    assert traces["task"].to_list() == ["describe", "listen", "listen"]
    assert "image_url content" in traces["answer"][0] and "input_audio content" in traces["answer"][1]
    stored = json.loads(traces["messages"][0])[0]["content"][1]
    assert stored == {"type": "image_url", "image_url": {"url": image["media"]}}  # hash, not base64
    assert all(len(m) < 2000 for m in traces["messages"])
    quarantine = result.tables["quarantine"]
    assert quarantine["id"].to_list() == [missing["id"]]
    assert quarantine["reason"].to_list() == ["media_missing"]


def test_custom_template_and_regex_selector(server, tmp_path):
    rows = frame([doc("alpha line. beta."), doc("gamma line."), doc(None, modality="text")])
    task = {"name": "custom", "template": "Summarize ({source}): {text}", "selector": {"text_regex": "^alpha"}}
    result = distill_partition(rows, config(server.url, [task]), tmp_path / "c", tmp_path)
    assert result.rows_in == 1 and result.stats["kept"] == 1
    assert (result.stats["rows_seen"], result.stats["rows_without_task"]) == (3, 2)
    sent = json.loads(result.tables["traces"]["messages"][0])
    assert sent == [{"role": "user", "content": "Summarize (web): alpha line. beta."}]
    with pytest.raises(ValueError):
        config(server.url, [{"name": "x", "template": "Hi {nonsense}"}])
    with pytest.raises(ValueError):
        config(server.url, [SOLVE], surprise=1)


def test_empty_partition(server, tmp_path):
    result = distill_partition(frame([]), config(server.url, [SOLVE]), tmp_path / "c", tmp_path)
    assert result.rows_in == 0 and all(t.height == 0 for t in result.tables.values())
    balanced(result)


def test_identical_prompts_share_one_request_and_trace(server, tmp_path):
    one = doc("What is 20 + 22?", source="arithmetic", uri="a#1")
    two = dict(one, id="f" * 32, uri="b#7")  # same text from another place
    result = distill_partition(
        frame([one, two]), config(server.url, [SOLVE], rpm=6000, tpm=1_000_000), tmp_path / "c", tmp_path
    )
    balanced(result)
    assert server.stats.completed == 1 and result.stats["kept"] == 2
    assert result.tables["traces"]["source_ids"].to_list() == [[one["id"], two["id"]]]


def test_streamed_answers_equal_whole_ones(server, tmp_path):
    rows = problems_frame(arithmetic_problems(3, seed=12, digits=3))
    whole = distill_partition(
        rows, config(server.url, [SOLVE], n_samples=2, server_side_n=True), tmp_path / "a", tmp_path
    )
    cfg = config(server.url, [SOLVE], n_samples=2, server_side_n=True, stream=True)
    streamed = distill_partition(rows, cfg, tmp_path / "b", tmp_path)
    columns = ["reasoning", "answer", "verdict", "finish_reason", "prompt_tokens", "completion_tokens"]
    assert streamed.tables["traces"].select(columns).equals(whole.tables["traces"].select(columns))
    assert (tmp_path / "b").rglob("*.json").__next__().read_bytes().startswith(b"data:")  # raw SSE kept
    paid = streamed.tables["traces"].select(pl.col("prompt_tokens") + pl.col("completion_tokens")).sum().item()
    assert cached_spend(tmp_path / "b", {}).tokens == paid  # a budget can recount streamed bodies
    requests = server.stats.requests
    again = distill_partition(rows, cfg, tmp_path / "b", tmp_path)
    assert server.stats.requests == requests and again.tables["traces"].equals(streamed.tables["traces"])
    with pytest.raises(ValueError):
        config(server.url, [SOLVE], stream=True, mode="batch")
