"""Secret values in their providers' documented formats, the text blocks that plant them, and
`Plants`, what each planter fixture of test_security_secrets_e2e.py returns."""

from __future__ import annotations

import base64
import random
import string
from dataclasses import dataclass, field

ALNUM = string.ascii_letters + string.digits


@dataclass
class Plants:
    sources: list[dict]
    values: dict[str, str]  # "<where>/<kind>" -> the secret value
    marker: str  # a phrase of the planted documents, kept by curate, so it must reach the teacher
    exempt_sources: list[str] = field(default_factory=list)  # sources that skip the web-text rules
    tasks: list[dict] = field(default_factory=list)
    in_documents: bool = True  # gather keeps the values in `documents` (text); media metadata it never keeps


def _r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _pem_lines(rng: random.Random, n: int) -> list[str]:
    data = base64.b64encode(rng.randbytes(48 * n)).decode()
    return [data[i : i + 64] for i in range(0, len(data), 64)]


def make_secrets(rng: random.Random) -> dict[str, str]:
    """One value of every kind from the finding, in the provider's documented format."""
    user_pass = f"deploy:{_r(rng, ALNUM, 16)}"
    return {
        "gitlab": "glpat-" + _r(rng, ALNUM + "_-", 20),
        "stripe": "sk_live_51" + _r(rng, ALNUM, 97),
        "huggingface": "hf_" + _r(rng, string.ascii_letters, 34),
        "npm": "npm_" + _r(rng, ALNUM, 36),
        "sendgrid": f"SG.{_r(rng, ALNUM + '_-', 22)}.{_r(rng, ALNUM + '_-', 43)}",
        "basic_auth": base64.b64encode(user_pass.encode()).decode(),
        "azure_account_key": base64.b64encode(rng.randbytes(64)).decode(),
    }


def secret_block(rng: random.Random, s: dict[str, str], where: str) -> tuple[str, dict[str, str]]:
    """Lines holding every kind, plus a truncated PEM key (BEGIN, no END) and a PGP private key
    block; returns (text, values) with the key bodies' lines among the values."""
    pem, pgp = _pem_lines(rng, 6), _pem_lines(rng, 6)
    text = "\n".join(
        [
            f"GITLAB_TOKEN={s['gitlab']}",
            f'stripe.api_key = "{s["stripe"]}"',
            f"HF token for the mirror: {s['huggingface']}",
            f"//registry.npmjs.org/:_authToken={s['npm']}",
            f"sendgrid: {s['sendgrid']}",
            f"Authorization: Basic {s['basic_auth']}",
            "AZURE_STORAGE=DefaultEndpointsProtocol=https;AccountName=acmedata;"
            f"AccountKey={s['azure_account_key']};EndpointSuffix=core.windows.net",
            "-----BEGIN PGP PRIVATE KEY BLOCK-----",
            "Version: GnuPG v2",
            "",
            *pgp,
            "=" + _r(rng, ALNUM, 4),
            "-----END PGP PRIVATE KEY BLOCK-----",
            "",
            "-----BEGIN RSA PRIVATE KEY-----",
            *pem,  # the file ends inside the key: no END line
        ]
    )
    values = {f"{where}/{k}": v for k, v in s.items()}
    values.update({f"{where}/pem_line_{i}": line for i, line in enumerate(pem)})
    values.update({f"{where}/pgp_line_{i}": line for i, line in enumerate(pgp)})
    return text, values


PROSE = (
    "Anyone who wants to ask about these notes can write to the office, and somebody there will answer "
    "within a day or two, usually with a longer explanation than expected. Visitors who arrive in spring "
    "often find the gardens closed for planting, so the staff recommend a later trip. The library keeps "
    "older letters in a cool room downstairs, where volunteers sort them by year and by the town they "
    "came from."
)
