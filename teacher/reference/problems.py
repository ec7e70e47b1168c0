"""A tiny generator of verifiable arithmetic problems for the demo pipeline."""

from __future__ import annotations

import hashlib
import json
import random

import polars as pl
import pyarrow as pa

from distillery.tables import DOCUMENT
from teacher.arithmetic import evaluate

_WORDS = {"+": "+", "-": "-", "*": "*"}


def arithmetic_problems(n: int, seed: int, digits: int) -> list[dict]:
    """Return `n` problems {"question": "What is 123 + 989?", "answer": "1112"}.

    Operands have exactly `digits` digits; operators are drawn from + - * uniformly.
    The same (n, seed, digits) always gives the same list.
    """
    if digits < 1:
        raise ValueError("digits must be >= 1")
    rng = random.Random(seed)
    low, high = (0 if digits == 1 else 10 ** (digits - 1)), 10**digits - 1
    problems = []
    for _ in range(n):
        a, b, op = rng.randint(low, high), rng.randint(low, high), rng.choice("+-*")
        problems.append({"question": f"What is {a} {_WORDS[op]} {b}?", "answer": str(evaluate(a, op, b))})
    return problems


def problems_frame(problems: list[dict], source: str = "arithmetic") -> pl.DataFrame:
    """DOCUMENT rows for `problems`: text = question, meta = {"answer": ...}, ids by content hash."""
    records = [
        {
            "id": hashlib.sha256(b"text\0" + p["question"].encode()).hexdigest()[:32],
            "modality": "text",
            "source": source,
            "uri": f"{source}#{i}",
            "license": "CC0-1.0",
            "text": p["question"],
            "media": None,
            "meta": json.dumps({"answer": p["answer"]}),
            "parents": [],
        }  # fmt: skip
        for i, p in enumerate(problems)
    ]
    return pl.from_arrow(pa.Table.from_pylist(records, schema=DOCUMENT))
