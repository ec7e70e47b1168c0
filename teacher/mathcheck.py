"""Compare a teacher's final numeric answer with a reference (exact rational comparison).

Run as `python -m teacher.mathcheck`: reads a JSON list of [answer, reference] pairs on
stdin and writes a JSON list of [verdict, detail] on stdout, so the verifier can run it in
a subprocess under a time limit (a pathological answer cannot hang the pipeline).
"""

from __future__ import annotations

import json
import re
import sys
from fractions import Fraction

_FINAL_LINE = re.compile(r"(?im)^[\s*#>]*(?:final\s+)?answer\s*\**\s*[:=]\s*(.+?)\s*$")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_NUMBER = re.compile(r"[-−]?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?")
MAX_NUMBER_CHARS = 4000  # Python refuses longer int strings anyway (int_max_str_digits)


def final_answer(text: str) -> str | None:
    """The text of the final answer: the last 'Answer: ...' line, else the last \\boxed{}, else the last number."""
    for pattern in (_FINAL_LINE, _BOXED, _NUMBER):
        found = pattern.findall(text or "")
        if found:
            return found[-1]
    return None


def as_number(text: str | None) -> Fraction | None:
    """The first number in `text` as an exact Fraction ('1,112', '-3.5', '7/2', '−4')."""
    match = _NUMBER.search(text or "")
    if match is None or len(match.group()) > MAX_NUMBER_CHARS:
        return None
    token = match.group().replace(",", "").replace("−", "-").replace(" ", "")
    try:
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None


def check(answer: str, reference: str | None) -> tuple[str, str]:
    """(verdict, detail): pass | fail | unverified (no reference to compare with)."""
    expected = as_number(reference)
    if expected is None:
        return "unverified", "no numeric reference answer"
    final = final_answer(answer)
    got = as_number(final)
    if got is None:
        return "fail", "no numeric final answer found"
    if got == expected:
        return "pass", f"final answer {final.strip()[:100]} equals the reference"
    return "fail", f"final answer {final.strip()[:100]} != reference {str(reference)[:100]}"


def main() -> int:
    pairs = json.load(sys.stdin)
    json.dump([check(answer, reference) for answer, reference in pairs], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
