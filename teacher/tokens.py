"""Count a request's input tokens before it is sent (for the token bucket and the budget).

Text is counted with tiktoken's cl100k_base (exact for OpenAI's GPT-4 family, a close
estimate elsewhere) plus the chat format's per-message overhead; media parts count a
fixed estimate, since their true cost is only known from the response's usage.
"""

from __future__ import annotations

from distillery.encoding import get_encoding

PER_MESSAGE_TOKENS = 4  # role and separators, per OpenAI's cookbook "How to count tokens"
IMAGE_TOKENS = 765  # a 1024x1024 image at detail=high (OpenAI vision pricing: 85 + 4*170)
AUDIO_TOKENS = 1000  # ~100 s of speech at gpt-4o-audio's ~10 tokens/s


def prompt_tokens(messages: list[dict]) -> int:
    """Estimated input tokens of stored-form `messages`."""
    enc = get_encoding("cl100k_base")
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += PER_MESSAGE_TOKENS
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        for part in parts:
            kind = part.get("type")
            if kind == "text":
                total += len(enc.encode(part.get("text") or "", disallowed_special=()))
            elif kind == "image_url":
                total += IMAGE_TOKENS
            elif kind == "input_audio":
                total += AUDIO_TOKENS
    return total
