"""Token buckets for requests per minute and tokens per minute (asyncio)."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """Holds up to `per_minute` units, refilled continuously at per_minute/60 per second.

    `take` waits until the amount is available; callers queue in arrival order (one lock),
    so a large request is not starved by small ones. `per_minute=None` never waits.
    """

    def __init__(self, per_minute: float | None) -> None:
        self.capacity = per_minute
        self.level = per_minute or 0.0
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, amount: float) -> None:
        if self.capacity is None:
            return
        amount = min(amount, self.capacity)  # a request bigger than a minute's worth still goes
        async with self._lock:
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.stamp) * self.capacity / 60)
                self.stamp = now
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) * 60 / self.capacity)
