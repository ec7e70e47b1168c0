"""The distill stage's configuration: which rows go to which prompt, and how the teacher is asked.

Every model forbids unknown keys so a typo fails at start-up, not after an hour of requests.
The API key itself is never part of the config: only the NAME of the environment variable
that holds it (`api_key_env`); a local server needs none.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from teacher.templates import BUILTIN_TEMPLATES, check_custom_template


class SelectorConfig(BaseModel):
    """Which rows a task applies to; None means "any". All given conditions must hold."""

    model_config = ConfigDict(extra="forbid")

    modalities: list[str] | None = None
    sources: list[str] | None = None  # checked against the configured sources by PipelineConfig
    text_regex: str | None = None  # Rust-regex syntax (Polars `str.contains`), searched in `text`

    @field_validator("modalities")
    @classmethod
    def _known_modalities(cls, value: list[str] | None) -> list[str] | None:
        from distillery.tables import MODALITIES

        unknown = [m for m in value or [] if m not in MODALITIES]
        if unknown:
            raise ValueError(f"unknown modality {', '.join(map(repr, unknown))}; allowed: {', '.join(MODALITIES)}")
        return value

    @field_validator("text_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            problem = polars_regex_error(value)
            if problem:
                raise ValueError(f"not a regex Polars can run (Rust regex syntax): {problem}")
        return value


def polars_regex_error(pattern: str) -> str | None:
    """Why Polars (Rust `regex`) refuses `pattern`, in one line; None when it compiles.

    Checked with the engine that runs it: Python's `re` accepts look-ahead and
    backreferences, which Polars refuses only when the distill stage reaches them.
    """
    import polars as pl

    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
    except pl.exceptions.PolarsError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = next((line for line in lines if line.startswith("error:")), lines[-1] if lines else "")
        return detail.removeprefix("error:").strip() or type(exc).__name__
    return None


class TaskConfig(BaseModel):
    """One kind of request: a prompt template applied to the rows its selector matches."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    template: str  # a BUILTIN_TEMPLATES name, or a custom str.format string using {text} etc.
    selector: SelectorConfig = SelectorConfig()
    verify: Literal["math", "code", "judge", "none"] = "none"
    system: str | None = None  # optional system message

    @field_validator("template")
    @classmethod
    def _known_or_formattable(cls, value: str) -> str:
        if value not in BUILTIN_TEMPLATES:
            check_custom_template(value)
        return value


class Price(BaseModel):
    """US dollars per one million tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class DistillConfig(BaseModel):
    """How to ask the teacher. Defaults suit the bundled reference server on loopback."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = "http://127.0.0.1:8765/v1"
    model: str = "distillery-reference"
    api_key_env: str = "DISTILLERY_TEACHER_API_KEY"
    tasks: list[TaskConfig]

    # sampling: every field here is part of the cache key
    n_samples: int = Field(default=1, ge=1)
    server_side_n: bool = False  # one request with n=n_samples, where the server supports `n`
    temperature: float = Field(default=0.6, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=4096, ge=1)
    seed: int | None = 0  # sample i is sent with seed + i so separate requests differ
    truncation_retry_max_tokens: int | None = None  # one retry with this budget on length
    max_prompt_tokens: int | None = Field(default=None, ge=1)  # longer prompts: quarantined unsent

    # transport
    stream: bool = False  # SSE with usage: keeps long generations alive through idle timeouts
    concurrency: int = Field(default=8, ge=1)
    rpm: float | None = Field(default=None, gt=0)  # requests per minute
    tpm: float | None = Field(default=None, gt=0)  # tokens per minute (input + max_tokens)
    timeout_s: float = Field(default=600.0, gt=0)
    max_retries: int = Field(default=6, ge=0)
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    # A committed partition is not asked again, so prompts it quarantined (timeouts, 5xx,
    # an outage) stay quarantined. Raise this by one to ask again: it starts a new distill
    # generation, whose answered requests all come from the cache at no cost.
    retry_round: int = Field(default=0, ge=0)

    # money
    budget_tokens: int | None = Field(default=None, ge=0)
    budget_usd: float | None = Field(default=None, ge=0)
    prices: dict[str, Price] = {}

    # batch API
    mode: Literal["online", "batch"] = "online"
    batch_poll_s: float = Field(default=30.0, gt=0)
    batch_wait_s: float | None = None  # give up waiting (BatchPending) after this; None = wait
    batch_completion_window: str = "24h"

    # verification
    only_verified: bool = True  # keep only verdict "pass" (and "unverified" for verify="none")
    verify_timeout_s: float = Field(default=10.0, gt=0)
    judge_model: str | None = None  # None: the teacher model judges
    judge_max_tokens: int = Field(default=1024, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> DistillConfig:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique: {names}")
        if self.stream and self.mode == "batch":
            raise ValueError("the Batch API does not stream: use stream=false with mode=batch")
        if self.budget_usd is not None:
            missing = {self.model, self.judge_model or self.model} - set(self.prices)
            if missing:
                raise ValueError(f"budget_usd needs prices for {sorted(missing)}")
        return self
