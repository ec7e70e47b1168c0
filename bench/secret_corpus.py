"""The labelled corpus of bench/secret_scan.py: planted secrets of every kind in several
contexts, private keys of every armored kind (complete and truncated), and look-alike
negatives. Generated from a seed; nothing is downloaded.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"


def r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64(rng: random.Random, nbytes: int) -> str:
    return base64.b64encode(rng.randbytes(nbytes)).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt(rng: random.Random) -> str:
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(
        json.dumps({"sub": str(rng.randint(10**6, 10**9)), "name": "svc", "iat": rng.randint(1.6e9, 1.8e9)}).encode()
    )
    return f"{head}.{body}.{b64url(rng.randbytes(32))}"


# kind -> (generator, name a developer would give the variable, keyword-only?)
# keyword-only kinds have no provider prefix: they are secrets only by the name they are assigned to.
SECRETS: dict[str, tuple] = {
    "aws_access_key_id": (lambda g: "AKIA" + r(g, string.ascii_uppercase + "234567", 16), "AWS_ACCESS_KEY_ID", False),
    "aws_secret_access_key": (lambda g: r(g, B64, 40), "aws_secret_access_key", True),
    "github_pat_classic": (lambda g: "ghp_" + r(g, ALNUM, 36), "GITHUB_TOKEN", False),
    "github_oauth": (lambda g: "gho_" + r(g, ALNUM, 36), "GH_OAUTH", False),
    "github_app_install": (lambda g: "ghs_" + r(g, ALNUM, 36), "GH_INSTALL", False),
    "github_fine_grained": (lambda g: "github_pat_11" + r(g, UPPER_ALNUM, 20) + "_" + r(g, ALNUM, 59), "GH_PAT", False),
    "gitlab_pat": (lambda g: "glpat-" + r(g, ALNUM + "_-", 20), "GITLAB_PAT", False),
    "gitlab_runner": (lambda g: "glrt-" + r(g, ALNUM + "_-", 20), "RUNNER_REG", False),
    "gitlab_deploy": (lambda g: "gldt-" + r(g, ALNUM + "_-", 20), "DEPLOY_TKN", False),
    "stripe_secret": (lambda g: "sk_live_51" + r(g, ALNUM, 97), "STRIPE_SK", False),
    "stripe_restricted": (lambda g: "rk_live_51" + r(g, ALNUM, 97), "STRIPE_RK", False),
    "stripe_test": (lambda g: "sk_test_51" + r(g, ALNUM, 97), "STRIPE_TEST", False),
    "stripe_webhook": (lambda g: "whsec_" + r(g, ALNUM, 32), "STRIPE_WH", False),
    "slack_bot": (
        lambda g: f"xoxb-{r(g, string.digits, 12)}-{r(g, string.digits, 13)}-{r(g, ALNUM, 24)}",
        "SLACK_BOT",
        False,
    ),
    "slack_user": (
        lambda g: f"xoxp-{r(g, string.digits, 12)}-{r(g, string.digits, 12)}-{r(g, string.digits, 13)}-{r(g, HEX, 32)}",
        "SLACK_USER",
        False,
    ),
    "slack_webhook": (
        lambda g: (
            f"https://hooks.slack.com/services/T{r(g, UPPER_ALNUM, 8)}/B{r(g, UPPER_ALNUM, 10)}/{r(g, ALNUM, 24)}"
        ),
        "SLACK_HOOK",
        False,
    ),
    "sendgrid": (lambda g: f"SG.{r(g, B64URL, 22)}.{r(g, B64URL, 43)}", "SENDGRID", False),
    "npm_token": (lambda g: "npm_" + r(g, ALNUM, 36), "NPM", False),
    "huggingface": (lambda g: "hf_" + r(g, string.ascii_letters, 34), "HF", False),
    "openai_project": (lambda g: "sk-proj-" + r(g, B64URL, 74) + "T3BlbkFJ" + r(g, B64URL, 74), "OPENAI", False),
    "openai_legacy": (lambda g: "sk-" + r(g, ALNUM, 20) + "T3BlbkFJ" + r(g, ALNUM, 20), "OAI", False),
    "anthropic": (lambda g: "sk-ant-api03-" + r(g, B64URL, 93) + "AA", "ANTHROPIC", False),
    "google_api": (lambda g: "AIza" + r(g, B64URL, 35), "GMAPS", False),
    "google_oauth": (lambda g: "ya29." + r(g, B64URL, 120), "GOOG_AT", False),
    "azure_storage": (
        lambda g: (
            f"DefaultEndpointsProtocol=https;AccountName=st{r(g, 'abcdefghij', 6)};AccountKey={b64(g, 64)};"
            "EndpointSuffix=core.windows.net"
        ),
        "AZ_STORAGE",
        False,
    ),
    "azure_servicebus": (
        lambda g: (
            f"Endpoint=sb://ns{r(g, 'abcdefgh', 5)}.servicebus.windows.net/;SharedAccessKeyName="
            f"RootManageSharedAccessKey;SharedAccessKey={b64(g, 32)}"
        ),
        "SB_CONN",
        False,
    ),
    "azure_sas": (
        lambda g: (
            f"https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-01-01T00:00:00Z"
            f"&sig={b64(g, 32).replace('+', '%2B').replace('/', '%2F').replace('=', '%3D')}"
        ),
        "SAS_URL",
        False,
    ),
    "jwt": (_jwt, "ID_TOKEN", False),
    "basic_auth_header": (
        lambda g: (
            "Authorization: Basic " + base64.b64encode(f"svc{g.randint(1, 99)}:{r(g, ALNUM, 14)}".encode()).decode()
        ),
        None,
        False,
    ),
    "bearer_header": (lambda g: "Authorization: Bearer " + r(g, B64URL, 40), None, False),
    "url_password": (lambda g: f"postgres://app:{r(g, ALNUM, 18)}@db.internal:5432/prod", "DATABASE_URL", False),
    "twilio_api_key": (lambda g: "SK" + r(g, HEX, 32), "TWILIO_SID", False),
    "telegram_bot": (lambda g: f"{g.randint(10**8, 10**9)}:AA{r(g, B64URL, 33)}", "TG_BOT", False),
    "discord_bot": (
        lambda g: g.choice("MN") + r(g, B64URL, 23) + "." + r(g, B64URL, 6) + "." + r(g, B64URL, 27),
        "DISCORD",
        False,
    ),
    "discord_webhook": (
        lambda g: f"https://discord.com/api/webhooks/{r(g, string.digits, 18)}/{r(g, B64URL, 68)}",
        "DC_HOOK",
        False,
    ),
    "mailchimp": (lambda g: r(g, HEX, 32) + f"-us{g.randint(1, 20)}", "MC_KEY", False),
    "mailgun": (lambda g: "key-" + r(g, HEX, 32), "MAILGUN", False),
    "pypi": (lambda g: "pypi-AgEIcHlwaS5vcmc" + r(g, B64URL, 150), "TWINE_PASSWORD", False),
    "square_access": (lambda g: "sq0atp-" + r(g, B64URL, 22), "SQUARE", False),
    "square_oauth": (lambda g: "sq0csp-" + r(g, B64URL, 43), "SQUARE_OAUTH", False),
    "shopify": (lambda g: "shpat_" + r(g, HEX, 32), "SHOPIFY", False),
    "digitalocean": (lambda g: "dop_v1_" + r(g, HEX, 64), "DO", False),
    "databricks": (lambda g: "dapi" + r(g, HEX, 32), "DATABRICKS_HOST_AUTH", False),
    "docker_hub": (lambda g: "dckr_pat_" + r(g, B64URL, 27), "DOCKER", False),
    "vault": (lambda g: "hvs." + r(g, B64URL, 90), "VAULT", False),
    "age": (lambda g: "AGE-SECRET-KEY-1" + r(g, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58), "AGE", False),
    "postman": (lambda g: f"PMAK-{r(g, HEX, 24)}-{r(g, HEX, 34)}", "POSTMAN", False),
    "grafana_sa": (lambda g: f"glsa_{r(g, ALNUM, 32)}_{r(g, HEX, 8)}", "GRAFANA", False),
    "linear": (lambda g: "lin_api_" + r(g, ALNUM, 40), "LINEAR", False),
    "doppler": (lambda g: "dp.pt." + r(g, ALNUM, 43), "DOPPLER", False),
    "newrelic": (lambda g: "NRAK-" + r(g, UPPER_ALNUM, 27), "NEWRELIC", False),
    "artifactory": (lambda g: "AKCp8" + r(g, ALNUM, 68), "ARTIFACTORY", False),
    "db_password": (lambda g: r(g, ALNUM + "!#%^*", 16), "db_password", True),
    "django_secret": (
        lambda g: "django-insecure-" + r(g, string.ascii_lowercase + string.digits + "!@#%^&*(-_=+)", 50),
        "SECRET_KEY",
        True,
    ),
    "generic_api_token": (lambda g: r(g, HEX, 40), "API_TOKEN", True),
}

CONTEXTS = {
    "python": lambda name, s, g: (
        f'import os\n\nclient = Client(\n    timeout=30,\n    {(name or "auth").lower()}="{s}",\n)\n'
    ),
    "env": lambda name, s, g: f"DEBUG=false\nPORT=8080\n{name or 'AUTH_HEADER'}={s}\nLOG_LEVEL=info\n",
    "yaml": lambda name, s, g: (
        f'service:\n  name: billing\n  replicas: 3\n  {(name or "auth_header").lower()}: "{s}"\n'
    ),
    "ini": lambda name, s, g: f"[default]\nregion = eu-west-1\n{(name or 'auth_header').lower()} = {s}\n",
    "json": lambda name, s, g: json.dumps(
        {"service": "billing", "retries": 3, (name or "authorization").lower(): s}, indent=2
    ),
    "log": lambda name, s, g: (
        f"2024-05-01T12:00:{g.randint(10, 59)}Z INFO worker-3 starting with {(name or 'header').lower()}={s} retries=3\n"
    ),
    "url": lambda name, s, g: (
        f"curl -s 'https://api.example.net/v2/items?page=2&{(name or 'auth').lower()}={s}' | jq .\n"
    ),
    "truncated": lambda name, s, g: f'# settings.py\nTIMEOUT = 30\n{name or "AUTH"} = "{s}',
}
# Contexts where a header-shaped secret is written as such.
HEADER_CONTEXTS = {
    "http": lambda s, g: f"GET /v1/items HTTP/1.1\nHost: api.example.net\n{s}\nAccept: */*\n",
    "curl": lambda s, g: f"curl -H '{s}' https://api.example.net/v1/items\n",
    "python": lambda s, g: "headers = {'" + s.split(": ", 1)[0] + "': '" + s.split(": ", 1)[1] + "'}\n",
    "log": lambda s, g: f"2024-05-01T12:00:00Z DEBUG outgoing request headers: {s}\n",
}
PROSE = lambda s, g: f"For the staging deploy use {s} until the rotation on Friday; do not share it.\n"  # noqa: E731


def _pem_body(rng: random.Random, lines: int, width: int = 64) -> list[str]:
    data = base64.b64encode(rng.randbytes(lines * width * 3 // 4)).decode()
    return [data[i : i + width] for i in range(0, len(data), width)]


def private_keys(rng: random.Random) -> list[tuple[str, str, list[str]]]:
    """(kind, document, secret pieces) for every armored kind, complete and truncated."""
    out = []
    pem_kinds = {
        "rsa": "RSA PRIVATE KEY",
        "ec": "EC PRIVATE KEY",
        "dsa": "DSA PRIVATE KEY",
        "openssh": "OPENSSH PRIVATE KEY",
        "pkcs8": "PRIVATE KEY",
        "pkcs8_encrypted": "ENCRYPTED PRIVATE KEY",
    }
    for kind, label in pem_kinds.items():
        body = _pem_body(rng, 8, 70 if kind == "openssh" else 64)
        headers = (
            ["Proc-Type: 4,ENCRYPTED", f"DEK-Info: AES-128-CBC,{r(rng, HEX.upper(), 32)}", ""] if kind == "rsa" else []
        )
        full = "\n".join([f"-----BEGIN {label}-----", *headers, *body, f"-----END {label}-----"])
        out.append((f"pk_{kind}", f"# deploy key\n{full}\n", body))
        out.append(
            (
                f"pk_{kind}_truncated",
                "# deploy key\n" + "\n".join([f"-----BEGIN {label}-----", *headers, *body[:5]]),
                body[:5],
            )
        )
        flat = "\\n".join([f"-----BEGIN {label}-----", *body, f"-----END {label}-----"]) + "\\n"
        out.append(
            (
                f"pk_{kind}_json",
                json.dumps({"type": "service_account", "private_key": "PLACEHOLDER"}).replace("PLACEHOLDER", flat),
                body,
            )
        )
        code = 'KEY = """' + "\n".join([f"-----BEGIN {label}-----", *body[:4]]) + '"""\n\nprint(KEY)\n'
        out.append((f"pk_{kind}_code_truncated", code, body[:4]))
    body = _pem_body(rng, 10)
    pgp = "\n".join(
        [
            "-----BEGIN PGP PRIVATE KEY BLOCK-----",
            "Version: GnuPG v2",
            "Comment: repo signing key",
            "",
            *body,
            "=" + r(rng, B64, 4),
            "-----END PGP PRIVATE KEY BLOCK-----",
        ]
    )
    out.append(("pk_pgp", f"Import with gpg --import:\n\n{pgp}\n", body))
    out.append(("pk_pgp_truncated", "\n".join(pgp.split("\n")[:9]), body[:5]))
    putty_pub, putty_priv = _pem_body(rng, 4), _pem_body(rng, 6)
    putty = "\n".join(
        [
            "PuTTY-User-Key-File-3: ssh-rsa",
            "Encryption: none",
            "Comment: rsa-key-20240501",
            f"Public-Lines: {len(putty_pub)}",
            *putty_pub,
            f"Private-Lines: {len(putty_priv)}",
            *putty_priv,
            f"Private-MAC: {r(rng, HEX, 64)}",
        ]
    )
    out.append(("pk_putty", putty + "\n", putty_priv))
    ssh2 = _pem_body(rng, 6, 70)
    out.append(
        (
            "pk_ssh2_encrypted",
            "\n".join(
                [
                    "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----",
                    'Comment: "rsa-key-20240501"',
                    *ssh2,
                    "---- END SSH2 ENCRYPTED PRIVATE KEY ----",
                ]
            )
            + "\n",
            ssh2,
        )
    )
    return out


def negatives(rng: random.Random) -> list[tuple[str, str]]:
    """(kind, document) look-alikes that hold no secret."""
    out = []
    for _ in range(6):
        u, sha = str(uuid.UUID(bytes=rng.randbytes(16), version=4)), r(rng, HEX, 40)
        out += [
            ("uuid", f'{{"request_id": "{u}", "status": "ok", "items": 3}}'),
            ("uuid", f"2024-05-01T12:00:00Z INFO trace={u} span={r(rng, HEX, 16)} done in 35ms\n"),
            ("uuid", f"ALTER TABLE orders ADD CONSTRAINT fk_{r(rng, 'abcdef', 4)} CHECK (id <> '{u}');\n"),
            ("git_sha", f"commit {sha}\nAuthor: Build Bot\n\n    Fix the flaky upload test\n"),
            ("git_sha", f"Merge pull request #{rng.randint(10, 9999)} (rev {sha[:12]}), see {sha}\n"),
            ("git_sha", f'"resolved": "git+https://github.com/org/pkg.git#{sha}",\n'),
            ("base64_image", f'<img alt="logo" src="data:image/png;base64,{b64(rng, 600)}">\n'),
            ("base64_image", f".icon {{ background: url(data:image/gif;base64,{b64(rng, 300)}); }}\n"),
            (
                "package_lock",
                f'"node_modules/lodash": {{\n  "version": "4.17.{rng.randint(1, 21)}",\n  "resolved": '
                f'"https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz",\n  "integrity": "sha512-{b64(rng, 64)}"\n}}',
            ),
            ("yarn_lock", f'lodash@^4.17.21:\n  version "4.17.21"\n  integrity sha1-{b64(rng, 20)}\n'),
            (
                "poetry_lock",
                f'files = [\n    {{file = "requests-2.31.0-py3-none-any.whl", hash = "sha256:{r(rng, HEX, 64)}"}},\n]\n',
            ),
            (
                "go_sum",
                f"golang.org/x/text v0.14.0 h1:{b64(rng, 32)}\ngolang.org/x/text v0.14.0/go.mod h1:{b64(rng, 32)}\n",
            ),
            ("docker_digest", f"FROM python:3.12-slim@sha256:{r(rng, HEX, 64)}\nRUN pip install uv\n"),
            (
                "checksum",
                f"{r(rng, HEX, 64)}  distillery-0.{rng.randint(1, 9)}.0.tar.gz\n{r(rng, HEX, 32)}  README.md\n",
            ),
            (
                "version",
                f'[project]\nname = "distillery"\nversion = "{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"\n'
                f'requires-python = ">=3.10"\ndependencies = ["polars>=1.5,<3", "numpy==1.26.4"]\n',
            ),
            (
                "css_colour",
                f".btn {{ color: #{r(rng, HEX, 6)}; background: #{r(rng, HEX, 3)}; border-color: rgba(0,0,0,.{rng.randint(1, 9)}); }}\n",
            ),
            ("public_key", f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{r(rng, B64, 43)} ops@build\n"),
            (
                "public_key",
                "-----BEGIN PUBLIC KEY-----\n" + "\n".join(_pem_body(rng, 5)) + "\n-----END PUBLIC KEY-----\n",
            ),
            (
                "certificate",
                "-----BEGIN CERTIFICATE-----\n" + "\n".join(_pem_body(rng, 8)) + "\n-----END CERTIFICATE-----\n",
            ),
            (
                "prose_words",
                "Reset your password: open the settings page. The token economy and the secret garden were "
                "discussed; the key point is that nobody lost their keys.\n",
            ),
            (
                "code_no_secret",
                "max_tokens = 4096\ntokenizer = AutoTokenizer.from_pretrained(name)\n"
                'password = os.environ["DB_PASSWORD"]\napi_key = get_api_key()\n',
            ),
            (
                "template",
                'api_key: "{{ .Values.apiKey }}"\npassword: ${DB_PASSWORD}\nsecret_key = "<your-secret-key>"\n',
            ),
            (
                "numbers",
                f"Order {rng.randint(10**6, 10**7)} shipped; tracking {r(rng, string.digits, 12)}; "
                f"total {rng.randint(1, 999)}.{rng.randint(10, 99)} EUR.\n",
            ),
            ("hash_in_code", f'EXPECTED_MD5 = "{r(rng, HEX, 32)}"\nCOMMIT = "{r(rng, HEX, 40)}"\n'),
        ]
    return out


def labelled(seed: int) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    pos: list[dict] = []
    for kind, (gen, name, _keyword_only) in SECRETS.items():
        if kind.endswith("_header"):
            for ctx, fmt in HEADER_CONTEXTS.items():
                s = gen(rng)
                pos.append({"kind": kind, "context": ctx, "text": fmt(s, rng), "pieces": [s.split(" ", 2)[2]]})
            continue
        for ctx, fmt in CONTEXTS.items():
            s = gen(rng)
            pos.append({"kind": kind, "context": ctx, "text": fmt(name, s, rng), "pieces": [_value(kind, s)]})
        if not _keyword_only:
            s = gen(rng)
            pos.append({"kind": kind, "context": "prose", "text": PROSE(s, rng), "pieces": [_value(kind, s)]})
    for kind, doc, pieces in private_keys(rng):
        pos.append(
            {
                "kind": kind.split("_truncated")[0].removesuffix("_json").removesuffix("_code"),
                "context": kind,
                "text": doc,
                "pieces": pieces,
            }
        )
    neg = [{"kind": k, "text": t} for k, t in negatives(rng)]
    return pos, neg


def _value(kind: str, s: str) -> str:
    """The part of a planted string that is the secret (a connection string's key, a URL's password)."""
    if kind == "azure_storage":
        return s.split("AccountKey=")[1].split(";")[0]
    if kind == "azure_servicebus":
        return s.split("SharedAccessKey=")[1]
    if kind == "azure_sas":
        return s.split("sig=")[1]
    if kind == "url_password":
        return s.split(":")[2].split("@")[0]
    if kind in ("slack_webhook", "discord_webhook"):
        return s.rsplit("/", 1)[1]
    return s
