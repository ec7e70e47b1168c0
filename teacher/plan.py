"""Plan a partition's work: which (row, task) pairs become prompts, and which requests ask them.

Selection is vectorized (one Polars filter per task over the whole partition); building the
messages is a loop over the matched prompts, which each cost a network request anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from teacher.cache import request_key
from teacher.client import Request
from teacher.config import DistillConfig, SelectorConfig, TaskConfig
from teacher.media import to_wire
from teacher.templates import PromptError, build_messages, reference_for
from teacher.tokens import prompt_tokens


@dataclass
class Prompt:
    """One (row, task) pair: the unit that ends kept, rejected or quarantined."""

    row_index: int
    row: dict
    task: TaskConfig
    messages: list[dict] | None = None  # stored form; None when the row could not be prompted
    reference: str | None = None
    error: PromptError | None = None
    requests: list[tuple[Request, int | None]] = field(default_factory=list)  # (request, sample or None=all)


def selector_mask(selector: SelectorConfig) -> pl.Expr:
    """A boolean expression over DOCUMENT columns that is true where the selector matches."""
    mask = pl.lit(True)
    if selector.modalities is not None:
        mask = mask & pl.col("modality").is_in(selector.modalities)
    if selector.sources is not None:
        mask = mask & pl.col("source").is_in(selector.sources)
    if selector.text_regex is not None:
        mask = mask & pl.col("text").str.contains(selector.text_regex).fill_null(False)
    return mask.fill_null(False)


def matches(rows: pl.DataFrame, tasks: list[TaskConfig]) -> list[tuple[int, int]]:
    """(row index, task index) of every prompt, in row order then task order."""
    indexed = rows.with_row_index("_row")
    pairs = []
    for t, task in enumerate(tasks):
        hit = indexed.filter(selector_mask(task.selector)).get_column("_row").to_list()
        pairs.extend((r, t) for r in hit)
    return sorted(pairs)


def sampling_params(cfg: DistillConfig, sample: int | None, max_tokens: int | None = None) -> dict:
    """The parameters sent (and hashed) for sample `sample`, or for all samples at once (None)."""
    params = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": max_tokens or cfg.max_tokens}
    if cfg.seed is not None:
        params["seed"] = cfg.seed + (sample or 0)
    if sample is None:
        params["n"] = cfg.n_samples
    if cfg.stream:
        params |= {"stream": True, "stream_options": {"include_usage": True}}
    return params


def make_request(
    cfg: DistillConfig,
    model: str,
    messages: list[dict],
    params: dict,
    sample: int | str,
    media_root: Path,
    size: int | None = None,
) -> Request:
    """A request for `messages` whose key addresses exactly what is sent (`size`: its prompt tokens)."""
    return Request(
        key=request_key(cfg.base_url, model, messages, params, sample),
        model=model,
        messages=lambda: to_wire(messages, media_root),
        params=params,
        prompt_tokens=prompt_tokens(messages) if size is None else size,
    )


def plan_prompts(rows: pl.DataFrame, cfg: DistillConfig, media_root: Path) -> list[Prompt]:
    """Every prompt of the partition with its sample requests, in deterministic order."""
    records = rows.to_dicts()
    prompts = []
    for r, t in matches(rows, cfg.tasks):
        prompt = Prompt(r, records[r], cfg.tasks[t])
        prompts.append(prompt)
        try:
            meta = json.loads(prompt.row.get("meta") or "{}")
        except ValueError:
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        try:
            prompt.messages = build_messages(prompt.task.template, prompt.row, meta, prompt.task.system)
        except PromptError as exc:
            prompt.error = exc
            continue
        size = prompt_tokens(prompt.messages)
        if cfg.max_prompt_tokens is not None and size > cfg.max_prompt_tokens:
            prompt.error = PromptError(
                "prompt_too_long", f"prompt has ~{size} tokens, over max_prompt_tokens={cfg.max_prompt_tokens}"
            )
            continue
        prompt.reference = reference_for(prompt.task.verify, prompt.row, meta)
        if cfg.server_side_n and cfg.n_samples > 1:
            params = sampling_params(cfg, None)
            request = make_request(cfg, cfg.model, prompt.messages, params, "all", media_root, size)
            prompt.requests.append((request, None))
        else:
            for i in range(cfg.n_samples):
                params = sampling_params(cfg, i)
                request = make_request(cfg, cfg.model, prompt.messages, params, i, media_root, size)
                prompt.requests.append((request, i))
    return prompts
