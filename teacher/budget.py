"""A hard spending limit in tokens and/or dollars that holds across crashes and re-runs.

What was spent is recomputed from the request cache at start (everything cached was paid
for), so the limit covers the cache directory's whole history: a run stopped by the budget
resumes, with a raised limit, exactly where it stopped. Before a request is sent its
worst case (estimated input + max_tokens of output) is reserved; a request whose worst
case would cross the limit is not sent. So the limit is never exceeded, provided the
server honours max_tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from teacher.cache import Spend, cached_spend


class BudgetExhausted(Exception):
    """The budget was reached before the partition finished; nothing of it should be committed."""


@dataclass
class Reservation:
    tokens: int
    usd: float


class Budget:
    """Spend so far plus in-flight reservations, checked against the configured limits."""

    def __init__(
        self,
        cache_dir: Path,
        prices: dict[str, tuple[float, float]],
        limit_tokens: int | None,
        limit_usd: float | None,
    ) -> None:
        self.prices = prices
        self.limit_tokens, self.limit_usd = limit_tokens, limit_usd
        limited = limit_tokens is not None or limit_usd is not None
        self.spent = cached_spend(cache_dir, prices) if limited else Spend()
        self.reserved = Reservation(0, 0.0)
        self.refused = 0  # requests not sent because of the limit

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for this usage, or None when the model has no price."""
        if model not in self.prices:
            return None
        price_in, price_out = self.prices[model]
        return (prompt_tokens * price_in + completion_tokens * price_out) / 1e6

    def reserve(self, model: str, prompt_tokens: int, max_tokens: int) -> Reservation | None:
        """Hold the worst case of one request, or None (and count a refusal) if it does not fit.

        After the first refusal every later request is refused too, so a run stops at one
        clear point instead of trickling on with whatever small requests still fit.
        """
        if self.refused:
            self.refused += 1
            return None
        worst = Reservation(prompt_tokens + max_tokens, self.cost(model, prompt_tokens, max_tokens) or 0.0)
        if self.limit_tokens is not None and (
            self.spent.tokens + self.reserved.tokens + worst.tokens > self.limit_tokens
        ):
            self.refused += 1
            return None
        if self.limit_usd is not None and self.spent.usd + self.reserved.usd + worst.usd > self.limit_usd:
            self.refused += 1
            return None
        self.reserved.tokens += worst.tokens
        self.reserved.usd += worst.usd
        return worst

    def release(self, held: Reservation) -> None:
        self.reserved.tokens -= held.tokens
        self.reserved.usd -= held.usd

    def settle(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Record what a response actually cost."""
        self.spent.prompt_tokens += prompt_tokens
        self.spent.completion_tokens += completion_tokens
        self.spent.usd += self.cost(model, prompt_tokens, completion_tokens) or 0.0
