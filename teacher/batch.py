"""The OpenAI Batch API path: same requests, same cache, half the price, hours of latency.

For the requests the cache cannot answer (one batch per model): write the request file in
the Batch API's JSONL format, upload it (files API, purpose "batch"), create the batch,
poll until it ends, and write each response body into the request cache under its key
(custom_id = cache key). The request file and a small state file naming the batch id live
under `<cache_dir>/_batches/`: JSONL is the API's upload format, not a data table. The
state file is written as soon as the batch exists, so a crash or a BatchPending while
polling resumes the SAME batch on the next run instead of paying for a second one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import openai

from teacher.cache import write_atomic
from teacher.client import Answer, Request, Requester, connection_failure
from teacher.response import Unusable, parse_body
from teacher.templates import PromptError

TERMINAL = {"completed", "failed", "expired", "cancelled"}


class BatchPending(Exception):
    """The batch is still running after batch_wait_s; re-run later to collect it."""


async def run_batch(requester: Requester, requests: list[Request]) -> list[Answer]:
    """Answers in `requests` order: cached, collected from a batch, failed, or refused by the budget."""
    answers: dict[str, Answer] = {}
    todo = []
    for r in requests:
        if (hit := requester.cached(r)) is not None:
            answers[r.key] = hit
        else:
            todo.append(r)
    by_model: dict[str, list[Request]] = {}
    for r in todo:
        by_model.setdefault(r.model, []).append(r)
    for model, reqs in by_model.items():
        held, sendable = [], []
        for r in reqs:  # reserve in order; the first that does not fit stops the rest
            reservation = None if held and held[-1] is None else requester.budget.reserve(
                model, r.prompt_tokens, r.max_output_tokens)  # fmt: skip
            held.append(reservation)
            if reservation is None:
                answers[r.key] = Answer(
                    None, "budget_exhausted", "the budget does not cover this request", refused=True
                )
            else:
                sendable.append(r)
        try:
            if sendable:
                answers.update(await _submit_and_collect(requester, model, sendable))
        finally:
            for reservation in held:
                if reservation is not None:
                    requester.budget.release(reservation)
    return [answers[r.key] for r in requests]


async def _submit_and_collect(requester: Requester, model: str, reqs: list[Request]) -> dict[str, Answer]:
    cfg, client = requester.cfg, requester.client
    answers: dict[str, Answer] = {}
    lines = []
    for r in reqs:
        try:
            body = {"model": r.model, "messages": r.messages(), **r.params}
        except PromptError as exc:
            answers[r.key] = Answer(None, exc.reason, requester.scrub(str(exc)))
            continue
        lines.append(json.dumps({"custom_id": r.key, "method": "POST", "url": "/v1/chat/completions", "body": body}))
    pending = [r for r in reqs if r.key not in answers]
    if not pending:
        return answers
    name = hashlib.sha256("\n".join(sorted(r.key for r in pending)).encode()).hexdigest()[:32]
    folder = requester.cache_dir / "_batches"
    state_path = folder / f"{name}.json"
    try:
        if state_path.exists():
            batch_id = json.loads(state_path.read_text())["batch_id"]
        else:
            payload = ("\n".join(lines) + "\n").encode()
            write_atomic(folder / f"{name}.jsonl", payload)
            uploaded = await client.files.create(file=(f"{name}.jsonl", payload), purpose="batch")
            batch = await client.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                completion_window=cfg.batch_completion_window,
            )  # fmt: skip
            batch_id = batch.id
            write_atomic(state_path, json.dumps({"batch_id": batch_id, "model": model}).encode())
            requester.stats["batches_created"] += 1
        requester.stats["requests"] += len(pending)
        batch = await _wait(requester, batch_id)
        collected = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = await client.files.content(file_id)
                collected.update(_collect(requester, model, content.content))
    except openai.APIError as exc:
        if isinstance(exc, openai.APIStatusError):
            reason = f"teacher_http_{exc.status_code}"
        else:
            reason = (connection_failure(exc) or ("teacher_connection_error", ""))[0]
        message = requester.scrub(f"batch API call failed: {type(exc).__name__}: {exc}")
        return answers | {r.key: Answer(None, reason, message, requested=True) for r in pending}
    for r in pending:
        answers[r.key] = collected.get(r.key) or Answer(
            None, f"teacher_batch_{batch.status}", f"batch {batch.status} without a result for this request",
            requested=True,
        )  # fmt: skip
    state_path.unlink(missing_ok=True)  # collected: a re-run resubmits only what failed
    return answers


async def _wait(requester: Requester, batch_id: str):
    cfg = requester.cfg
    started = time.monotonic()
    while True:
        batch = await requester.client.batches.retrieve(batch_id)
        if batch.status in TERMINAL:
            return batch
        if cfg.batch_wait_s is not None and time.monotonic() - started > cfg.batch_wait_s:
            raise BatchPending(f"batch {batch_id} still {batch.status} after {cfg.batch_wait_s}s; re-run to collect")
        await asyncio.sleep(cfg.batch_poll_s)


def _collect(requester: Requester, model: str, jsonl: bytes) -> dict[str, Answer]:
    """Cache every 200 body of a batch output (or error) file; Answers by custom_id."""
    out = {}
    for line in jsonl.splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            key = item["custom_id"]
        except (ValueError, KeyError, TypeError):
            continue  # a line we cannot attribute: its request ends as teacher_batch_<status>
        response = item.get("response") or {}
        code, body = response.get("status_code"), response.get("body")
        if code == 200 and body is not None:
            raw = json.dumps(body).encode()  # the body as the API returned it, re-serialized
            requester.cache(model).put(key, raw)
            try:
                completion = parse_body(raw)
            except Unusable as exc:
                requester.cache(model).set_aside(key)
                out[key] = Answer(None, exc.reason, requester.scrub(str(exc)), requested=True)
                continue
            requester.budget.settle(model, completion.prompt_tokens, completion.completion_tokens)
            out[key] = Answer(completion, requested=True)
        else:
            detail = item.get("error") or (body.get("error") if isinstance(body, dict) else body)
            reason = f"teacher_http_{code}" if code else "teacher_batch_error"
            out[key] = Answer(None, reason, requester.scrub(f"batch item failed: {str(detail)[:300]}"), requested=True)
    return out
