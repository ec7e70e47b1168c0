"""FROZEN copy of filters/pii.py as of commit 9859330 (the hand-written patterns before
detect-secrets), kept only so bench/secret_scan.py can compare against it in the same run.
Not used by the pipeline; do not edit.
"""

# PII and secret redaction: each kind is a regex replaced by a typed placeholder.
#
# Kinds are applied in a fixed order so that a longer, more specific match wins (a PEM
# block before anything inside it, a JWT before a generic token, an email before the IP
# or phone patterns could see its digits). Every pattern runs over the whole partition as
# one Polars `str.count_matches` + `str.replace_all`; counts per kind go to meta.redactions.
#
# Patterns (Rust regex syntax, no look-around):
# - private_key: PEM "-----BEGIN ... PRIVATE KEY----- ... -----END ... PRIVATE KEY-----".
# - jwt: three base64url parts, the first two starting "eyJ" (a JSON header/payload).
# - bearer: "Bearer <token of 16+ chars>" (the word "Bearer" is kept).
# - api_key: OpenAI sk-..., AWS AKIA/ASIA..., GitHub ghp_/gho_/ghu_/ghs_/ghr_ and
#   github_pat_..., Slack xox[abposr]-..., Google AIza....
# - secret_assignment: key/secret/token/password names assigned (= or :) a 16+ char value.
# - email, ip_address (IPv4 dotted quad; IPv6 full or "::"-compressed ending in a group),
#   phone (North-American 3-3-4 with separators, or "+<country>" international groups).

from __future__ import annotations

import polars as pl

_HEX = "[0-9A-Fa-f]{1,4}"
_V4 = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

# kind -> (pattern, replacement); "$1" keeps a captured prefix.
PATTERNS: dict[str, tuple[str, str]] = {
    "private_key": (
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
        "<PRIVATE_KEY>",
    ),
    "jwt": (r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", "<TOKEN>"),
    "bearer": (r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]{16,}=*", "${1}<TOKEN>"),
    "api_key": (
        r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"
        r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
        r"|\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{22,}"
        r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
        r"|\bAIza[0-9A-Za-z_-]{35}",
        "<API_KEY>",
    ),
    "secret_assignment": (
        r"(?i)(\b[A-Za-z0-9_]*(?:api[_-]?key|secret|token|passw(?:or)?d|access[_-]?key|auth[_-]?key)[A-Za-z0-9_]*"
        r"""["']?\s*[:=]\s*["']?)[A-Za-z0-9_\-+/=.]{16,}""",
        "${1}<SECRET>",
    ),
    "email": (r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b", "<EMAIL>"),
    "ip_address": (
        rf"\b(?:{_V4}\.){{3}}{_V4}\b"
        rf"|\b(?:{_HEX}:){{7}}{_HEX}\b"
        rf"|\b(?:{_HEX}:){{1,6}}:{_HEX}(?::{_HEX}){{0,5}}\b",
        "<IP_ADDRESS>",
    ),
    "phone": (
        r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b"
        r"|\+\d{1,3}[\s.-]\d{1,4}[\s.-]\d{3,4}[\s.-]\d{3,4}\b",
        "<PHONE>",
    ),
}


def redact(texts: pl.Series, kinds: list[str]) -> tuple[pl.Series, pl.DataFrame]:
    """Return (redacted texts, counts: one u32 column per kind, in `kinds`' canonical order)."""
    t = texts.cast(pl.Utf8)
    counts = {}
    for kind in PATTERNS:
        if kind not in kinds:
            continue
        pattern, repl = PATTERNS[kind]
        counts[kind] = t.str.count_matches(pattern).fill_null(0).cast(pl.UInt32)
        t = t.str.replace_all(pattern, repl)
    return t.alias(texts.name), pl.DataFrame(counts, schema={k: pl.UInt32 for k in counts})
