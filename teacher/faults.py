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

import threading
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
