"""Language identification with py3langid (a langid.py fork whose naive-Bayes model ships
inside the wheel: nothing is downloaded at run time).

Rules: `language_not_allowed` (the top language is not in `allowed`; value = its score) and
`language_low_score` (the top language is allowed but its normalised probability is below
`min_score`, FineWeb's 0.65). The identifier has no batch API, so it is called once per
document on at most the first `MAX_CHARS` characters; `bench/filters.py` reports its rate.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import polars as pl

from filters.config import LanguageConfig
from filters.rules import Rule, rule_if

MAX_CHARS = 1000  # ~150 words: langid is confident well before this; cost is linear in length


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identify(texts: pl.Series) -> tuple[list[str | None], np.ndarray]:
    """(language code, normalised probability) per text; None / NaN for empty texts."""
    langs: list[str | None] = []
    scores = np.full(len(texts), np.nan)
    for i, t in enumerate(texts.cast(pl.Utf8).str.slice(0, MAX_CHARS).to_list()):
        if not t or not t.strip():
            langs.append(None)
            continue
        lang, score = _identifier().classify(t)
        langs.append(lang)
        scores[i] = float(score)
    return langs, scores


def stats(texts: pl.Series, cfg: LanguageConfig) -> pl.DataFrame:
    n = len(texts)
    if not cfg.enabled:
        return pl.DataFrame(
            {"lang": [None] * n, "lang_score": np.full(n, np.nan)}, schema={"lang": pl.Utf8, "lang_score": pl.Float64}
        )
    langs, scores = identify(texts)
    lang = pl.Series("lang", langs, dtype=pl.Utf8)
    allowed = lang.is_in(cfg.allowed).to_numpy() if cfg.allowed is not None else np.ones(n, bool)
    return pl.DataFrame(
        {
            "lang": lang,
            "lang_score": scores,
            "lang_allowed_score": np.where(allowed, scores, np.nan),
            "lang_foreign_score": np.where(allowed, np.nan, scores),
        }
    )


def rules(cfg: LanguageConfig) -> list[Rule]:
    if not cfg.enabled:
        return []
    return (
        rule_if("language_not_allowed", "lang_foreign_score", ">=", 0.0) if cfg.allowed is not None else []
    ) + rule_if("language_low_score", "lang_allowed_score", "<", cfg.min_score)
