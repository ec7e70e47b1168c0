"""Separate a teacher's reasoning from its answer, whatever form the server used.

Forms seen in the wild:
  * `reasoning_content` beside `content` (DeepSeek's API, SGLang)
  * `reasoning` beside `content` (vLLM's reasoning parsers, OpenRouter)
  * inline `<think>...</think>` at the start of `content` (raw R1-style models)
  * inline `...</think>` with the opening tag missing (chat templates that pre-fill
    `<think>` in the prompt, so the model's output starts inside the block)
  * an unclosed `<think>...` (the answer was truncated while still thinking)
"""

from __future__ import annotations

import re

_THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def _as_text(value: object) -> str:
    """Content may be a string or a list of parts ({"type": "text", "text": ...})."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_as_text(p.get("text") if isinstance(p, dict) else p) for p in value)
    if isinstance(value, dict):
        return _as_text(value.get("text") or value.get("content"))
    return str(value)


def split_reasoning(message: dict) -> tuple[str | None, str]:
    """Return (reasoning or None, answer) from one chat `message` dict (or a stream's merged delta).

    Explicit fields win; inline think blocks found in the content are removed from the answer
    and appended to the reasoning, so nothing the teacher wrote is lost or shown twice.
    """
    # some servers fill both fields with the same text: take the first one present
    parts = [_as_text(message.get("reasoning_content")) or _as_text(message.get("reasoning"))]
    content = _as_text(message.get("content"))
    if "</think>" in content and "<think>" not in content.split("</think>", 1)[0]:
        head, content = content.split("</think>", 1)  # opening tag was in the prompt
        parts.append(head)
    parts.extend(_THINK_BLOCK.findall(content))
    content = _THINK_BLOCK.sub("", content)
    if "<think>" in content:  # unclosed: truncated while thinking
        content, tail = content.split("<think>", 1)
        parts.append(tail)
    reasoning = "\n\n".join(p.strip() for p in parts if p and p.strip())
    return (reasoning or None), content.strip()
