"""Secret redaction (filters.secrets through filters.pii): every provider of the finding, every
armored private-key kind complete and truncated, look-alikes left alone, counts per kind."""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from collections import Counter

import polars as pl
import pytest

from filters import pii, secrets

ALNUM = string.ascii_letters + string.digits
RNG = random.Random(7)


def r(alphabet: str, n: int) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def redact(texts: list[str], kinds=pii.KINDS) -> tuple[list[str], pl.DataFrame]:
    out, counts = pii.redact(pl.Series(texts), list(kinds))
    return out.to_list(), counts


# provider -> (value, placeholder it becomes, kind counted); formats from the providers' docs.
PROVIDERS = {
    "gitlab_pat": ("glpat-" + r(ALNUM + "_-", 20), "<API_KEY>", "api_key"),
    "stripe_live": ("sk_live_51" + r(ALNUM, 97), "<API_KEY>", "api_key"),
    "huggingface": ("hf_" + r(string.ascii_letters, 34), "<API_KEY>", "api_key"),
    "npm": ("npm_" + r(ALNUM, 36), "<API_KEY>", "api_key"),
    "sendgrid": (f"SG.{r(ALNUM + '_-', 22)}.{r(ALNUM + '_-', 43)}", "<API_KEY>", "api_key"),
    "azure_account_key": (base64.b64encode(RNG.randbytes(64)).decode(), "<API_KEY>", "api_key"),
    "basic_auth": (base64.b64encode(b"deploy:" + r(ALNUM, 16).encode()).decode(), "<TOKEN>", "bearer"),
    "aws_key_id": ("AKIA" + r(string.ascii_uppercase + "234567", 16), "<API_KEY>", "api_key"),
    "github": ("ghp_" + r(ALNUM, 36), "<API_KEY>", "api_key"),
    "slack": (f"xoxb-{r(string.digits, 12)}-{r(string.digits, 13)}-{r(ALNUM, 24)}", "<API_KEY>", "api_key"),
}


def in_text(provider: str, value: str) -> str:
    if provider == "basic_auth":
        return f"The proxy log showed Authorization: Basic {value} on every request."
    if provider == "azure_account_key":
        return f"Connect with DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={value};EndpointSuffix=core.windows.net today."
    return f"For the staging deploy use {value} until Friday; do not share it."


def in_code(provider: str, value: str) -> str:
    if provider == "basic_auth":
        return f'headers = {{"Authorization": "Basic {value}"}}\nresp = requests.get(url, headers=headers)\n'
    if provider == "azure_account_key":
        return f'CONN = "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={value}"\n'
    if provider == "npm":
        return f"//registry.npmjs.org/:_authToken={value}\n"
    return f'import client\n\nc = client.Client(timeout=30, credential="{value}")\n'


@pytest.mark.parametrize("provider", list(PROVIDERS))
@pytest.mark.parametrize("where", ["text", "code"])
def test_each_provider_is_redacted_in_text_and_code(provider, where):
    value, placeholder, kind = PROVIDERS[provider]
    doc = (in_text if where == "text" else in_code)(provider, value)
    (out,), counts = redact([doc])
    assert value not in out and value[-12:] not in out, out
    assert placeholder in out
    assert counts[kind][0] >= 1


def _pem_body(n: int = 6) -> list[str]:
    data = base64.b64encode(RNG.randbytes(48 * n)).decode()
    return [data[i : i + 64] for i in range(0, len(data), 64)]


ARMORED = [
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "DSA PRIVATE KEY",
    "OPENSSH PRIVATE KEY",
    "PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "PGP PRIVATE KEY BLOCK",
]


@pytest.mark.parametrize("label", ARMORED)
@pytest.mark.parametrize("truncated", [False, True], ids=["complete", "truncated"])
def test_every_armored_private_key_is_redacted_complete_or_truncated(label, truncated):
    body = _pem_body()
    headers = ["Version: GnuPG v2", ""] if label.startswith("PGP") else []
    block = [f"-----BEGIN {label}-----", *headers, *body] + ([] if truncated else [f"-----END {label}-----"])
    doc = "Keys for the deploy host:\n" + "\n".join(block) + ("" if truncated else "\nAfter the key.\n")
    (out,), counts = redact([doc])
    assert all(line not in out for line in body) and "BEGIN" not in out, out
    assert out.startswith("Keys for the deploy host:\n<PRIVATE_KEY>")
    assert truncated or out.endswith("\nAfter the key.\n")
    assert counts["private_key"][0] == 1


