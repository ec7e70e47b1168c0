"""Ask an OpenAI-compatible endpoint, once per content address, within rate and money limits.

`Requester.request` serves a request from the cache when it can; otherwise it reserves the
worst-case spend, waits for the rpm/tpm buckets, and sends it with the `openai` client
(its own retries off: failures are told apart here):

  429, 408, 409, 5xx        retried with jittered exponential backoff; Retry-After(-ms) honoured
  timeout, dropped socket   retried the same way
  refused, DNS failure      retried the same way, then teacher_connection_refused or
                            teacher_dns_failure (the transport reports these as connect
                            timeouts; the cause chain tells them apart, see connection_failure)
  200 with an empty body    retried (nothing was delivered), then teacher_empty_response
  200, malformed JSON       body set aside, retried, then teacher_malformed
  other 4xx                 not retried: teacher_http_<code>
A 200 body (a JSON document, or the raw SSE transcript when `stream` is on) is written to
the cache BEFORE it is parsed. finish_reason=length and empty
answers inside a valid body are NOT retried here: the body was paid for, so it stays cached
and the caller decides (see distill.py). Every error message is scrubbed of the API key.
The backoff spaces the starts of a request's attempts (an attempt that stalled to the
timeout is retried at once), Retry-After counts from the answer, and a request waiting
either out holds no concurrency slot.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import random
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai

from teacher.budget import Budget
from teacher.cache import ResponseCache
from teacher.config import DistillConfig
from teacher.ratelimit import TokenBucket
from teacher.response import Completion, Unusable, parse_body
from teacher.scrub import scrub
from teacher.templates import PromptError
from teacher.writer import CacheWriter

RETRYABLE_STATUS = {408, 409, 429}  # plus every 5xx


@dataclass
class Answer:
    """How one request ended: a parsed completion, or a reason code and a scrubbed message."""

    completion: Completion | None
    reason: str | None = None
    error: str | None = None
    requested: bool = False  # went over the wire in this run (not served from the cache)
    refused: bool = False  # not sent: the budget would have been crossed


@dataclass
class Request:
    key: str
    model: str
    messages: Callable[[], list[dict]]  # builds the wire form lazily (media read at send time)
    params: dict  # sampling parameters, exactly as hashed into the key
    prompt_tokens: int  # estimate, for the buckets and the budget

    @property
    def max_output_tokens(self) -> int:
        """The most output this request can be billed for (n samples of max_tokens each)."""
        return int(self.params.get("max_tokens", 0)) * int(self.params.get("n", 1))


def retry_after_s(headers: object) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, then Retry-After seconds or date)."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    if (ms := get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    if (value := get("retry-after")) is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            return max(0.0, when.timestamp() - time.time())
    return None


def connection_failure(exc: BaseException) -> tuple[str, str] | None:
    """(reason, cause) when `exc` means no connection could be made, else None.

    The openai client's aiohttp transport reports a refused connection and a failed DNS
    lookup as a ConnectTimeout, raised in milliseconds; calling that a timeout sent users
    looking for a slow teacher when none was listening. The OS error in the cause chain
    says what happened."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError):
            return "teacher_connection_refused", "connection refused"
        if isinstance(cur, socket.gaierror):
            return "teacher_dns_failure", f"host name not resolved ({cur.strerror or cur})"
        cur = cur.__cause__ or cur.__context__
    return None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context per process (the system's CAs; SSL_CERT_FILE / SSL_CERT_DIR honoured).

    Loading the CA bundle takes ~50 ms; built per client it would be paid once per partition.
    """
    return ssl.create_default_context()


class Requester:
    """One connection pool, cache, budget and pair of buckets shared by a partition's requests."""

    def __init__(self, cfg: DistillConfig, cache_dir: Path, budget: Budget, api_key: str | None) -> None:
        self.cfg, self.cache_dir, self.budget = cfg, Path(cache_dir), budget
        self.api_key = api_key
        self.client = openai.AsyncOpenAI(
            base_url=cfg.base_url,
            api_key=api_key or "no-key-needed",  # the client insists on a value; local servers ignore it
            max_retries=0,
            timeout=cfg.timeout_s,
            # aiohttp as the transport (the openai package's `aiohttp` extra): about a third
            # less CPU per request than its default pool, which bounds a partition's rate
            http_client=openai.DefaultAioHttpClient(timeout=cfg.timeout_s, verify=tls_context()),
        )
        self.slots = asyncio.Semaphore(cfg.concurrency)
        self.rpm, self.tpm = TokenBucket(cfg.rpm), TokenBucket(cfg.tpm)
        self.caches: dict[str, ResponseCache] = {}
        self.stats: Counter[str] = Counter()
        self.writer = CacheWriter()

    def cache(self, model: str) -> ResponseCache:
        if model not in self.caches:
            self.caches[model] = ResponseCache(self.cache_dir, model)
        return self.caches[model]

    def scrub(self, text: str) -> str:
        return scrub(text, [self.api_key])

    def cached(self, req: Request) -> Answer | None:
        """The answer from the cache, or None if this request was never answered."""
        body = self.cache(req.model).get(req.key)
        if body is None:
            return None
        try:
            completion = parse_body(body)
        except Unusable:
            self.cache(req.model).set_aside(req.key)  # left by a crash between write and check
            return None
        self.stats["cache_hits"] += 1
        return Answer(completion)

    def backoff_s(self, attempt: int) -> float:
        base = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2**attempt)
        return base * random.uniform(0.5, 1.5)

    async def request(self, req: Request) -> Answer:
        """Answer `req` from the cache or the server (see module docstring)."""
        if (hit := self.cached(req)) is not None:
            return hit
        async with self.slots:  # reserve only once a slot is free: at most `concurrency` held
            held = self.budget.reserve(req.model, req.prompt_tokens, req.max_output_tokens)
            if held is None:
                return Answer(None, "budget_exhausted", "the budget does not cover this request", refused=True)
            try:
                return await self._send(req)
            finally:
                self.budget.release(held)

    async def _send(self, req: Request) -> Answer:
        try:
            messages = req.messages()
        except PromptError as exc:
            return Answer(None, exc.reason, self.scrub(str(exc)))
        reason, error = "teacher_error", "not attempted"
        for attempt in range(self.cfg.max_retries + 1):
            await self.rpm.take(1)
            await self.tpm.take(req.prompt_tokens + req.max_output_tokens)
            self.stats["requests"] += 1
            started, delay = time.monotonic(), None
            try:
                # the client's generic POST (its documented way to reach any endpoint): the
                # typed create() re-validates every message dict, a few ms of CPU per request
                raw = await self.client.post(
                    "/chat/completions", cast_to=httpx.Response,
                    body={"model": req.model, "messages": messages, **req.params},
                )  # fmt: skip
                body = raw.content
            except openai.APITimeoutError as exc:
                if (failed := connection_failure(exc)) is not None:
                    reason, error = failed[0], self.scrub(f"{failed[1]} at {self.cfg.base_url}")
                else:
                    reason, error = "teacher_timeout", f"no response within {self.cfg.timeout_s}s"
            except openai.APIStatusError as exc:
                code = exc.status_code
                reason = f"teacher_http_{code}"
                error = self.scrub(f"HTTP {code}: {exc.response.text[:300]}")
                if code not in RETRYABLE_STATUS and code < 500:
                    break
                delay = retry_after_s(exc.response.headers)
            except openai.APIConnectionError as exc:
                cause = exc.__cause__ or exc
                reason, error = connection_failure(exc) or ("teacher_connection_error", "")
                error = self.scrub(f"{type(cause).__name__}: {cause}")
            except openai.APIError as exc:  # anything else the client reports: not worth a retry
                reason, error = "teacher_error", self.scrub(f"{type(exc).__name__}: {exc}")
                break
            else:
                if not body.strip():
                    reason, error = "teacher_empty_response", "HTTP 200 with an empty body"
                else:
                    # paid: keep it before parsing (off the loop: see teacher/writer.py)
                    await self.writer.put(self.cache(req.model), req.key, body)
                    try:
                        completion = parse_body(body)
                    except Unusable as exc:
                        self.cache(req.model).set_aside(req.key)
                        reason, error = exc.reason, self.scrub(str(exc))
                    else:
                        self.budget.settle(req.model, completion.prompt_tokens, completion.completion_tokens)
                        self.stats["answered"] += 1
                        return Answer(completion, requested=True)
            self.stats[f"retry_{reason}"] += 1
            if attempt < self.cfg.max_retries:
                # the backoff spaces the STARTS of attempts: one that already took that long
                # (a stall up to the timeout) is retried at once; Retry-After counts from the answer
                spent = time.monotonic() - started
                await self._wait_out(delay if delay is not None else max(0.0, self.backoff_s(attempt) - spent))
        self.stats[f"failed_{reason}"] += 1
        return Answer(None, reason, error, requested=True)

    async def _wait_out(self, seconds: float) -> None:
        """Sleep `seconds` before a retry without holding a concurrency slot (the caller holds
        one): a request waiting out its backoff or Retry-After sends nothing, so it must not
        keep other prompts from being sent. It queues for a slot again after the wait, so a
        retry never goes out sooner than `seconds`. Its budget reservation stays held: the
        request may still be paid for."""
        self.slots.release()
        try:
            await asyncio.sleep(seconds)
        finally:
            await self.slots.acquire()

    async def close(self) -> None:
        await self.writer.close()
        await self.client.close()
