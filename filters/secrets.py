"""Secret detection: detect-secrets' plugins, run only on the lines a vectorized pre-filter keeps.

Contract: `redact(texts, kinds)` returns the texts with every secret found replaced by a
typed placeholder, and one u32 count column per kind in `SECRET_KINDS` that is also in
`kinds`. Secrets are found by

- private_key (`<PRIVATE_KEY>`): an armored key block of any kind, complete or truncated
  (`filters.key_blocks`);
- jwt (`<TOKEN>`): detect-secrets' `JwtTokenDetector` (its formal-validity check included);
- bearer (`<TOKEN>`): an `Authorization: Bearer|Basic|Token|Digest <credentials>` header or a
  "Bearer <token>" anywhere;
- api_key (`<API_KEY>`): every regex plugin of detect-secrets (AWS, Azure storage, GitHub,
  GitLab, Stripe, Slack, SendGrid, npm, OpenAI, PyPI, Twilio, Telegram, Discord, Mailchimp,
  Square, Artifactory, IBM, SoftLayer, Cloudant...: whatever the installed version ships),
  plus `SUPPLEMENTS` for providers it has no plugin for (Hugging Face, Google, Anthropic,
  bare npm tokens, fine-grained GitHub tokens, ...);
- secret_assignment (`<SECRET>`): detect-secrets' `KeywordDetector` regexes (and the same
  shape for token/credential names it lacks), with its false-positive heuristics, a value
  test (a digit, or detect-secrets' Shannon entropy over `min_entropy`), and its
  `BasicAuthDetector` for a password in a URL (`scheme://user:<SECRET>@host`).

A match is widened to the end of its token (a plugin regex that stops after a fixed length
must not leave the key's tail behind); overlapping matches merge and count once, for the
first kind in `SECRET_KINDS` order.

Speed: `ROUTES` are cheap tests (Polars `str.contains` with literal alternations, which the
regex engine searches with SIMD, a few shapes, `str.contains_any`), each a superset of what
its detectors can match. One pass each over the column picks the candidate documents; their
lines are exploded and tested again, tighter, and only the lines that pass go through the
Python-level plugins of the routes they matched. Key blocks are looked for only in documents
with a BEGIN or PuTTY marker.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import polars as pl
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters import heuristic
from detect_secrets.plugins import keyword as ds_keyword
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString
from detect_secrets.plugins.jwt import JwtTokenDetector

from filters import key_blocks
from filters.secret_patterns import (
    AUTH_HEADER,
    EXTRA_ASSIGNMENT,
    NOT_API_KEY,
    PLACEHOLDER,
    SECRET_KINDS,
    SUPPLEMENTS,
)
from filters.secret_routes import BLOCK_MARKER, ROUTE_KINDS, ROUTES, route_test

_DENY = re.compile(ds_keyword.DENYLIST_REGEX, re.IGNORECASE)
# The operator each KeywordDetector regex needs: a line without it skips that regex.
_KEYWORD_GATES = {
    ds_keyword.FOLLOWED_BY_COLON_EQUAL_SIGNS_REGEX: ":=",
    ds_keyword.FOLLOWED_BY_COLON_REGEX: ":",
    ds_keyword.FOLLOWED_BY_COLON_QUOTES_REQUIRED_REGEX: ":",
    ds_keyword.FOLLOWED_BY_EQUAL_SIGNS_REGEX: "=",
    ds_keyword.FOLLOWED_BY_EQUAL_SIGNS_OPTIONAL_BRACKETS_OPTIONAL_AT_SIGN_QUOTES_REQUIRED_REGEX: '"',
    ds_keyword.FOLLOWED_BY_OPTIONAL_ASSIGN_QUOTES_REQUIRED_REGEX: '("',
    ds_keyword.FOLLOWED_BY_EQUAL_SIGNS_QUOTES_REQUIRED_REGEX: "=",
    ds_keyword.PRECEDED_BY_EQUAL_COMPARISON_SIGNS_QUOTES_REQUIRED_REGEX: "=",
    ds_keyword.FOLLOWED_BY_QUOTES_AND_SEMICOLON_REGEX: ";",
    ds_keyword.FOLLOWED_BY_ARROW_FUNCTION_SIGN_QUOTES_REQUIRED_REGEX: "=",
}
_PRECEDED_BY = ds_keyword.PRECEDED_BY_EQUAL_COMPARISON_SIGNS_QUOTES_REQUIRED_REGEX

_TOKEN_TAIL = re.compile(r"(?:[A-Za-z0-9_\-+/=~]|\.(?=[A-Za-z0-9_-]))*")
_ENTROPY = Base64HighEntropyString()

# Lower-case substrings one of which every match of a plugin's token-shaped regexes contains:
# a line without any skips that plugin (a plugin not listed here always runs).
_PLUGIN_ANCHORS: dict[str, tuple[str, ...]] = {
    "Artifactory Credentials": ("akc", "ap"),
    "AWS Access Key": ("akia", "asia", "abia", "acca", "a3t"),
    "Azure Storage Account access key": ("accountkey=",),
    "GitHub Token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "GitLab Token": ("gl", "gr1348941"),
    "Mailchimp Access Key": ("-us",),
    "NPM tokens": ("_authtoken",),
    "OpenAI Token": ("t3blbkfj",),
    "PyPI Token": ("pypi-",),
    "SendGrid API Key": ("sg.",),
    "Slack Token": ("xox", "hooks.slack.com"),
    "SoftLayer Credentials": ("softlayer",),
    "Square OAuth Secret": ("sq0csp-",),
    "Stripe Access Key": ("k_live_",),
    "Telegram Bot Token": (":",),
    "Twilio API Key": ("ac", "sk"),
}
_LEADING_LITERAL = re.compile(r"^(?:\\b|\(\?i\)\\b)?((?:[A-Za-z0-9_-]|\\\.)+)(?=[\[(\\]|$)")


_SUPPLEMENT_ANCHORS = {
    r"\b(?:sk|rk)_": ("k_live_", "k_test_"),
    r"\b[a-z0-9]{14}\.atlasv1": ("atlasv1",),
    r"\b(?:gsk|xai)_": ("gsk_", "xai_"),
    "https://discord": ("discord",),
    r"\bsig=": ("sig=",),
    r"(?i)\b(?:SharedAccessKey|AccountKey)=": ("accesskey=", "accountkey="),
}


def _supplement_anchor(pattern: str) -> tuple[str, ...] | None:
    """The literal a SUPPLEMENTS pattern starts with (after its \\b), lower-cased."""
    for head, anchors in _SUPPLEMENT_ANCHORS.items():
        if pattern.startswith(head):
            return anchors
    m = _LEADING_LITERAL.match(pattern)
    return (m.group(1).replace("\\.", ".").lower(),) if m else None


def _api_key_patterns() -> tuple[list[tuple[tuple[str, ...] | None, re.Pattern]], list[re.Pattern]]:
    """detect-secrets' regex plugins (and SUPPLEMENTS): ((anchors, regex) by token shape,
    regexes by assignment to a name)."""
    shaped, assigned = [], []
    for secret_type, cls in sorted(get_mapping_from_secret_type_to_class().items()):
        if secret_type in NOT_API_KEY or not issubclass(cls, RegexBasedDetector):
            continue
        for rx in cls.denylist:
            # build_assignment_regex output, and AWS's "aws ... key = '<40 chars>'": need a name.
            if rx.pattern.startswith("(?:(?<=\\W)") or rx.pattern.startswith("aws"):
                assigned.append(rx)
            else:
                shaped.append((_PLUGIN_ANCHORS.get(secret_type), rx))
    return shaped + [(_supplement_anchor(p), re.compile(p)) for p in SUPPLEMENTS], assigned


_API_KEY, _API_KEY_ASSIGNED = _api_key_patterns()
_API_KEY_ASSIGNED_ALL = [(None, rx) for rx in _API_KEY_ASSIGNED]
# The assignment-shaped plugins' values are all 24 to 64 characters of one token.
_LONG_TOKEN = re.compile(r"[A-Za-z0-9_\-/+]{24}")
_BY_ANCHOR: dict[str, list[int]] = {}
for _i, (_anchors, _) in enumerate(_API_KEY):
    for _a in _anchors or ():
        _BY_ANCHOR.setdefault(_a, []).append(_i)
_UNANCHORED = [i for i, (anchors, _) in enumerate(_API_KEY) if anchors is None]
_ALL_ANCHORS = sorted(_BY_ANCHOR)
_JWT = JwtTokenDetector.denylist
_BASIC_AUTH = BasicAuthDetector.denylist
# KeywordDetector's regexes for every file type it knows (the same regex appears in several).
_KEYWORD = list(
    {
        **ds_keyword.CONFIG_DENYLIST_REGEX_TO_GROUP,
        **ds_keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
        **ds_keyword.GOLANG_DENYLIST_REGEX_TO_GROUP,
        **ds_keyword.COMMON_C_DENYLIST_REGEX_TO_GROUP,
        **ds_keyword.C_PLUS_PLUS_REGEX_TO_GROUP,
        EXTRA_ASSIGNMENT: 2,
    }.items()
)


def _widen(line: str, start: int, end: int) -> tuple[int, int]:
    """Extend a match to the end of the token it stopped inside."""
    return start, _TOKEN_TAIL.match(line, end).end()


_INDIRECT = re.compile(r"[\w.-]+[\[(]")
_NUMBERISH = re.compile(r"^[\d.,_:/+-]+$")  # counts, versions, dates, times
_WORDISH = re.compile(r"^(?:[A-Z]?[a-z]+|[A-Za-z_][\w]*[._(][\w.()]*)$")  # a word, or a dotted/underscored name


def _value_span(line: str, start: int, end: int) -> tuple[int, int]:
    """The first whitespace-free token of a keyword hit's value, trailing `,;)` stripped
    (detect-secrets' value group runs to the end of an unquoted line)."""
    value = line[start:end]
    lead = len(value) - len(value.lstrip())
    start += lead
    cut = re.search(r"\s", line[start:end])
    if cut:
        end = start + cut.start()
    while end > start and line[end - 1] in ",;)":
        end -= 1
    return start, end


def _plausible_value(v: str, quoted: bool, min_length: int, min_entropy: float) -> bool:
    """detect-secrets' false-positive heuristics for keyword hits, then a value test: a
    digit, or enough Shannon entropy (an English word or a placeholder is not a secret)."""
    if (
        len(v) < min_length
        or heuristic.is_templated_secret(v)
        or heuristic.is_prefixed_with_dollar_sign(v)
        or heuristic.is_not_alphanumeric_string(v)
        or _NUMBERISH.match(v)
        or heuristic.is_sequential_string(v)
    ):
        return False
    digit = any(c.isdigit() for c in v)
    if not digit and not quoted and _WORDISH.match(v):
        return False  # `password = settings.DB_PASSWORD`, `secret: Required`
    if not digit and _ENTROPY.calculate_shannon_entropy(v) < min_entropy:
        return False
    # `secret = get_secret_key()`, `secret = request.headers['apikey']`: detect-secrets'
    # is_indirect_reference, applied to the value alone (its line-wide regex is quadratic in the
    # line's length); only an unquoted value can be a reference, a quoted one is a literal.
    return quoted or not _INDIRECT.match(v)


def _api_key_spans(line: str, patterns: list, spans: list) -> None:
    if patterns is _API_KEY:  # only the regexes whose anchor is in the line, and the unanchored
        low = line.lower()
        chosen = set(_UNANCHORED)
        for a in _ALL_ANCHORS:
            if a in low:
                chosen.update(_BY_ANCHOR[a])
        patterns = [_API_KEY[i] for i in sorted(chosen)]
    for _, rx in patterns:
        for m in rx.finditer(line):
            # Plugins built with build_assignment_regex capture the secret in their last
            # group; an optional short prefix group (GitLab CI tokens) is not the secret.
            g = next((i for i in range(rx.groups, 0, -1) if m.group(i) and len(m.group(i)) >= 8), 0)
            s, e = m.span(g)
            # Plugins whose regex includes the delimiters around the token (Artifactory).
            while s < e and not (line[s].isalnum() or line[s] in "_-"):
                s += 1
            while e > s and line[e - 1] in " \t\"'":
                e -= 1
            # `AccountKey=...`, `sig=...`: the name stays readable, the value goes.
            eq = line.find("=", s, e)
            if eq > s and line[s:eq].isalpha():
                s = eq + 1
            spans.append((*_widen(line, s, e), "api_key"))


def scan_line(
    line: str, kinds: set[str], min_length: int = 8, min_entropy: float = 3.0, routes: set[str] | None = None
) -> list[tuple[int, int, str]]:
    """Spans (start, end, kind) of the secrets in one line, merged, in order. `routes` (from
    the pre-filter) limits which detectors run; None runs all."""
    routes = set(ROUTES) if routes is None else routes
    spans: list[tuple[int, int, str]] = []
    if "jwt" in kinds and "jwt" in routes:
        for rx in _JWT:
            for m in rx.finditer(line):
                if JwtTokenDetector.is_formally_valid(m.group(0)):
                    spans.append((*_widen(line, m.start(), m.end()), "jwt"))
    if "bearer" in kinds and routes & {"bearer", "keyword"}:
        for m in AUTH_HEADER.finditer(line):
            spans.append((*_widen(line, m.start(1), m.end(1)), "bearer"))
    if "api_key" in kinds:
        if "provider" in routes:
            _api_key_spans(line, _API_KEY, spans)
        if "keyword" in routes and _LONG_TOKEN.search(line):
            _api_key_spans(line, _API_KEY_ASSIGNED_ALL, spans)
    if "secret_assignment" in kinds and "url" in routes:
        for rx in _BASIC_AUTH:
            for m in rx.finditer(line):
                spans.append((m.start(1), m.end(1), "secret_assignment"))
    if "secret_assignment" in kinds and "keyword" in routes:
        deny = _DENY.search(line)
        judged: dict[tuple[int, int], bool] = {}  # several regexes find the same value
        for rx, group in _KEYWORD:
            if rx is EXTRA_ASSIGNMENT:
                matches = rx.finditer(line)
            elif deny is None or _KEYWORD_GATES.get(rx, "") not in line:
                continue
            else:
                # KeywordDetector takes each regex's first match (`search`); none can start
                # before the first denylisted name except the one that starts with the value.
                m = rx.search(line, 0 if rx is _PRECEDED_BY else deny.start())
                matches = (m,) if m else ()
            for m in matches:
                if not m.group(group):
                    continue
                s, e = _value_span(line, *m.span(group))
                if (s, e) not in judged:
                    quoted = s > 0 and line[s - 1] in "'\"`"
                    judged[s, e] = _plausible_value(line[s:e], quoted, min_length, min_entropy)
                    if judged[s, e]:
                        spans.append((s, e, "secret_assignment"))
    if not spans:
        return []
    order = {k: i for i, k in enumerate(SECRET_KINDS)}
    spans.sort(key=lambda x: (x[0], -x[1], order[x[2]]))
    merged = [list(spans[0])]
    for s, e, k in spans[1:]:
        last = merged[-1]
        if s < last[1]:
            if e > last[1]:
                last[1] = e
            if order[k] < order[last[2]]:
                last[2] = k
        else:
            merged.append([s, e, k])
    return [tuple(m) for m in merged]


def _redact_line(line: str, spans: list[tuple[int, int, str]], counts: Counter) -> str:
    out, pos = [], 0
    for s, e, k in spans:
        out += [line[pos:s], PLACEHOLDER[k]]
        counts[k] += 1
        pos = e
    out.append(line[pos:])
    return "".join(out)


def redact(
    texts: pl.Series, kinds: list[str], min_length: int = 8, min_entropy: float = 3.0
) -> tuple[pl.Series, pl.DataFrame]:
    """Return (texts with secrets replaced, counts: one u32 column per secret kind in `kinds`)."""
    want = [k for k in SECRET_KINDS if k in kinds]
    t = texts.cast(pl.Utf8)
    n = len(t)
    counts = {k: np.zeros(n, dtype=np.uint32) for k in want}
    if not want or n == 0:
        return t.alias(texts.name), pl.DataFrame(counts, schema={k: pl.UInt32 for k in want})
    kindset = set(want)
    routes = {r: spec for r, spec in ROUTES.items() if ROUTE_KINDS[r] & kindset}
    doc_tests = [test for spec in routes.values() for test in spec["doc"]]
    if "private_key" in kindset:
        doc_tests.append(("any", ["BEGIN", "PuTTY-User-Key-File"], False))
    cand_mask = pl.select(pl.any_horizontal([route_test(t, test).fill_null(False) for test in doc_tests])).to_series()
    cand = np.flatnonzero(cand_mask.to_numpy())
    if len(cand) == 0:
        return t.alias(texts.name), pl.DataFrame(counts, schema={k: pl.UInt32 for k in want})
    values = t.to_numpy().copy()
    sub = pl.Series(values[cand], dtype=pl.Utf8)
    if "private_key" in kindset:
        for j in np.flatnonzero(sub.str.contains(BLOCK_MARKER).to_numpy()):
            i = cand[j]
            values[i], counts["private_key"][i] = key_blocks.redact(values[i], PLACEHOLDER["private_key"])
        sub = pl.Series(values[cand], dtype=pl.Utf8)
    if routes:
        line = pl.col("line")
        lines = (
            pl.DataFrame({"doc": cand, "line": sub.str.split("\n")})
            .with_columns(pl.int_ranges(line.list.len()).alias("no"))
            .explode("line", "no")
            .with_columns(
                [
                    pl.any_horizontal([route_test(line, test) for test in spec["line"]]).alias(r)
                    for r, spec in routes.items()
                ]
            )
            .filter(pl.any_horizontal(list(routes)))
        )
        names = list(routes)
        changed: dict[int, dict[int, str]] = {}
        per_doc: dict[int, Counter] = {}
        for doc, text, no, *hits in lines.iter_rows():
            spans = scan_line(text, kindset, min_length, min_entropy, {r for r, h in zip(names, hits) if h})
            if spans:
                c = per_doc.setdefault(doc, Counter())
                changed.setdefault(doc, {})[no] = _redact_line(text, spans, c)
        for doc, repl in changed.items():
            parts = values[doc].split("\n")
            for no, new in repl.items():
                parts[no] = new
            values[doc] = "\n".join(parts)
            for k, c in per_doc[doc].items():
                counts[k][doc] += c
    return (pl.Series(texts.name, values, dtype=pl.Utf8), pl.DataFrame(counts, schema={k: pl.UInt32 for k in want}))