def test_truncated_key_in_comments_code_strings_and_flattened_json():
    body = _pem_body(4)
    commented = (
        "import os\n# -----BEGIN RSA PRIVATE KEY-----\n" + "\n".join("# " + b for b in body) + "\nprint(os.name)\n"
    )
    in_string = 'KEY = """-----BEGIN EC PRIVATE KEY-----\n' + "\n".join(body) + '"""\n\nprint(KEY)\n'
    flat = json.dumps({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\n" + "\n".join(body)})
    out, counts = redact([commented, in_string, flat])
    for o in out:
        assert all(b not in o for b in body), o
    assert out[0].endswith("\nprint(os.name)\n") and out[1].endswith("\n\nprint(KEY)\n")
    assert counts["private_key"].to_list() == [1, 1, 1]


def test_putty_and_ssh2_keys_are_redacted():
    pub, priv = _pem_body(2), _pem_body(3)
    putty = "\n".join(
        [
            "PuTTY-User-Key-File-3: ssh-rsa",
            "Encryption: none",
            "Comment: rsa-key",
            f"Public-Lines: {len(pub)}",
            *pub,
            f"Private-Lines: {len(priv)}",
            *priv,
            "Private-MAC: " + r("0123456789abcdef", 64),
        ]
    )
    ssh2 = "\n".join(
        [
            "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----",
            'Comment: "rsa-key"',
            *priv,
            "---- END SSH2 ENCRYPTED PRIVATE KEY ----",
        ]
    )
    out, counts = redact([putty, ssh2])
    assert all(p not in o for o in out for p in priv)
    assert counts["private_key"].to_list() == [1, 1]


def test_keyword_assignments_need_a_plausible_value():
    real = r(ALNUM, 18)
    docs = [
        f'db_password = "{real}"',  # a secret
        "password = os.environ['DB_PASSWORD']",  # a reference
        'password: "{{ .Values.password }}"',  # a template
        "secret_key = settings.SECRET_KEY",  # a name
        "max_tokens = 100000000\ntokenizer = AutoTokenizer.from_pretrained(name)",
        "Reset your password: open the settings page.",
    ]
    out, counts = redact(docs)
    assert real not in out[0] and counts["secret_assignment"].to_list() == [1, 0, 0, 0, 0, 0]
    assert out[1:] == docs[1:]


def test_look_alikes_are_untouched():
    sha, u = r("0123456789abcdef", 40), str(uuid.UUID(bytes=RNG.randbytes(16), version=4))
    docs = [
        f'{{"request_id": "{u}", "status": "ok"}}',
        f"commit {sha}\nMerge pull request #42 from org/fix",
        f'<img src="data:image/png;base64,{base64.b64encode(RNG.randbytes(600)).decode()}">',
        f'"integrity": "sha512-{base64.b64encode(RNG.randbytes(64)).decode()}"',
        f'{{file = "requests-2.31.0-py3-none-any.whl", hash = "sha256:{r("0123456789abcdef", 64)}"}}',
        'version = "1.26.4"\nrequires-python = ">=3.10"',
        ".btn { color: #ff8800; background: #fff; }",
        "-----BEGIN PUBLIC KEY-----\n" + "\n".join(_pem_body(3)) + "\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\n" + "\n".join(_pem_body(3)) + "\n-----END CERTIFICATE-----",
        f"FROM python:3.12-slim@sha256:{r('0123456789abcdef', 64)}",
    ]
    out, counts = redact(docs)
    assert out == docs
    assert counts.sum_horizontal().sum() == 0


def test_overlapping_detectors_count_once_and_keep_the_name():
    key = "sk_live_51" + r(ALNUM, 97)
    (out,), counts = redact([f"STRIPE_SECRET_KEY={key}"])
    assert out == "STRIPE_SECRET_KEY=<API_KEY>"
    assert counts["api_key"][0] == 1 and counts["secret_assignment"][0] == 0


def test_emails_ips_and_phones_still_work_beside_secrets():
    key = "glpat-" + r(ALNUM, 20)
    (out,), counts = redact([f"Mail ops@example.org from 10.1.2.3 or call (415) 555-0132; token {key}"])
    assert out == "Mail <EMAIL> from <IP_ADDRESS> or call <PHONE>; token <API_KEY>"
    assert [counts[k][0] for k in ("email", "ip_address", "phone", "api_key")] == [1, 1, 1, 1]


def test_disabled_secret_kinds_are_kept():
    key = "glpat-" + r(ALNUM, 20)
    (out,), counts = redact([f"token {key}"], ["email"])
    assert key in out and counts.columns == ["email"]


def test_plugins_come_from_the_installed_detect_secrets():
    """The api_key detectors are detect-secrets' own regex plugins (not copies), plus supplements."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    mapping = get_mapping_from_secret_type_to_class()
    shipped = {
        id(rx)
        for name, cls in mapping.items()
        if name not in secrets.NOT_API_KEY
        for rx in getattr(cls, "denylist", ())
    }
    used = {id(rx) for _, rx in secrets._API_KEY} | {id(rx) for rx in secrets._API_KEY_ASSIGNED}
    assert shipped and shipped <= used


def test_every_private_key_marker_of_detect_secrets_starts_a_redacted_block():
    from detect_secrets.plugins.private_key import PrivateKeyDetector

    body = _pem_body(2)
    for rx in PrivateKeyDetector.denylist:
        marker = rx.pattern
        head = (
            f"{marker}: ssh-rsa"
            if marker.startswith("PuTTY")
            else (f"---- {marker} ----" if "SSH2" in marker else f"-----{marker}-----")
        )
        (out,), counts = redact(["Key follows\n" + head + "\n" + "\n".join(body) + "\n"])
        assert all(b not in out for b in body) and counts["private_key"][0] == 1, (marker, out)


def test_assignment_shaped_plugins_are_reached_without_an_operator():
    """detect-secrets' AWS secret-key and Cloudant/IBM regexes match forms with no `=` or `:`
    after the name; the pre-filter must still send those lines to them."""
    aws, cl, ibm = r(ALNUM + "/+", 40), r("0123456789abcdef", 64), r(ALNUM + "_-", 44)
    docs = [f"the aws secret key is '{aws}' for now", f"cloudant_password {cl}", f"iam_api_key   {ibm}"]
    out, counts = redact(docs)
    assert aws not in out[0] and cl not in out[1] and ibm not in out[2], out


def test_routing_loses_nothing_the_detectors_find():
    """The pre-filter's routes are supersets: routed redaction equals running every detector
    on every line."""
    hexd = "0123456789abcdef"
    values = [v for v, _, _ in PROVIDERS.values()] + [
        f"https://hooks.slack.com/services/T{r(ALNUM, 9)}/B{r(ALNUM, 9)}/{r(ALNUM, 24)}",
        "N" + r(ALNUM, 23) + "." + r(ALNUM, 6) + "." + r(ALNUM, 27),
        f"{r(string.digits, 9)}:AA{r(ALNUM, 33)}",
        "SK" + r(hexd, 32),
        r(hexd, 32) + "-us7",
        "AKCp8" + r(ALNUM, 68),
        "pypi-AgEIcHlwaS5vcmc" + r(ALNUM, 80),
        "sq0csp-" + r(ALNUM, 43),
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0." + r(ALNUM, 43),
        r(ALNUM, 20),
    ]
    shapes = [
        "{v}",
        "x = '{v}'",
        'password = "{v}"',
        "secret: {v}",
        "db_pass={v};",
        'ApiKey := "{v}"',
        "if (x == '{v}')",
        "'{v}' != pwd",
        "token {v}",
        'AWS key is "{v}"',
        "https://u:{v}@h.example",
        "Bearer {v}",
        "Authorization: Basic {v}",
        "clpw {v}",
        "<b>{v}</b>",
        'auth_token => "{v}"',
    ]
    lines = [RNG.choice(shapes).format(v=RNG.choice(values)) for _ in range(600)]
    routed, _ = secrets.redact(pl.Series(lines), list(secrets.SECRET_KINDS))
    kinds = set(secrets.SECRET_KINDS) - {"private_key"}
    for line, got in zip(lines, routed.to_list()):
        spans = secrets.scan_line(line, kinds, routes=None)
        want = secrets._redact_line(line, spans, Counter()) if spans else line
        assert got == want, line
