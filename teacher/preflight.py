"""Before the first prompt is sent: can the teacher be reached at all?

A teacher that refuses connections, whose host name does not resolve, or whose base URL
has no chat completions route fails every prompt of the run, each only after its retries,
and the run would end with every prompt quarantined. `check_teacher` finds that out with
one or two small requests and raises TeacherUnreachable, whose one-line message names the
URL and the cause:

  GET  {base_url}/models                      answered 2xx: reachable
  POST {base_url}/chat/completions (1 token)  only when /models answered something else:
                                              2xx or another 4xx (400, 422: the route is
                                              there, the server judged the tiny request)
                                              counts as reachable
  connection refused, DNS failure             TeacherUnreachable
  404 on the completions route                TeacherUnreachable (wrong path or model)
  401 / 403                                   TeacherUnreachable (the key, named by its variable)
  timeout, 5xx, 429, a dropped socket         inconclusive: a busy or flaky teacher is what the
                                              client's retries are for, so the run goes on and
                                              `check_teacher` returns a note saying so

The key is read from the environment variable `api_key_env` names and sent as the client
sends it; every message is scrubbed of it.
"""

from __future__ import annotations

import os

import httpx

from distillery.config import ConfigError
from teacher.client import connection_failure, tls_context
from teacher.config import DistillConfig
from teacher.scrub import scrub

# 10 s: a listening teacher answers GET /models in milliseconds; a connect that takes longer
# is a host that is not there. Capped by distill.timeout_s, which may be shorter.
PREFLIGHT_TIMEOUT_S = 10.0


class TeacherUnreachable(ConfigError):
    """The teacher cannot be asked anything: the message names the URL and the cause."""


def check_teacher(cfg: DistillConfig) -> str | None:
    """Raise TeacherUnreachable when no prompt could reach the teacher (see module docstring).

    Returns None when the teacher answered, or a one-line note when the check was
    inconclusive (timeout, 5xx, 429) and the run should go on."""
    key = os.environ.get(cfg.api_key_env) or None
    base = cfg.base_url.rstrip("/")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    timeout = min(cfg.timeout_s, PREFLIGHT_TIMEOUT_S)

    def clean(text: str) -> str:
        return " ".join(scrub(text, [key]).split())  # one line, never the key

    def unreachable(cause: str) -> TeacherUnreachable:
        return TeacherUnreachable(
            clean(
                f"cannot reach the teacher at {cfg.base_url}: {cause}; "
                "check distill.base_url and that the teacher is running"
            )
        )

    def refused_key(resp: httpx.Response) -> TeacherUnreachable:
        had = f"the key in ${cfg.api_key_env}" if key else f"no key (${cfg.api_key_env} is not set)"
        return TeacherUnreachable(
            clean(
                f"the teacher at {cfg.base_url} refused {had}: HTTP {resp.status_code} "
                f"on {resp.request.method} {resp.request.url.path}; set ${cfg.api_key_env}"
            )
        )

    with httpx.Client(timeout=timeout, verify=tls_context(), headers=headers) as client:

        def ask(method: str, url: str, **kwargs) -> httpx.Response | str:
            """The response, or a note on an inconclusive failure; raises when nothing listens."""
            try:
                return client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                failed = connection_failure(exc)
                if failed is not None:
                    raise unreachable(f"{failed[1]} ({url})") from None
                if isinstance(exc, httpx.ConnectTimeout):
                    raise unreachable(f"no connection within {timeout}s ({url})") from None
                if isinstance(exc, httpx.ConnectError):
                    raise unreachable(f"{type(exc).__name__}: {exc} ({url})") from None
                return clean(f"teacher check inconclusive: {method} {url}: {type(exc).__name__}: {exc}; going on")

        models = ask("GET", f"{base}/models")
        if isinstance(models, str):
            return models
        if models.is_success:
            return None
        if models.status_code in (401, 403):
            raise refused_key(models)
        # No /models here (or it failed): one tiny completion shows whether the route exists.
        body = {"model": cfg.model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
        chat = ask("POST", f"{base}/chat/completions", json=body)
        if isinstance(chat, str):
            return chat
        if chat.status_code == 404:
            raise unreachable(f"POST {base}/chat/completions answered HTTP 404: {chat.text[:200]}")
        if chat.status_code in (401, 403):
            raise refused_key(chat)
        if chat.status_code == 429 or chat.status_code >= 500:
            return clean(
                f"teacher check inconclusive: POST {base}/chat/completions answered HTTP {chat.status_code}; going on"
            )
        return None
