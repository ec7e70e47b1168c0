"""Prompt templates: turn one curated row into the chat messages sent to the teacher.

Messages are built in their STORED form: media parts name the lake's content-addressed
reference ("media/ab/<sha256>") instead of carrying bytes. That form is what the cache key
hashes and what the traces table keeps; `teacher.media.to_wire` swaps in the data URIs
just before sending.

Built-in templates, one per kind of data:
  explain_improve_code  code      explain the code, then give an improved version
  qa_from_passage       text      questions about a passage, each with a worked answer
  describe_image        image     describe the picture (sent as a data URI)
  transcribe_audio      audio     transcribe, then summarize (sent as input_audio)
  solve                 problems  the row's text is the question; final line "Answer: <x>"
A custom template is a str.format string over the fields in TEMPLATE_FIELDS; for image and
audio rows the media part is attached after the text.
"""

from __future__ import annotations

import string

from teacher.arithmetic import reference_answer

TEMPLATE_FIELDS = ("text", "source", "uri", "modality", "id", "language")

BUILTIN_TEMPLATES: dict[str, str] = {
    "explain_improve_code": (
        "Explain what the following code does and point out its weaknesses. "
        "Then give an improved version in one fenced code block.\n\n```{language}\n{text}\n```"
    ),
    "qa_from_passage": (
        "Read the passage below. Write three questions a careful reader could answer from it, "
        "each followed by a worked answer that cites the passage.\n\nPassage:\n{text}"
    ),
    "describe_image": "Describe this image in detail: what it shows, its layout, and any text in it.",
    "transcribe_audio": "Transcribe this audio recording verbatim, then summarize it in two sentences.",
    "solve": ("{text}\n\nSolve the problem step by step. End with a final line of the form 'Answer: <result>'."),
}
MEDIA_TEMPLATES = {"describe_image": "image", "transcribe_audio": "audio"}

JUDGE_TEMPLATE = (
    "You are grading an answer.\n\nQuestion:\n{question}\n\nReference answer (may be empty):\n"
    "{reference}\n\nCandidate answer:\n{answer}\n\n"
    "Is the candidate answer correct and complete? Reply with PASS or FAIL on the last line."
)


class PromptError(Exception):
    """A row cannot be turned into a request; `reason` is the quarantine reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_custom_template(template: str) -> None:
    """Raise ValueError unless `template` only uses TEMPLATE_FIELDS placeholders."""
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None and field not in TEMPLATE_FIELDS:
            raise ValueError(
                f"template is neither a built-in ({sorted(BUILTIN_TEMPLATES)}) nor a format string "
                f"over {TEMPLATE_FIELDS}: unknown field {field!r}"
            )


def _fields(row: dict, meta: dict) -> dict[str, str]:
    values = {f: "" if row.get(f) is None else str(row[f]) for f in TEMPLATE_FIELDS}
    values["language"] = str(meta.get("language") or "")  # names the code fence; may be empty
    return values


def _media_part(row: dict, kind: str) -> dict:
    ref = row.get("media")
    if not ref:
        raise PromptError("media_missing", f"row {row.get('id')} has no media reference for {kind}")
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": ref}}
    if kind == "audio":
        return {"type": "input_audio", "input_audio": {"data": ref, "format": "auto"}}
    raise PromptError("teacher_unsupported_media", f"no way to send {kind} media to a chat model")


def build_messages(template: str, row: dict, meta: dict, system: str | None = None) -> list[dict]:
    """The stored-form chat messages for `row` (a DOCUMENT dict; `meta` its parsed meta)."""
    fmt = BUILTIN_TEMPLATES.get(template, template)
    text = fmt.format_map(_fields(row, meta))
    kind = MEDIA_TEMPLATES.get(template)
    if kind is None and template not in BUILTIN_TEMPLATES and row.get("modality") in ("image", "audio"):
        kind = row["modality"]
    if kind is None and not (row.get("text") or "").strip():
        raise PromptError("empty_text", f"row {row.get('id')} has no text for template {template!r}")
    content: str | list = text if kind is None else [{"type": "text", "text": text}, _media_part(row, kind)]
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": content}]


def reference_for(verify: str, row: dict, meta: dict) -> str | None:
    """What the verifier compares against: meta.answer (math, judge), meta.tests (code).

    For math without meta.answer the arithmetic question in the row's text is solved here.
    """
    if verify == "math":
        answer = meta.get("answer")
        return str(answer) if answer is not None else reference_answer(row.get("text") or "")
    if verify == "code":
        tests = meta.get("tests")
        return str(tests) if tests else None
    if verify == "judge":
        answer = meta.get("answer", meta.get("reference"))
        return None if answer is None else str(answer)
    return None
