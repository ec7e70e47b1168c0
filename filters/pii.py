"""PII and secret redaction: every kind is replaced by a typed placeholder.

Secrets (private_key, jwt, bearer, api_key, secret_assignment) are found by
`filters.secrets` (detect-secrets' plugins behind a vectorized pre-filter; see there).
E-mails, IP addresses and phone numbers are the regexes below, run with Polars
(`str.count_matches`, then `str.replace_all` on the rows that matched) on the rows that pass
the kind's cheap `PREFILTERS` test. Secrets go first, so a
URL's password or a key is gone before the e-mail, IP or phone patterns could see its
characters. Counts per kind go to meta.redactions.

Patterns (Rust regex syntax, no look-around):
- email, ip_address (IPv4 dotted quad; IPv6 full or "::"-compressed ending in a group),
  phone (North-American 3-3-4 with separators, or "+<country>" international groups).
"""

from __future__ import annotations

import polars as pl

from distillery.result import PartitionResult
from filters import secrets
from filters.config import PiiConfig

_HEX = "[0-9A-Fa-f]{1,4}"
_V4 = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

# kind -> (pattern, replacement).
PATTERNS: dict[str, tuple[str, str]] = {
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


# Cheap tests, one of which every match of the kind's pattern passes (the patterns start with
# character classes, which defeat the regex engine's literal search; these do not): the
# pattern itself then runs only on the rows that pass.
PREFILTERS: dict[str, list[str]] = {
    "email": ["@"],
    "ip_address": [r"[0-9]\.[0-9]{1,3}\.[0-9]", r"[0-9A-Fa-f]:[0-9A-Fa-f]{0,4}:"],  # a.b.c.d; h:h: or h::
    "phone": [r"[0-9]{3}[\s.-][0-9]{3}"],  # both alternatives end in ddd<sep>ddd(d)
}

KINDS: tuple[str, ...] = (*secrets.SECRET_KINDS, *PATTERNS)


def redact(
    texts: pl.Series, kinds: list[str], min_secret_length: int = 8, min_secret_entropy: float = 3.0
) -> tuple[pl.Series, pl.DataFrame]:
    """Return (redacted texts, counts: one u32 column per kind in `kinds`, in `KINDS` order)."""
    t, secret_counts = secrets.redact(texts.cast(pl.Utf8), kinds, min_secret_length, min_secret_entropy)
    counts = dict(secret_counts.to_dict())
    for kind in PATTERNS:
        if kind not in kinds:
            continue
        pattern, repl = PATTERNS[kind]
        maybe = pl.select(
            pl.any_horizontal([t.str.contains(p, literal=p == "@").fill_null(False) for p in PREFILTERS[kind]])
        ).to_series()
        n = pl.Series(kind, [0] * len(t), dtype=pl.UInt32)
        if maybe.any():
            idx = maybe.arg_true()
            n = n.scatter(idx, t.gather(idx).str.count_matches(pattern).fill_null(0).cast(pl.UInt32))
        counts[kind] = n
        hit = n > 0
        if hit.any():  # replace only in the rows that hold a match
            t = t.scatter(hit.arg_true(), t.filter(hit).str.replace_all(pattern, repl))
    order = [k for k in KINDS if k in counts]
    return t.alias(texts.name), pl.DataFrame({k: counts[k] for k in order}, schema={k: pl.UInt32 for k in order})


def redact_tables(
    result: PartitionResult, cfg: PiiConfig, tables: tuple[str, ...] = ("documents", "rejects")
) -> PartitionResult:
    """Redact the `text` column of `tables` in a stage's result in place (gather.redact: the raw
    layer then never holds the secrets either); counts per kind go to `stats` as
    "redacted:<kind>". Ids are left as they are: they name the content as it was read."""
    for name in tables:
        df = result.tables.get(name)
        if df is None or df.height == 0 or "text" not in df.columns:
            continue
        has = df["text"].is_not_null().to_numpy()
        idx = pl.Series(range(df.height)).filter(pl.Series(has))
        red, counts = redact(df["text"].gather(idx), cfg.kinds, cfg.min_secret_length, cfg.min_secret_entropy)
        values = df["text"].to_numpy().copy()
        values[idx.to_numpy()] = red.to_numpy()
        result.tables[name] = df.with_columns(pl.Series("text", values, dtype=pl.Utf8))
        for k in counts.columns:
            result.stats[f"redacted:{k}"] = result.stats.get(f"redacted:{k}", 0) + int(counts[k].sum())
    return result
