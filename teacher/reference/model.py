"""What the reference teacher says. It is a deterministic program, not a language model.

  arithmetic ("What is 123 + 989?", also - and *): worked column arithmetic as reasoning,
      then "123 + 989 = 1112." and a final line "Answer: 1112"
  a grading prompt (JUDGE_TEMPLATE): PASS/FAIL by solving the question's arithmetic and
      comparing the candidate's final number; UNSURE when it has no arithmetic
  anything else: an honest extractive response -- it says what it is and quotes the first
      sentences (or lines of code) of the input; media is acknowledged, not described.

The model name picks the reasoning form, so clients can be tested against each:
  ...-vllm -> `reasoning` field; ...-think -> inline <think>..</think>;
  ...-think-open -> inline with the opening tag missing; otherwise `reasoning_content`.
`distillery-reference-noisy` answers a seeded share of arithmetic prompts wrong, with
plausible wrong working (teacher.reference.noisy); the others exactly as the rest do.
"""

from __future__ import annotations

import re

from distillery.encoding import get_encoding
from teacher.arithmetic import SYMBOL, parse_question, solve_steps
from teacher.mathcheck import as_number, final_answer
from teacher.reference.noisy import MODEL as NOISY_MODEL
from teacher.reference.noisy import Noise, wrong_working
from teacher.tokens import prompt_tokens

MODELS = ("distillery-reference", "distillery-reference-vllm", "distillery-reference-think",
          "distillery-reference-think-open", NOISY_MODEL)  # fmt: skip
INTRO = "I am the Distillery reference teacher, a deterministic program rather than a language model"


def user_text(messages: list[dict]) -> tuple[str, list[str]]:
    """The last user message's text and the kinds of media parts it carries."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content, []
            parts = content or []
            text = "\n".join(p.get("text", "") for p in parts if p.get("type") == "text")
            return text, [p.get("type", "?") for p in parts if p.get("type") != "text"]
    return "", []


def _section(text: str, title: str) -> str:
    match = re.search(rf"{title}:\n(.*?)(?:\n\n[A-Z][^\n]*:\n|\Z)", text, re.DOTALL)
    return match.group(1).strip() if match else ""


def _judge(text: str) -> tuple[str, str]:
    parsed = parse_question(_section(text, "Question"))
    if parsed is None:
        return "The question has no arithmetic I can check.", "UNSURE"
    _, expected = solve_steps(*parsed)
    got = as_number(final_answer(_section(text, "Candidate answer")))
    verdict = "PASS" if got == expected else "FAIL"
    return f"The correct result is {expected}; the candidate's final answer is {got}.", verdict


def _extractive(text: str, media: list[str]) -> tuple[str, str]:
    reasoning = "The prompt is not an arithmetic question, so I quote the input instead of inventing content."
    lines = [INTRO + ", so this is an extractive response."]
    if media:
        lines.append(f"The message carries {', '.join(media)} content, which I cannot perceive.")
    code = re.search(r"```([\w+-]*)\n(.*?)```", text, re.DOTALL)
    if code:
        body = code.group(2)
        kept = [ln for ln in body.splitlines() if ln.strip()]
        lines.append(f"The code has {len(kept)} non-empty lines. I cannot improve it; here it is unchanged:")
        lines.append(f"```{code.group(1)}\n{body}```")
        return reasoning, "\n\n".join(lines)
    passage = _section(text, "Passage") or text
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(passage.split()))
    lines.append("Key sentences of the input:\n" + "\n".join(f"- {s}" for s in sentences[:3] if s))
    return reasoning, "\n\n".join(lines)


def think(messages: list[dict], model: str = MODELS[0], noise: Noise | None = None) -> tuple[str, str]:
    """(reasoning, answer) for a chat; `noise` (default Noise()) is read by the noisy model only."""
    text, media = user_text(messages)
    if "Reply with PASS or FAIL" in text:
        return _judge(text)
    parsed = parse_question(text)
    if parsed is not None:
        wrong = wrong_working(noise or Noise(), text, *parsed) if model == NOISY_MODEL else None
        if wrong is not None:
            return wrong
        steps, result = solve_steps(*parsed)
        a, op, b = parsed
        return "\n".join(steps), f"{a} {SYMBOL[op]} {b} = {result}.\nAnswer: {result}"
    return _extractive(text, media)


def respond(
    messages: list[dict], model: str, max_tokens: int | None, truncate: bool = False, noise: Noise | None = None
) -> dict:
    """An assistant message dict plus finish_reason and usage, as the server returns them.

    `truncate` forces finish_reason "length" (fault injection); otherwise it happens when
    reasoning + answer exceed `max_tokens`.
    """
    reasoning, answer = think(messages, model, noise)
    enc = get_encoding("cl100k_base")
    r_tok, a_tok = enc.encode(reasoning, disallowed_special=()), enc.encode(answer, disallowed_special=())
    limit = max_tokens if max_tokens is not None else 1 << 30
    if truncate:
        limit = min(limit, max(1, (len(r_tok) + len(a_tok)) // 3))
    finish = "stop"
    if len(r_tok) + len(a_tok) > limit:
        finish = "length"
        r_tok, a_tok = r_tok[:limit], a_tok[: max(0, limit - len(r_tok))]
        reasoning, answer = enc.decode(r_tok), enc.decode(a_tok)
    if model.endswith("-think-open"):
        message = {"role": "assistant", "content": f"{reasoning}\n</think>\n\n{answer}"}
    elif model.endswith("-think"):
        message = {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{answer}"}
    elif model.endswith("-vllm"):
        message = {"role": "assistant", "content": answer, "reasoning": reasoning}
    else:
        message = {"role": "assistant", "content": answer, "reasoning_content": reasoning}
    return {
        "message": message,
        "finish_reason": finish,
        "prompt_tokens": prompt_tokens(messages),
        "completion_tokens": len(r_tok) + len(a_tok),
    }
