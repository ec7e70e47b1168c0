"""The distill stage for one partition: prompts -> teacher samples -> verdicts -> tables.

Every prompt (row x matching task) ends in exactly one place:
  kept         >= 1 accepted trace (verdict pass; or unverified where the task verifies
               nothing, or anywhere when only_verified is off)
  rejected     traces came back but none was accepted: rule verification_failed, value =
               the passing fraction of its traces
  quarantined  no sample produced an answer: the first sample's reason code
The traces table holds every sample that produced an answer, accepted or not; a sample
whose answer was truncated, empty or never delivered has no trace (its body, when one was
paid for, stays in the cache and its reason is counted in stats).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pyarrow as pa

from distillery.result import PartitionResult
from distillery.tables import DOCUMENT, QUARANTINE, REJECT, TRACE
from teacher.batch import run_batch
from teacher.budget import Budget, BudgetExhausted
from teacher.cache import canonical_json
from teacher.client import Answer, Request, Requester
from teacher.config import DistillConfig
from teacher.plan import Prompt, make_request, plan_prompts, sampling_params
from teacher.response import Sample, sample_problem
from teacher.templates import JUDGE_TEMPLATE
from teacher.verify import judge_verdict, verify_code, verify_math

STAGE = "distill"


def distill_partition(rows: pl.DataFrame, cfg: DistillConfig, cache_dir: Path, media_root: Path) -> PartitionResult:
    """Distill one partition of curated DOCUMENT rows; see the module docstring for the contract.

    Raises BudgetExhausted when the budget stopped requests before the partition finished;
    what was paid is in the cache, so a re-run with a larger budget resumes for free.
    Safe to call from inside a running event loop (it then runs on a worker thread).
    """
    work = _distill(rows, cfg, Path(cache_dir), Path(media_root))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()


async def _execute(requester: Requester, cfg: DistillConfig, requests: list[Request]) -> dict[str, Answer]:
    """Answers by key; identical requests (same key) are asked once."""
    unique = list({r.key: r for r in requests}.values())
    if cfg.mode == "batch":
        answers = await run_batch(requester, unique)
    else:
        answers = await asyncio.gather(*(requester.request(r) for r in unique))
    if any(a.refused for a in answers):
        raise BudgetExhausted(
            f"budget reached (spent {requester.budget.spent.tokens} tokens, "
            f"${requester.budget.spent.usd:.4f}); {sum(a.refused for a in answers)} requests not sent"
        )
    return {r.key: a for r, a in zip(unique, answers)}


def _samples_of(prompt: Prompt, answers: dict[str, Answer], n: int) -> list[tuple[int, Request, Answer, Sample | None]]:
    """(sample index, request, answer, that sample's choice) for each of the prompt's n samples."""
    out = []
    for request, sample in prompt.requests:
        answer = answers[request.key]
        choices = answer.completion.samples if answer.completion else []
        indices = range(n) if sample is None else [sample]
        for position, i in enumerate(indices):
            pick = position if sample is None else 0
            out.append((i, request, answer, choices[pick] if pick < len(choices) else None))
    return out


async def _distill(rows: pl.DataFrame, cfg: DistillConfig, cache_dir: Path, media_root: Path) -> PartitionResult:
    prices = {m: (p.input, p.output) for m, p in cfg.prices.items()}
    budget = Budget(cache_dir, prices, cfg.budget_tokens, cfg.budget_usd)
    api_key = os.environ.get(cfg.api_key_env) or None
    requester = Requester(cfg, cache_dir, budget, api_key)
    try:
        prompts = plan_prompts(rows, cfg, media_root)
        answers = await _execute(requester, cfg, [r for p in prompts for r, _ in p.requests])
        # per prompt: list of (sample index, request, answer, sample choice)
        results = {id(p): _samples_of(p, answers, cfg.n_samples) for p in prompts}
        retry = cfg.truncation_retry_max_tokens
        if retry is not None and retry > cfg.max_tokens:
            await _retry_truncated(requester, cfg, prompts, results, retry, media_root)
        traces = _traces(prompts, results, cfg, budget)
        await _verify(requester, cfg, traces, media_root)
        return _assemble(rows, prompts, results, traces, cfg, requester)
    finally:
        await requester.close()


async def _retry_truncated(requester, cfg, prompts, results, max_tokens, media_root) -> None:
    """Ask once more, with the larger max_tokens, for each sample cut off by finish_reason=length."""
    todo = []
    for p in prompts:
        for slot, (i, _, _answer, sample) in enumerate(results[id(p)]):
            if sample is not None and sample.finish_reason == "length":
                req = make_request(cfg, cfg.model, p.messages, sampling_params(cfg, i, max_tokens), i, media_root)
                todo.append((p, slot, i, req))
    answers = await _execute(requester, cfg, [req for *_, req in todo])
    for p, slot, i, req in todo:
        answer = answers[req.key]
        choices = answer.completion.samples if answer.completion else []
        results[id(p)][slot] = (i, req, answer, choices[0] if choices else None)


def _traces(prompts, results, cfg: DistillConfig, budget: Budget) -> list[dict]:
    """One TRACE record per distinct sample that produced an answer (verdicts filled in later).

    Two prompts that sent exactly the same request (identical rows under one task) share
    one answer, so they share one trace, whose source_ids lists both rows.
    """
    traces: dict[str, dict] = {}
    for p in prompts:
        for i, req, answer, sample in results[id(p)]:
            if answer.completion is None or sample_problem(sample) is not None:
                continue
            cache_key = req.key if "n" not in req.params else f"{req.key}#{i}"
            if cache_key in traces:
                seen = traces[cache_key]
                if p.row["id"] not in seen["source_ids"]:
                    seen["source_ids"].append(p.row["id"])
                seen["_prompts"].append(id(p))
                continue
            done = answer.completion
            p_tok = _share(done.prompt_tokens, done.samples, sample)
            c_tok = _share(done.completion_tokens, done.samples, sample)
            traces[cache_key] = {
                "id": hashlib.sha256(cache_key.encode()).hexdigest()[:32],
                "source_ids": [p.row["id"]], "source": p.row.get("source"), "task": p.task.name,
                "sample_index": i, "model": req.model, "messages": canonical_json(p.messages),
                "reasoning": sample.reasoning, "answer": sample.answer, "reference": p.reference,
                "verdict": "unverified", "verdict_detail": "", "finish_reason": sample.finish_reason,
                "prompt_tokens": p_tok, "completion_tokens": c_tok,
                "cost": budget.cost(req.model, p_tok, c_tok), "cache_key": cache_key,
                "_prompts": [id(p)], "_verify": p.task.verify,
            }  # fmt: skip
    return list(traces.values())


def _share(total: int, samples: list[Sample], sample: Sample) -> int:
    """A sample's part of a response's usage: server-side n reports one usage for n samples,
    split evenly here, with the remainder on the first sample so the parts sum to the whole."""
    parts = len(samples) or 1
    return total // parts + (total % parts if sample.index == samples[0].index else 0)


def _question_of(messages_json: str) -> str:
    """The text of the last user message (what the judge is shown as the question)."""
    for message in reversed(json.loads(messages_json)):
        if message["role"] == "user":
            content = message["content"]
            return (
                content
                if isinstance(content, str)
                else " ".join(part.get("text", "") for part in content if part.get("type") == "text")
            )
    return ""


async def _verify(requester: Requester, cfg: DistillConfig, traces: list[dict], media_root: Path) -> None:
    """Fill verdict and verdict_detail of every trace, by its task's verifier."""
    by_kind: dict[str, list[dict]] = {}
    for t in traces:
        by_kind.setdefault(t["_verify"], []).append(t)
    for t in by_kind.get("none", []):
        t["verdict"], t["verdict_detail"] = "unverified", "the task verifies nothing"
    jobs = []
    for kind, verifier in (("math", verify_math), ("code", verify_code)):
        if by_kind.get(kind):
            pairs = [(t["answer"], t["reference"]) for t in by_kind[kind]]
            jobs.append((by_kind[kind], verifier(pairs, cfg.verify_timeout_s)))
    if by_kind.get("judge"):
        jobs.append((by_kind["judge"], _judge(requester, cfg, by_kind["judge"], media_root)))
    for group, verdicts in zip([g for g, _ in jobs], await asyncio.gather(*(j for _, j in jobs))):
        for t, (verdict, detail) in zip(group, verdicts):
            t["verdict"], t["verdict_detail"] = verdict, detail


async def _judge(requester, cfg: DistillConfig, traces: list[dict], media_root: Path) -> list[tuple[str, str]]:
    model = cfg.judge_model or cfg.model
    params = {"temperature": 0.0, "max_tokens": cfg.judge_max_tokens, "seed": 0}
    reqs = []
    for t in traces:
        question = _question_of(t["messages"])
        text = JUDGE_TEMPLATE.format(question=question, reference=t["reference"] or "", answer=t["answer"])
        reqs.append(make_request(cfg, model, [{"role": "user", "content": text}], params, 0, media_root))
    answers = await _execute(requester, cfg, reqs)
    verdicts = []
    for req in reqs:
        answer = answers[req.key]
        if answer.completion is None or not answer.completion.samples:
            verdicts.append(("unverified", f"judge request failed: {answer.reason}"))
        else:
            verdicts.append(judge_verdict(answer.completion.samples[0].answer))
    return verdicts


def _accepted(trace: dict, cfg: DistillConfig) -> bool:
    if trace["verdict"] == "pass":
        return True
    return trace["verdict"] == "unverified" and (trace["_verify"] == "none" or not cfg.only_verified)


def _frame(records: list[dict], schema: pa.Schema) -> pl.DataFrame:
    return pl.from_arrow(pa.Table.from_pylist(records, schema=schema))


def _assemble(rows, prompts, results, traces, cfg: DistillConfig, requester: Requester) -> PartitionResult:
    by_prompt: dict[int, list[dict]] = {}
    for t in traces:
        for prompt_id in t["_prompts"]:
            by_prompt.setdefault(prompt_id, []).append(t)
    reject_rows, reject_values, quarantine = [], [], []
    matched = len({p.row_index for p in prompts})
    stats = {"prompts": len(prompts), "kept": 0, "rejected": 0, "quarantined": 0, "traces": len(traces),
             "rows_seen": rows.height, "rows_without_task": rows.height - matched}  # fmt: skip
    for p in prompts:
        mine = by_prompt.get(id(p), [])
        if any(_accepted(t, cfg) for t in mine):
            stats["kept"] += 1
        elif mine:
            stats["rejected"] += 1
            reject_rows.append(p.row_index)
            reject_values.append(sum(t["verdict"] == "pass" for t in mine) / len(mine))
        else:
            stats["quarantined"] += 1
            if p.error is not None:
                reason, message = p.error.reason, str(p.error)
            else:
                problems = [(i, a.reason, a.error) if a.completion is None else (i, *sample_problem(s))
                            for i, _, a, s in results[id(p)]]  # fmt: skip
                i, reason, message = problems[0]
                if len(problems) > 1:
                    message += f" (all {len(problems)} samples failed)"
                message = f"sample {i}: {message}"
            quarantine.append({"stage": STAGE, "source": p.row.get("source"), "uri": p.row.get("uri"),
                               "id": p.row.get("id"), "reason": reason,
                               "error": requester.scrub(f"task {p.task.name}: {message}")})  # fmt: skip
    for t in traces:
        t["accepted"] = _accepted(t, cfg)
        stats["traces_accepted"] = stats.get("traces_accepted", 0) + t["accepted"]
        for key in ("_prompts", "_verify"):
            t.pop(key)
    rejects = rows.select(DOCUMENT.names)[reject_rows].with_columns(
        stage=pl.lit(STAGE), rule=pl.lit("verification_failed"), value=pl.Series(reject_values, dtype=pl.Float64)
    ) if reject_rows else _frame([], REJECT)  # fmt: skip
    stats.update({k: int(v) for k, v in requester.stats.items()})
    return PartitionResult(
        rows_in=len(prompts),
        tables={"traces": _frame(traces, TRACE), "rejects": rejects, "quarantine": _frame(quarantine, QUARANTINE)},
        stats=stats,
    )
