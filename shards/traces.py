"""Teacher traces laid out with our chat template, reasoning kept in the training target.

    <|user|> question <|assistant|>      span "prompt"     loss False
    <|think|> reasoning <|/think|>        span "reasoning"  loss True
    answer <|eos|>                       span "answer"     loss True

The question is the content of the messages sent (system, developer and user turns, in
order; text parts joined by a blank line). Media the teacher was shown (stored form:
`image_url.url` / `input_audio.data` holding a lake ref "media/ab/..") is tokenized in
place, as an image block or audio block inside the prompt, with its own span ("image" /
"audio", loss False) between "prompt" spans. Media given inline (data: URIs) or of an
unknown part type is not tokenized and is counted in stats trace_media_parts_dropped.

A trace whose verdict is not accepted is rejected (rule verdict_<verdict>), one with an
empty answer is rejected (empty_answer); unparseable messages are quarantined
(bad_messages), as are traces whose media cannot be read (media_missing, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from distillery import media_ref
from shards import image as image_mod
from shards.codebook_io import load_codebook
from shards.encoded import Encoded, concat_encoded, spans_from_pieces
from shards.media_rows import audio_units, image_blocks, load_images
from shards.ragged import concat_rows, offsets_of
from shards.text import encode_texts

PROMPT_ROLES = ("system", "developer", "user")


def prompt_parts(messages_json: str) -> tuple[list[tuple[str, str]], int]:
    """Return ([(kind, value)] with kind text|image|audio in message order, parts dropped)."""
    messages = json.loads(messages_json)
    if not isinstance(messages, list):
        raise ValueError("messages is not a JSON list")
    parts: list[tuple[str, str]] = []
    dropped = 0
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in PROMPT_ROLES:
            continue
        content = m.get("content")
        for part in [{"type": "text", "text": content}] if isinstance(content, str) else content or []:
            kind = part.get("type") if isinstance(part, dict) else None
            value = None
            if kind == "text":
                value = part.get("text")
            elif kind == "image_url" and isinstance(part.get("image_url"), dict):
                value = part["image_url"].get("url")
            elif kind == "input_audio" and isinstance(part.get("input_audio"), dict):
                value = part["input_audio"].get("data")
            if kind == "text" and isinstance(value, str):
                if parts and parts[-1][0] == "text":  # consecutive text parts read as paragraphs
                    parts[-1] = ("text", parts[-1][1] + "\n\n" + value)
                else:
                    parts.append(("text", value))
            elif kind in ("image_url", "input_audio") and media_ref.is_ref(value):
                parts.append(("image" if kind == "image_url" else "audio", value))
            else:
                dropped += 1
    return parts, dropped


def _text_traces(
    rows: np.ndarray, questions: list[str], reasons: list[str], answers: list[str], spec: dict, threads: int
) -> Encoded:
    """The vectorized layout for traces whose prompt is text only."""
    n, sp = len(rows), spec["vocab"]["special"]
    q, rs, an = (encode_texts(x, spec["encoding"], threads) for x in (questions, reasons, answers))
    pieces = [sp["<|user|>"], q, sp["<|assistant|>"], sp["<|think|>"], rs, sp["<|/think|>"], an, sp["<|eos|>"]]
    tokens, total = concat_rows(pieces, n)
    kinds, starts, lens, loss, counts = spans_from_pieces(
        n, ["prompt", "reasoning", "answer"], [False, True, True], [q[1] + 2, rs[1] + 2, an[1] + 1]
    )
    text_bytes = np.fromiter(
        (len(a.encode()) + len(b.encode()) + len(c.encode()) for a, b, c in zip(questions, reasons, answers)),
        dtype=np.int64,
        count=n,
    )
    return Encoded(rows, tokens, total, kinds, starts, lens, loss, counts, text_bytes)


def _media_traces(items: list[tuple[int, list, str, str]], spec: dict, lake_root: Path, threads: int) -> Encoded:
    """Traces whose prompt holds media: media decoded in one batch per kind, then laid out per row."""
    sp, out = spec["vocab"]["special"], Encoded.empty()
    need = {k for _, parts, _, _ in items for k, _ in parts if k != "text"}
    missing = [k for k in sorted(need) if load_codebook(spec, k) is None]
    if missing:
        out.quarantine = [
            (
                r,
                f"no_{missing[0]}_codebook",
                f"the trace prompt holds {missing[0]} media but the tokenizer spec has no {missing[0]} codebook",
            )
            for r, parts, _, _ in items
            if any(k in missing for k, _ in parts)
        ]
        items = [it for it in items if not any(k in missing for k, _ in it[1])]
    img_refs = sorted({v for _, parts, _, _ in items for k, v in parts if k == "image"})
    aud_refs = sorted({v for _, parts, _, _ in items for k, v in parts if k == "audio"})
    media: dict[tuple[str, str], np.ndarray] = {}
    broken: dict[tuple[str, str], tuple[str, str]] = {}
    if img_refs:
        stack, ok, bad = load_images(img_refs, lake_root, spec["image"]["side"], threads)
        blocks = image_blocks(
            image_mod.encode_images(stack, load_codebook(spec, "image"), spec["image"]["patch"]), spec
        )
        media.update({("image", img_refs[i]): blocks[k] for k, i in enumerate(ok)})
        broken.update({("image", img_refs[i]): (reason, msg) for i, reason, msg in bad})
    if aud_refs:
        units, lengths, ok, bad, _ = audio_units(aud_refs, spec, lake_root, threads)
        offs = offsets_of(lengths)
        boa, eoa = np.array([sp["<|boa|>"]], np.uint32), np.array([sp["<|eoa|>"]], np.uint32)
        media.update(
            {("audio", aud_refs[i]): np.concatenate([boa, units[offs[k] : offs[k + 1]], eoa]) for k, i in enumerate(ok)}
        )
        broken.update({("audio", aud_refs[i]): (reason, msg) for i, reason, msg in bad})
    texts = [v for _, parts, _, _ in items for k, v in parts if k == "text"] + [x for it in items for x in it[2:]]
    flat, lens = encode_texts(texts, spec["encoding"], threads)
    offs = offsets_of(lens)
    text_ids = [flat[offs[j] : offs[j + 1]] for j in range(len(texts))]
    t_prompt = iter(text_ids[: len(texts) - 2 * len(items)])
    t_tail = iter(text_ids[len(texts) - 2 * len(items) :])
    parts_out = []
    for r, parts, reasoning, answer in items:  # per-row layout of a few pieces; decoding was batched above
        prompt_ids = [(k, next(t_prompt) if k == "text" else media.get((k, v))) for k, v in parts]
        rs_ids, an_ids = next(t_tail), next(t_tail)
        bad = next((broken[(k, v)] for k, v in parts if (k, v) in broken), None)
        if bad:
            out.quarantine.append((r, bad[0], f"trace prompt media: {bad[1]}"))
            continue
        seq, spans = [np.array([sp["<|user|>"]], np.uint32)], [["prompt", 1]]
        for k, ids in prompt_ids:
            seq.append(ids.astype(np.uint32))
            if k == "text":
                spans[-1][1] += len(ids)
            else:
                spans.append([k, len(ids)])
                spans.append(["prompt", 0])
        seq.append(np.array([sp["<|assistant|>"], sp["<|think|>"]], np.uint32))
        spans[-1][1] += 1
        seq += [rs_ids, np.array([sp["<|/think|>"]], np.uint32), an_ids, np.array([sp["<|eos|>"]], np.uint32)]
        spans = [s for s in spans if s[1] > 0] + [["reasoning", len(rs_ids) + 2], ["answer", len(an_ids) + 1]]
        tokens = np.concatenate(seq)
        lengths = np.array([s[1] for s in spans], np.int64)
        text_bytes = (
            sum(len(v.encode()) for k, v in parts if k == "text") + len(reasoning.encode()) + len(answer.encode())
        )
        parts_out.append(
            Encoded(
                np.array([r], np.int64),
                tokens,
                np.array([len(tokens)], np.int64),
                np.array([s[0] for s in spans], object),
                (np.cumsum(lengths) - lengths).astype(np.int32),
                lengths.astype(np.int32),
                np.array([s[0] in ("reasoning", "answer") for s in spans]),
                np.array([len(spans)], np.int64),
                np.array([text_bytes], np.int64),
            )
        )
    enc = concat_encoded(parts_out)
    enc.quarantine = out.quarantine
    return enc


def tokenize_traces(
    rows: np.ndarray,
    messages: list,
    reasoning: list,
    answer: list,
    verdict: list,
    verdicts: tuple[str, ...],
    spec: dict,
    threads: int,
    lake_root: Path | None = None,
) -> Encoded:
    """Tokenize trace rows; `rows[i]` is the input row of the i-th entries of the other lists."""
    text_rows, questions, reasons, answers, media_items = [], [], [], [], []
    quarantine, rejects, dropped = [], [], 0
    for r, m, rs, a, v in zip(rows, messages, reasoning, answer, verdict):  # json.loads per row: ragged chat content
        r = int(r)
        if v not in verdicts:
            rejects.append((r, f"verdict_{v}", 0.0))
            continue
        if not isinstance(a, str) or not a.strip():
            rejects.append((r, "empty_answer", 0.0))
            continue
        try:
            parts, d = prompt_parts(m)
        except (TypeError, ValueError, AttributeError) as exc:
            quarantine.append((r, "bad_messages", f"trace messages are not a JSON chat: {exc}"))
            continue
        dropped += d
        rs = rs if isinstance(rs, str) else ""
        if all(k == "text" for k, _ in parts):
            text_rows.append(r)
            questions.append(parts[0][1] if parts else "")
            reasons.append(rs)
            answers.append(a)
        else:
            media_items.append((r, parts, rs, a))
    groups = [_text_traces(np.array(text_rows, np.int64), questions, reasons, answers, spec, threads)]
    if media_items:
        groups.append(_media_traces(media_items, spec, Path(lake_root or "."), threads))
    enc = concat_encoded(groups)
    enc.quarantine = quarantine + enc.quarantine
    enc.rejects = rejects
    enc.stats = {"trace_media_parts_dropped": dropped, "trace_media_prompts": len(media_items)}
    return enc
