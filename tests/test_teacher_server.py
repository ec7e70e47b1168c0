"""The reference teacher as an OpenAI-compatible server, spoken to with the openai client."""

from __future__ import annotations

import openai
import pytest

from teacher.arithmetic import parse_question, reference_answer, solve_steps
from teacher.mathcheck import check
from teacher.reference.problems import arithmetic_problems
from teacher.reference.server import start_server


@pytest.fixture(scope="module")
def server():
    handle = start_server()
    yield handle
    handle.stop()


def test_problems_are_deterministic_and_correct():
    a = arithmetic_problems(50, seed=1, digits=4)
    assert a == arithmetic_problems(50, seed=1, digits=4) and a != arithmetic_problems(50, seed=2, digits=4)
    for p in a:
        x, op, y = parse_question(p["question"])
        assert len(str(x)) == len(str(y)) == 4
        assert reference_answer(p["question"]) == p["answer"]


@pytest.mark.parametrize("a, op, b", [(123, "+", 989), (1000, "-", 1), (5, "-", 12), (123, "*", 789), (0, "*", 7)])
def test_worked_steps_end_in_the_result(a, op, b):
    steps, result = solve_steps(a, op, b)
    assert result == eval(f"{a}{op}{b}") and steps[-1].endswith(f"= {result}.")


def test_mathcheck_forms():
    assert check("so 1,112\nAnswer: 1,112", "1112")[0] == "pass"
    assert check("the result is \\boxed{7/2}", "3.5")[0] == "pass"
    assert check("Answer: 12", "13")[0] == "fail"
    assert check("no number here", "13")[0] == "fail"
    assert check("Answer: 1", None)[0] == "unverified"


def test_chat_completion_with_n_and_usage(server):
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
    assert "distillery-reference" in [m.id for m in client.models.list().data]
    reply = client.chat.completions.create(
        model="distillery-reference", n=2, messages=[{"role": "user", "content": "What is 123 + 989?"}]
    )
    assert [c.message.content for c in reply.choices] == ["123 + 989 = 1112.\nAnswer: 1112"] * 2
    raw = reply.choices[0].message.model_extra["reasoning_content"]
    assert "carry 1" in raw and reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0
    other = client.chat.completions.create(
        model="distillery-reference", messages=[{"role": "user", "content": "Tell me about owls. They hoot."}]
    )
    assert "reference teacher" in other.choices[0].message.content and "They hoot." in other.choices[0].message.content
    short = client.chat.completions.create(
        model="distillery-reference", max_tokens=5, messages=[{"role": "user", "content": "What is 123 * 456?"}]
    )
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 5
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])


def test_streaming_matches_non_streaming(server):
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "What is 4321 - 987?"}]
    whole = client.chat.completions.create(model="distillery-reference", messages=messages)
    content, reasoning, usage = "", "", None
    stream = client.chat.completions.create(
        model="distillery-reference", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
    assert content == whole.choices[0].message.content
    assert reasoning == whole.choices[0].message.model_extra["reasoning_content"]
    assert usage.completion_tokens == whole.usage.completion_tokens
