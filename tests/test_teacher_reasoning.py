"""Reasoning is separated from the answer in every form servers use."""

from __future__ import annotations

import polars as pl
import pytest

from teacher import DistillConfig, distill_partition
from teacher.reasoning import split_reasoning
from teacher.reference.problems import arithmetic_problems, problems_frame
from teacher.reference.server import start_server


@pytest.mark.parametrize(
    "message, expected",
    [
        ({"content": "42", "reasoning_content": "six times seven"}, ("six times seven", "42")),
        ({"content": "42", "reasoning": "six times seven"}, ("six times seven", "42")),
        ({"content": "<think>six times seven</think>\n\n42"}, ("six times seven", "42")),
        ({"content": "six times seven\n</think>\n42"}, ("six times seven", "42")),  # opening tag in the prompt
        ({"content": "<think>six times"}, ("six times", "")),  # truncated while thinking
        ({"content": "42"}, (None, "42")),
        ({"content": None, "reasoning_content": "only thoughts"}, ("only thoughts", "")),
        ({"content": [{"type": "text", "text": "<think>a</think>"}, {"type": "text", "text": "b"}]}, ("a", "b")),
        ({"content": "x", "reasoning_content": "same", "reasoning": "same"}, ("same", "x")),  # not doubled
        ({"content": "<think>a</think> mid <think>b</think> end"}, ("a\n\nb", "mid  end")),
    ],
)
def test_split_reasoning_forms(message, expected):
    assert split_reasoning(message) == expected


def test_every_server_form_gives_the_same_trace(tmp_path):
    server = start_server()
    try:
        rows = problems_frame(arithmetic_problems(3, seed=6, digits=3))
        found = {}
        for model in ("distillery-reference", "distillery-reference-vllm", "distillery-reference-think",
                      "distillery-reference-think-open"):  # fmt: skip
            cfg = DistillConfig(
                base_url=server.url, model=model, tasks=[{"name": "s", "template": "solve", "verify": "math"}]
            )
            result = distill_partition(rows, cfg, tmp_path / "c", tmp_path)
            found[model] = result.tables["traces"].select("reasoning", "answer", "verdict")
        first = found["distillery-reference"]
        assert first["verdict"].to_list() == ["pass"] * 3
        assert all("<think>" not in a and "</think>" not in a for a in first["answer"])
        for model, frame in found.items():
            assert frame.equals(first), model
        assert (tmp_path / "c" / "distillery-reference-vllm").is_dir()  # one cache folder per model
        assert isinstance(first, pl.DataFrame)
    finally:
        server.stop()


def test_stream_assembly_and_cut_stream():
    from teacher.response import Unusable, parse_body

    events = [
        b'data: {"model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}',
        b'data: {"choices": [{"index": 0, "delta": {"reasoning_content": "think "}}]}',
        b'data: {"choices": [{"index": 0, "delta": {"reasoning_content": "hard"}}]}',
        b'data: {"choices": [{"index": 0, "delta": {"content": "42"}, "finish_reason": "stop"}]}',
        b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}',
    ]
    done = parse_body(b"\n\n".join(events + [b"data: [DONE]"]) + b"\n\n")
    assert (done.samples[0].reasoning, done.samples[0].answer, done.samples[0].finish_reason) == (
        "think hard",
        "42",
        "stop",
    )
    assert (done.prompt_tokens, done.completion_tokens) == (3, 4)
    with pytest.raises(Unusable):
        parse_body(b"\n\n".join(events[:3]))  # cut before [DONE]
