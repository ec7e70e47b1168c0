"""Keep API keys out of everything we write: errors, logs, quarantine rows, Parquet."""

from __future__ import annotations

import re

# bearer tokens and the common key shapes (OpenAI sk-..., Anthropic sk-ant-..., HF hf_...)
_KEY_SHAPES = re.compile(r"(Bearer\s+)\S+|\b(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{8,})", re.IGNORECASE)
REDACTED = "[REDACTED]"


def scrub(text: str, secrets: list[str | None] = ()) -> str:
    """`text` with every given secret and anything shaped like a key replaced by [REDACTED]."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return _KEY_SHAPES.sub(lambda m: (m.group(1) or "") + REDACTED, text)
