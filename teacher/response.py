"""Parse a raw chat-completion body into samples (reasoning apart from answer) and usage.

Parsing is separate from fetching so that the cache can keep the raw body and a later,
better parser can re-read it for free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from teacher.reasoning import split_reasoning


class Unusable(Exception):
    """A 200 whose body carries no response at all; `reason` is the quarantine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Sample:
    index: int
    reasoning: str | None
    answer: str
    finish_reason: str | None


@dataclass
class Completion:
    samples: list[Sample]
    prompt_tokens: int
    completion_tokens: int
    model: str | None


def assemble_stream(body: bytes) -> dict:
    """A chat.completion dict from a streamed (SSE) body: deltas joined per choice index.

    A stream that ends without `data: [DONE]` was cut off and is Unusable.
    """
    choices: dict[int, dict] = {}
    usage, model, done = None, None, False
    for line in body.decode("utf-8", errors="replace").splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            raise Unusable("teacher_malformed", "a stream event is not JSON") from None
        model = chunk.get("model", model)
        usage = chunk.get("usage") or usage
        for c in chunk.get("choices") or []:
            slot = choices.setdefault(c.get("index", 0), {"message": {}, "finish_reason": None})
            for key, value in (c.get("delta") or {}).items():
                if isinstance(value, str) and key != "role":
                    slot["message"][key] = slot["message"].get(key, "") + value
            slot["finish_reason"] = c.get("finish_reason") or slot["finish_reason"]
    if not done:
        raise Unusable("teacher_malformed", "the stream ended before data: [DONE]")
    return {
        "model": model,
        "choices": [{"index": i, **choices[i]} for i in sorted(choices)],
        "usage": usage or {},
    }


def parse_body(body: bytes) -> Completion:
    """The samples and usage in a raw body (JSON, or SSE when streamed); raises Unusable for
    empty or malformed bodies."""
    if not body.strip():
        raise Unusable("teacher_empty_response", "HTTP 200 with an empty body")
    if body.lstrip().startswith(b"data:"):
        doc = assemble_stream(body)
    else:
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise Unusable("teacher_malformed", f"body is not JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
        raise Unusable("teacher_malformed", "body has no 'choices' list")
    samples = []
    for position, choice in enumerate(doc["choices"]):
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            raise Unusable("teacher_malformed", f"choice {position} has no message object")
        reasoning, answer = split_reasoning(choice["message"])
        index = choice.get("index", position)
        samples.append(Sample(int(index) if isinstance(index, int) else position, reasoning, answer,
                              choice.get("finish_reason")))  # fmt: skip
    usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
    return Completion(
        samples=sorted(samples, key=lambda s: s.index),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        model=doc.get("model"),
    )


def sample_problem(sample: Sample | None) -> tuple[str, str] | None:
    """(reason, message) when a sample carries no usable answer, else None."""
    if sample is None:
        return "teacher_empty_response", "the response has no choice for this sample"
    if sample.finish_reason == "length":
        return "teacher_truncated", "the answer hit max_tokens (finish_reason=length)"
    if sample.finish_reason == "content_filter":
        return "teacher_content_filter", "the server filtered the answer (finish_reason=content_filter)"
    if not sample.answer:
        return "teacher_empty_response", "the response's message has no answer text"
    return None
