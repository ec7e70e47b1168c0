"""Fault injection for the reference teacher: deterministic, per prompt, counted.

A Fault applies to requests whose last user message contains `match` ("" = every request),
for its first `times` matching requests (None = always). Kinds:

  rate_limit    429 with Retry-After (whole seconds, rounded up) and retry-after-ms = `seconds`
  server_error  HTTP `status` (default 500) with a JSON error body
  timeout       hold the connection `seconds`, then close it without answering
  delay         wait `seconds`, then answer normally
  malformed     200 with a body cut off in the middle of its JSON
  empty         200 with an empty body
  empty_content 200, valid JSON, but the message content is empty (a paid, useless answer)
  truncated     answer cut at a third of its tokens, finish_reason "length"
  disconnect    200 headers and half the body, then the socket is closed
  echo_auth     401 whose body quotes the request's Authorization header (as some proxies do)
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal[
    "rate_limit", "server_error", "timeout", "delay", "malformed", "empty",
    "empty_content", "truncated", "disconnect", "echo_auth",
]  # fmt: skip


@dataclass
class Fault:
    kind: FaultKind
    match: str = ""
    times: int | None = 1
    seconds: float = 0.0
    status: int = 500
    used: int = 0


@dataclass
class FaultPlan:
    """An ordered list of faults; the first one still armed that matches a request applies."""

    faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def pick(self, prompt: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.match in prompt and (fault.times is None or fault.used < fault.times):
                    fault.used += 1
                    return fault
        return None


# The kinds a fault schedule draws from: what an OpenAI-compatible server under load does to
# a request (issue 13): rate limits, server errors, stalls past the client's timeout,
# malformed and empty bodies, dropped connections, truncated answers.
SCHEDULE_KINDS: tuple[FaultKind, ...] = (
    "rate_limit", "server_error", "timeout", "malformed", "empty", "disconnect", "truncated",
)  # fmt: skip


@dataclass
class FaultSchedule(FaultPlan):
    """Which attempt of which prompt fails, and how: `plan[prompt][i]` is the fault of the
    prompt's (i+1)-th request (None = answered normally); attempts past the list succeed.

    Prompts are matched exactly (the last user message's text), so a schedule is the same
    for every client that sends the same messages, whatever its request order. `attempts`
    counts the requests each prompt received, scheduled or not; `arrivals` lists them as
    (time.monotonic(), prompt) in the order they arrived. (A FaultPlan in the server's eyes:
    only `pick` differs.)
    """

    plan: dict[str, list[Fault | None]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    arrivals: list[tuple[float, str]] = field(default_factory=list)

    def pick(self, prompt: str) -> Fault | None:
        with self._lock:
            n = self.attempts.get(prompt, 0)
            self.attempts[prompt] = n + 1
            self.arrivals.append((time.monotonic(), prompt))
        faults = self.plan.get(prompt, [])
        return faults[n] if n < len(faults) else None


def seeded_schedule(
    prompts: list[str],
    seed: int,
    first_rate: float = 0.6,
    second_rate: float = 0.25,
    stall_s: float = 4.0,
    retry_after_s: float = 1.0,
    kinds: tuple[FaultKind, ...] = SCHEDULE_KINDS,
) -> FaultSchedule:
    """A deterministic schedule: each prompt's first attempt fails with probability
    `first_rate`, and a failed prompt's second attempt with probability `second_rate`, each
    with a kind drawn uniformly from `kinds` (a server error is a 500 or a 503; a
    "timeout" stalls `stall_s`, which should exceed the client's timeout; a rate limit asks
    for `retry_after_s`). A truncated answer is a complete, paid response, so it ends the
    prompt's schedule. The same (prompts, seed, rates) always gives the same schedule.
    """
    rng = random.Random(seed)
    plan: dict[str, list[Fault | None]] = {}
    for prompt in prompts:
        faults: list[Fault | None] = []
        for rate in (first_rate, second_rate):
            if rng.random() >= rate:
                break
            kind = rng.choice(kinds)
            faults.append(
                Fault(kind, match=prompt, times=None, status=rng.choice((500, 503)),
                      seconds=stall_s if kind == "timeout" else retry_after_s if kind == "rate_limit" else 0.0)
            )  # fmt: skip
            if kind == "truncated":
                break
        plan[prompt] = faults
    return FaultSchedule(plan=plan)
