"""Teacher traces laid out with our chat template, reasoning kept in the training target.

    <|user|> question <|assistant|>      span "prompt"     loss False
    <|think|> reasoning <|/think|>        span "reasoning"  loss True
    answer <|eos|>                       span "answer"     loss True

The question is the text of the messages sent (system and user turns, in order, joined
by a blank line); non-text parts (media sent by content hash) are not tokenized and are
counted in stats trace_media_parts_dropped. A trace whose verdict is not accepted is
rejected (rule verdict_<verdict>); one with an empty answer is rejected (empty_answer);
unparseable messages are quarantined (bad_messages).
"""

from __future__ import annotations

import json

import numpy as np

from shards.encoded import Encoded, spans_from_pieces
from shards.ragged import concat_rows
from shards.text import encode_texts


def question_of(messages_json: str) -> tuple[str, int]:
    """Return (the question text of a trace's messages, number of non-text parts skipped)."""
    messages = json.loads(messages_json)
    if not isinstance(messages, list):
        raise ValueError("messages is not a JSON list")
    texts, dropped = [], 0
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "developer"):
            continue
        content = m.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                else:
                    dropped += 1
    return "\n\n".join(texts), dropped


def tokenize_traces(rows: np.ndarray, messages: list, reasoning: list, answer: list, verdict: list,
                    verdicts: tuple[str, ...], spec: dict, threads: int) -> Encoded:
    """Tokenize trace rows; `rows[i]` is the input row of the i-th entries of the other lists."""
    questions, quarantine, rejects, dropped = [], [], [], 0
    ok = np.zeros(len(rows), dtype=bool)
    for i, (r, m, a, v) in enumerate(zip(rows, messages, answer, verdict)):  # json.loads per row: no batch JSON for ragged chat content
        if v not in verdicts:
            rejects.append((int(r), f"verdict_{v}", 0.0))
            continue
        if not isinstance(a, str) or not a.strip():
            rejects.append((int(r), "empty_answer", 0.0))
            continue
        try:
            q, d = question_of(m)
        except (TypeError, ValueError) as exc:
            quarantine.append((int(r), "bad_messages", f"trace messages are not a JSON chat: {exc}"))
            continue
        questions.append(q)
        ok[i] = True
        dropped += d
    idx = np.flatnonzero(ok)
    reasons = [reasoning[i] if isinstance(reasoning[i], str) else "" for i in idx]
    answers = [answer[i] for i in idx]
    n = len(idx)
    sp = spec["vocab"]["special"]
    q = encode_texts(questions, spec["encoding"], threads)
    rs = encode_texts(reasons, spec["encoding"], threads)
    an = encode_texts(answers, spec["encoding"], threads)
    pieces = [sp["<|user|>"], q, sp["<|assistant|>"], sp["<|think|>"], rs, sp["<|/think|>"], an, sp["<|eos|>"]]
    tokens, total = concat_rows(pieces, n)
    kinds, starts, lens, loss, counts = spans_from_pieces(
        n, ["prompt", "reasoning", "answer"], [False, True, True], [q[1] + 2, rs[1] + 2, an[1] + 1]
    )
    text_bytes = np.fromiter(
        (len(a.encode()) + len(b.encode()) + len(c.encode()) for a, b, c in zip(questions, reasons, answers)),
        dtype=np.int64, count=n,
    )
    enc = Encoded(rows[idx], tokens, total, kinds, starts, lens, loss, counts, text_bytes, quarantine, rejects)
    enc.stats = {"trace_media_parts_dropped": dropped}
    return enc
