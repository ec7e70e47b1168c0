"""Multi-digit arithmetic asked in plain words, solved step by step the way a pupil would.

The reference teacher uses `solve_steps` for its chain of thought, and the math verifier
uses `reference_answer` to compute the expected result when a row carries none. Only
non-negative integer operands and the operators + - * are understood; anything else is
"not a question" (None), never a guess.
"""

from __future__ import annotations

import re

MAX_DIGITS = 200  # longer operands are refused: the question is not a sane arithmetic drill

_OPS = {
    "+": "+", "plus": "+", "added to": "+",
    "-": "-", "−": "-", "minus": "-",
    "*": "*", "×": "*", "x": "*", "times": "*", "multiplied by": "*",
}  # fmt: skip
_OP_PATTERN = "|".join(re.escape(k) for k in sorted(_OPS, key=len, reverse=True))
QUESTION = re.compile(
    rf"(?<![\d.])(\d{{1,{MAX_DIGITS}}})\s*({_OP_PATTERN})\s*(\d{{1,{MAX_DIGITS}}})(?![\d.])",
    re.IGNORECASE,
)
SYMBOL = {"+": "+", "-": "-", "*": "×"}
PLACE_NAMES = ("units", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands")


def parse_question(text: str) -> tuple[int, str, int] | None:
    """Return (a, op, b) for the first 'a <op> b' in `text`, op in + - *; None if there is none."""
    match = QUESTION.search(text or "")
    if match is None:
        return None
    return int(match.group(1)), _OPS[match.group(2).lower()], int(match.group(3))


def evaluate(a: int, op: str, b: int) -> int:
    """The exact result of a <op> b."""
    return a + b if op == "+" else a - b if op == "-" else a * b


def reference_answer(text: str) -> str | None:
    """The correct answer to the arithmetic question in `text`, as a decimal string, or None."""
    parsed = parse_question(text)
    return None if parsed is None else str(evaluate(*parsed))


def _place(i: int) -> str:
    return PLACE_NAMES[i] if i < len(PLACE_NAMES) else f"10^{i} place"


def _addition(a: int, b: int) -> list[str]:
    da, db = str(a)[::-1], str(b)[::-1]
    steps = [f"Add {a} and {b} column by column from the right, carrying when a column reaches 10."]
    carry, out = 0, []
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        total = x + y + carry
        with_carry = f" + carry {carry}" if carry else ""
        steps.append(
            f"{_place(i).capitalize()}: {x} + {y}{with_carry} = {total}, write {total % 10}"
            + (f", carry {total // 10}." if total >= 10 else ".")
        )
        out.append(str(total % 10))
        carry = total // 10
    if carry:
        steps.append(f"The final carry {carry} becomes the leading digit.")
        out.append(str(carry))
    return steps


def _subtraction(a: int, b: int) -> list[str]:
    if a < b:
        return [f"{b} is larger than {a}, so compute {b} - {a} and make the result negative."] + (
            _subtraction(b, a)[1:]
        )
    da, db = str(a)[::-1], str(b)[::-1]
    steps = [f"Subtract {b} from {a} column by column from the right, borrowing when needed."]
    borrow = 0
    for i in range(len(da)):
        x = int(da[i]) - borrow
        y = int(db[i]) if i < len(db) else 0
        shown = f"{da[i]} - borrow 1" if borrow else da[i]
        if x < y:
            steps.append(
                f"{_place(i).capitalize()}: {shown} is smaller than {y}, borrow 1 from the next "
                f"column: {x + 10} - {y} = {x + 10 - y}."
            )
            borrow = 1
        else:
            steps.append(f"{_place(i).capitalize()}: {shown} - {y} = {x - y}.")
            borrow = 0
    return steps


def _multiplication(a: int, b: int) -> list[str]:
    steps = [f"Multiply {a} by each digit of {b} from the right, shifting each partial product."]
    partials = []
    for i, digit in enumerate(str(b)[::-1]):
        partial = a * int(digit) * 10**i
        partials.append(partial)
        steps.append(f"{a} × {digit} ({_place(i)}) = {a * int(digit)}, shifted: {partial}.")
    if len(partials) > 1:
        steps.append(f"Add the partial products: {' + '.join(map(str, partials))} = {sum(partials)}.")
    return steps


def solve_steps(a: int, op: str, b: int) -> tuple[list[str], int]:
    """The worked steps for a <op> b and the result."""
    result = evaluate(a, op, b)
    steps = {"+": _addition, "-": _subtraction, "*": _multiplication}[op](a, b)
    steps.append(f"So {a} {SYMBOL[op]} {b} = {result}.")
    return steps, result
