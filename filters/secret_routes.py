"""The secret scanner's routes: cheap tests that pick the documents, then the lines, that can
hold a secret, and which detectors of filters/secrets.py each route feeds.
"""

from __future__ import annotations

import polars as pl

# Routes: cheap patterns (Rust regex syntax, run through Polars over the whole column, then
# over the candidate documents' lines), each a superset of what its detectors can match. A
# line goes to the Python-level detectors of the routes it matched, and only to those.
# The names detect-secrets' KeywordDetector and its assignment-shaped plugins look for, and ours.
KEYWORD_NAMES = (
    "api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|priv_?key|private_?key|client_?key"
    "|db_?pass|database_?pass|key_?pass|passw|pwd|secret|contrase|token|credential|access_?key|signing_?key"
    "|encryption_?key|session_?key|aws|cl(?:ou)?[_-]?(?:api)?(?:key|pw)|sl[_-]?(?:api)?[_-]?(?:key|pw|pass|token)"
)
# Literal markers of the provider plugins and SUPPLEMENTS (regex alternations of literals,
# which Rust's regex engine matches with a SIMD literal search).
PROVIDER_MARKERS = [
    r"gh[pousr]_|github_pat_|gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas|sa|c)[_-]|GR1348941|xox[abposr]-|hooks\.slack\.com",
    r"SG\.|[rs]k_(?:live|test)_|whsec_|\bsk-|hf_|api_org_|npm_|AIza|ya29\.|T3BlbkFJ|pypi-Ag|AccountKey=|SharedAccessKey=|sig=",
    r"sq0(?:csp|atp)-|shp(?:at|ca|pa|ss)_|dop_v1_|dapi[a-f0-9]|dckr_pat_|hv[sb]\.|atlasv1|PMAK-|api\.softlayer\.com",
    r"lin_api_|dp\.(?:pt|st|sa|ct)\.|sntry|NRAK-|AGE-SECRET-KEY|\bkey-[0-9a-f]{32}|gsk_|xai_|r8_|pplx-|discord(?:app)?\.com/api/webhooks",
    r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}|AKC[a-zA-Z0-9]{10}",
    r"[0-9a-z]{32}-us[0-9]",
]
# A test is ("any", literals, case_insensitive) -> Polars `str.contains_any` (Aho-Corasick), or
# ("re", pattern) -> `str.contains`. Each route has document-level tests (a superset, cheap over
# the whole column) and line-level tests (tighter, over the candidate documents' lines only).
# One pass per test, OR-ed: an alternation of them all is ~10x slower (literal optimizations
# are lost and the lazy DFA's state space multiplies).
SHAPES = [
    ("re", r"[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\."),  # Discord bot token
    ("re", r"[0-9]{8,10}:[0-9A-Za-z_-]{35}"),  # Telegram bot token
    ("re", r"(?:AC|SK)[a-z0-9]{32}"),  # Twilio
    ("re", r"AP[0-9A-F][a-zA-Z0-9]{8}"),
]  # Artifactory password
KEYWORD_LINE = [
    ("re", rf"(?i)(?:{KEYWORD_NAMES})[^\s]{{0,60}}\s*[:=!(>'\"`]"),
    ("re", rf"(?i)[!=]=\s*[\w.]*(?:{KEYWORD_NAMES})"),
    # The assignment-shaped plugins (build_assignment_regex) also accept a space as
    # the assignment, and IBM Cloud IAM's a bare "key" name; their values are 24+ chars.
    ("re", r"(?i)(?:key|pwd|pw|pass|token)\w*['\"\]]?\s+['\"]?[a-zA-Z0-9_-]{24}"),
    # AWS's secret-key regex: "aws" and a key word within 20 characters of each other.
    ("re", r"(?i)aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?['\"][0-9a-zA-Z/+]{40}['\"]"),
]

ROUTES: dict[str, dict[str, list[tuple]]] = {
    # KeywordDetector and the assignment-shaped plugins (AWS secret key, IBM, SoftLayer, Cloudant).
    "keyword": {"doc": KEYWORD_LINE, "line": KEYWORD_LINE},
    "bearer": {"doc": [("re", r"(?i)bearer\s|authorization")], "line": [("re", r"(?i)bearer\s|authorization")]},
    "jwt": {"doc": [("any", ["eyJ"], False)], "line": [("any", ["eyJ"], False)]},
    "url": {"doc": [("re", r"://[^\s/@:]+:[^\s/@]+@")], "line": [("re", r"://[^\s/@:]+:[^\s/@]+@")]},
    # Provider plugins with a literal marker, and the ones without one, by shape.
    "provider": {
        "doc": [*(("re", p) for p in PROVIDER_MARKERS), *SHAPES],
        "line": [*(("re", p) for p in PROVIDER_MARKERS), *SHAPES],
    },
}


def route_test(col: pl.Expr | pl.Series, test: tuple):
    if test[0] == "any":
        return col.str.contains_any(test[1], ascii_case_insensitive=test[2])
    return col.str.contains(test[1])


BLOCK_MARKER = r"BEGIN[A-Z0-9 ]* PRIVATE KEY|PuTTY-User-Key-File"
# Detector kinds each route serves.
ROUTE_KINDS = {
    "keyword": {"secret_assignment", "api_key", "bearer"},
    "bearer": {"bearer"},
    "jwt": {"jwt"},
    "url": {"secret_assignment"},
    "provider": {"api_key"},
}
