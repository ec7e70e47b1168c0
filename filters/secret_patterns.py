"""What filters/secrets.py looks for, as data: the secret kinds and their placeholders, the
detect-secrets plugins it leaves out of api_key, the provider formats detect-secrets 1.5.0
has no plugin for, and the header and assignment shapes it adds.
"""

from __future__ import annotations

import re

SECRET_KINDS = ("private_key", "jwt", "bearer", "api_key", "secret_assignment")
PLACEHOLDER = {
    "private_key": "<PRIVATE_KEY>",
    "jwt": "<TOKEN>",
    "bearer": "<TOKEN>",
    "api_key": "<API_KEY>",
    "secret_assignment": "<SECRET>",
}

# detect-secrets plugins not used as api_key detectors: handled as their own kind, or out of
# scope here (public IPv4 addresses are the ip_address kind of filters/pii.py).
NOT_API_KEY = {
    "Private Key",
    "JSON Web Token",
    "Basic Auth Credentials",
    "Secret Keyword",
    "Base64 High Entropy String",
    "Hex High Entropy String",
    "Public IP (ipv4)",
}

# Providers detect-secrets 1.5.0 has no plugin for; formats from each provider's documentation.
SUPPLEMENTS: tuple[str, ...] = (
    r"\bhf_[A-Za-z]{34}\b",  # Hugging Face user access token
    r"\bapi_org_[A-Za-z]{34}\b",  # Hugging Face organization token
    r"\bnpm_[A-Za-z0-9]{36}\b",  # npm granular/automation token (bare)
    r"\bAIza[0-9A-Za-z_-]{35}",  # Google API key
    r"\bya29\.[0-9A-Za-z_-]{20,}",  # Google OAuth access token
    r"\bgithub_pat_[A-Za-z0-9_]{60,}",  # GitHub fine-grained PAT
    r"\bsk-ant-(?:api|admin)\d\d-[A-Za-z0-9_-]{80,}",  # Anthropic
    r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",  # OpenAI (project and legacy keys)
    r"\b(?:sk|rk)_(?:live|test)_[0-9a-zA-Z]{24,}",  # Stripe secret/restricted (test mode too)
    r"\bwhsec_[A-Za-z0-9+/=]{24,}",  # Stripe webhook signing secret
    r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b",  # Shopify
    r"\bdop_v1_[a-f0-9]{64}\b",  # DigitalOcean
    r"\bdapi[a-f0-9]{32}(?:-\d)?\b",  # Databricks
    r"\bdckr_pat_[A-Za-z0-9_-]{27,}",  # Docker Hub PAT
    r"\bhv[sb]\.[A-Za-z0-9_-]{24,}",  # HashiCorp Vault token
    r"\b[a-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}",  # Terraform Cloud
    r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b",  # Postman
    r"\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b",  # Grafana service account
    r"\bglc_[A-Za-z0-9+/]{32,}={0,2}",  # Grafana Cloud
    r"\blin_api_[A-Za-z0-9]{40}\b",  # Linear
    r"\bdp\.(?:pt|st|sa|ct)\.[A-Za-z0-9]{40,}",  # Doppler
    r"\bsntry[su]_[A-Za-z0-9+/=_-]{40,}",  # Sentry
    r"\bNRAK-[A-Z0-9]{27}\b",  # New Relic user key
    r"\bAGE-SECRET-KEY-1[0-9A-Z]{58}\b",  # age
    r"\bkey-[0-9a-f]{32}\b",  # Mailgun
    r"\bAKCp[A-Za-z0-9]{69}\b",  # Artifactory API key (any delimiter)
    r"\bsq0atp-[0-9A-Za-z_-]{22}\b",  # Square access token
    r"\b(?:gsk|xai)_[A-Za-z0-9]{40,}",  # Groq, xAI
    r"\br8_[A-Za-z0-9]{37}\b",  # Replicate
    r"\bpplx-[A-Za-z0-9]{48}\b",  # Perplexity
    r"https://discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_-]{20,}",  # Discord webhook
    r"(?i)\b(?:SharedAccessKey|AccountKey)=[A-Za-z0-9+/]{40,}={0,2}",  # Azure connection strings
    r"\bsig=[A-Za-z0-9%+/]{40,}={0,2}",  # Azure SAS signature
)

AUTH_HEADER = re.compile(
    r"(?i)(?:\bauthorization\b[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token|digest)\s+|\bbearer\s+)"
    r"([A-Za-z0-9\-._~+/]{8,}=*)"
)

# The same assignment shapes detect-secrets' KeywordDetector uses, for names its DENYLIST lacks.
# The name must end with the word ("GITHUB_TOKEN", "refreshToken"), so "tokenizer" or
# "max_tokens_per_batch" are not read as secrets.
# A value may also run to the end of a truncated file with its closing quote missing.
EXTRA_KEYWORDS = (
    r"(?:token|credentials?|access_?key|signing_?key|encryption_?key|session_?key|secret(?:_?key)?"
    r"|api_?key|password|passwd|pwd)s?\b"
)
EXTRA_ASSIGNMENT = re.compile(
    EXTRA_KEYWORDS + r"[\]'\"]{0,2}\s*(?:=>?|:=?|={2,3})\s*([\'\"`]?)([^\s'\"`,;]+)(?:\1|$)", re.IGNORECASE
)
