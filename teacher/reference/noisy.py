"""The noisy reference teacher (`distillery-reference-noisy`): wrong on purpose, on a known share.

On a seeded share of arithmetic prompts (`Noise.share`, default 30 %) it answers wrong
with plausible wrong working: it miscopies one digit of the second operand (a digit d read
as d + 1 mod 10, in a column picked from the prompt's hash) and then works the miscopied
problem correctly, column by column. The steps' first line and the final line still name
the operands of the question, as a pupil's copying slip would, so the working reads like
the exact teacher's and only the result (and the one miscopied column) is wrong.

Which prompts err, and which digit, depends only on (seed, prompt text): the same prompt
gets the same answer on every request, in every process, whatever the order of requests
(the teacher cache and resumed runs rely on that). Non-arithmetic prompts are answered as
the exact teacher answers them.

The default share 30 % is the order of the error rates that motivate verification: s1
(Muennighoff et al. 2025) and OpenThoughts (Guha et al. 2025) filtered out roughly a
quarter to a half of their teachers' math traces as wrong or unverifiable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from teacher.arithmetic import SYMBOL, solve_steps

MODEL = "distillery-reference-noisy"


@dataclass(frozen=True)
class Noise:
    """share: the fraction of arithmetic prompts answered wrong; seed: picks which ones."""

    share: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"noise share must be in [0, 1], got {self.share}")


def _draw(noise: Noise, text: str) -> tuple[float, int]:
    """(uniform in [0, 1), a second integer for the digit to miscopy) from (seed, text)."""
    digest = hashlib.sha256(f"noisy:{noise.seed}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, int.from_bytes(digest[8:16], "big")


def errs(noise: Noise, text: str) -> bool:
    """Whether the noisy teacher answers the prompt `text` wrong."""
    return _draw(noise, text)[0] < noise.share


def miscopied(b: int, pick: int) -> int:
    """`b` with one digit (position `pick` mod its length) read as that digit + 1 mod 10.
    A leading 9 of a multi-digit number becomes 8 instead, so the operand keeps its length."""
    digits = list(str(b))
    i = pick % len(digits)
    d = int(digits[i])
    digits[i] = str(8 if i == 0 and d == 9 and len(digits) > 1 else (d + 1) % 10)
    return int("".join(digits))


def wrong_working(noise: Noise, text: str, a: int, op: str, b: int) -> tuple[str, str] | None:
    """(reasoning, answer) with a miscopied digit of `b` when the prompt is one the noisy
    teacher gets wrong; None when it answers this prompt right."""
    if not errs(noise, text):
        return None
    copied = miscopied(b, _draw(noise, text)[1])
    shown_steps, _ = solve_steps(a, op, b)
    steps, result = solve_steps(a, op, copied)
    steps[0] = shown_steps[0]  # the heading names the operands of the question
    steps[-1] = f"So {a} {SYMBOL[op]} {b} = {result}."
    return "\n".join(steps), f"{a} {SYMBOL[op]} {b} = {result}.\nAnswer: {result}"
