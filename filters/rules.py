"""The rule table: each rule is data (name, statistic column, comparison, threshold).

A rule FAILS a row when `column <op> threshold` holds; a null statistic means "does not
apply" (e.g. a code rule on a text row) and never fails. `first_failure` evaluates the
whole table as one Polars expression: the first failing rule in table order names the
reject and its measured value is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

Op = Literal["<", "<=", ">", ">=", "==", "!="]


@dataclass(frozen=True)
class Rule:
    name: str
    column: str
    op: Op
    threshold: float
    # The recorded rule name gets ":<value of this column>" (e.g. decontam:<benchmark>).
    suffix_column: str | None = None

    def label(self) -> pl.Expr:
        if self.suffix_column is None:
            return pl.lit(self.name)
        return pl.concat_str([pl.lit(f"{self.name}:"), pl.col(self.suffix_column)])

    def fails(self) -> pl.Expr:
        # NaN (undefined statistic) reads as null: Polars orders NaN above every number.
        c = pl.col(self.column).cast(pl.Float64).fill_nan(None)
        t = pl.lit(self.threshold, dtype=pl.Float64)
        expr = {"<": c < t, "<=": c <= t, ">": c > t, ">=": c >= t, "==": c == t, "!=": c != t}[self.op]
        return expr.fill_null(False)


def rule_if(name: str, column: str, op: Op, threshold: float | None) -> list[Rule]:
    """A one-rule list, or no rule when the threshold is switched off (None)."""
    return [] if threshold is None else [Rule(name, column, op, float(threshold))]


def first_failure(stats: pl.DataFrame, rules: list[Rule]) -> pl.DataFrame:
    """(rule, value) per row of `stats`: the first failing rule's name and measured value,
    or nulls when every rule passes."""
    if not rules:
        return pl.DataFrame(
            {"rule": [None] * stats.height, "value": [None] * stats.height},
            schema={"rule": pl.Utf8, "value": pl.Float64},
        )
    name = pl.when(rules[0].fails()).then(rules[0].label())
    value = pl.when(rules[0].fails()).then(pl.col(rules[0].column).cast(pl.Float64).fill_nan(None))
    for r in rules[1:]:
        name = name.when(r.fails()).then(r.label())
        value = value.when(r.fails()).then(pl.col(r.column).cast(pl.Float64).fill_nan(None))
    return stats.select(
        name.otherwise(pl.lit(None, pl.Utf8)).alias("rule"), value.otherwise(pl.lit(None, pl.Float64)).alias("value")
    )
