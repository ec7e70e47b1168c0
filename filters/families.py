"""The filter families of the curate stage, as data: which rows each judges, the statistics
it computes for them and the rules over those statistics.

A `Family` is a small datatrove-style unit, vectorized per partition: `stats` computes the
family's statistic columns for all the rows in its scope at once, `rules` lists its
rules (name, statistic column, comparison, named config threshold; see filters.rules).
Its scope is the rows of its `modalities` that are not quarantined, minus the sources
exempt from web-text rules when `web` is set. A family whose `enabled` is false computes
nothing and has no rules.

`FAMILIES` is in rule-table order: the first failing rule of the first family that fails
is what a reject records. The C4 family also rewrites the text (line removal) that later
families (FineWeb) judge and that kept rows store, through `Scope.cleaned`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from filters import c4, code, decontam, fineweb, gopher, langid, media
from filters.config import CurateConfig
from filters.rules import Rule

TEXTUAL = ("text", "code")
MEDIA = ("image", "audio", "video")


@dataclass
class Partition:
    """What families read of one partition: its rows, the media probe (computed before the
    families, since unreadable media is quarantined) and the C4-cleaned text of the rows
    in the web-text scope (`cleaned`, aligned with `cleaned_idx`; None until C4 runs)."""

    docs: pl.DataFrame
    probe: pl.DataFrame
    cleaned: pl.Series | None = None
    cleaned_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class Scope:
    """The rows one family judges: their positions in the partition and the partition."""

    idx: np.ndarray
    part: Partition

    def column(self, name: str) -> pl.Series:
        return self.part.docs[name].gather(self.idx)

    @property
    def text(self) -> pl.Series:
        return self.column("text").cast(pl.Utf8)

    @property
    def cleaned_text(self) -> pl.Series:
        """The C4-cleaned text (the raw text when C4 did not run); web-text scope only."""
        if self.part.cleaned is None:
            return self.text
        assert np.array_equal(self.idx, self.part.cleaned_idx), "cleaned text is for the web-text scope"
        return self.part.cleaned


@dataclass(frozen=True)
class Family:
    name: str
    modalities: tuple[str, ...]
    web: bool  # web-text rules: skipped for cfg.web_rules_exempt_sources
    enabled: Callable[[CurateConfig], bool]
    stats: Callable[[Scope, CurateConfig], pl.DataFrame]
    rules: Callable[[CurateConfig], list[Rule]]


def _empty_stats(s: Scope, cfg: CurateConfig) -> pl.DataFrame:
    return pl.DataFrame({"text_chars": s.text.str.strip_chars().str.len_chars().cast(pl.Float64)})


def _c4_stats(s: Scope, cfg: CurateConfig) -> pl.DataFrame:
    cleaned, stats = c4.clean(s.text, cfg.c4)
    s.part.cleaned, s.part.cleaned_idx = cleaned, s.idx
    return stats.with_columns(pl.Series("c4_kept_chars", cleaned.str.len_chars().cast(pl.Float64)))


def _c4_rules(cfg: CurateConfig) -> list[Rule]:
    return c4.rules(cfg.c4) + [Rule("c4_empty_after_cleaning", "c4_kept_chars", "<=", 0)]


def _decontam_stats(s: Scope, cfg: CurateConfig) -> pl.DataFrame:
    return decontam.overlaps(s.text, s.column("modality") == "code", cfg.decontam)


def _decontam_rules(cfg: CurateConfig) -> list[Rule]:
    # "flag" only marks meta (filter_partition); "drop" rejects as decontam:<benchmark>.
    if cfg.decontam.action != "drop":
        return []
    return [Rule("decontam", "decontam_count", ">=", cfg.decontam.min_overlaps, suffix_column="decontam_bench")]


FAMILIES: tuple[Family, ...] = (
    Family(
        "empty", TEXTUAL, False, lambda cfg: True, _empty_stats, lambda cfg: [Rule("empty_text", "text_chars", "<=", 0)]
    ),
    Family(
        "language",
        ("text",),
        True,
        lambda cfg: cfg.language.enabled,
        lambda s, cfg: langid.stats(s.text, cfg.language),
        lambda cfg: langid.rules(cfg.language),
    ),
    Family(
        "gopher_repetition",
        ("text",),
        True,
        lambda cfg: cfg.gopher_repetition.enabled,
        lambda s, cfg: gopher.repetition_stats(s.text, cfg.gopher_repetition),
        lambda cfg: gopher.repetition_rules(cfg.gopher_repetition),
    ),
    Family(
        "gopher_quality",
        ("text",),
        True,
        lambda cfg: cfg.gopher_quality.enabled,
        lambda s, cfg: gopher.quality_stats(s.text, cfg.gopher_quality),
        lambda cfg: gopher.quality_rules(cfg.gopher_quality),
    ),
    Family("c4", ("text",), True, lambda cfg: cfg.c4.enabled, _c4_stats, _c4_rules),
    Family(
        "fineweb",
        ("text",),
        True,
        lambda cfg: cfg.fineweb.enabled,
        lambda s, cfg: fineweb.stats(s.cleaned_text, cfg.fineweb),
        lambda cfg: fineweb.rules(cfg.fineweb),
    ),
    Family(
        "code",
        ("code",),
        False,
        lambda cfg: cfg.code.enabled,
        lambda s, cfg: code.stats(s.text, s.column("uri"), cfg.code),
        lambda cfg: code.rules(cfg.code),
    ),
    Family(
        "media",
        MEDIA,
        False,
        lambda cfg: True,
        lambda s, cfg: s.part.probe.drop("media_reason", "media_error").gather(s.idx),
        lambda cfg: media.rules(cfg.media),
    ),
    Family("decontam", TEXTUAL, False, lambda cfg: cfg.decontam.enabled, _decontam_stats, _decontam_rules),
)


def scope(family: Family, modality: pl.Series, usable: np.ndarray, exempt: np.ndarray) -> np.ndarray:
    """Positions of the rows `family` judges: its modalities, usable (not quarantined), and
    for web-text families not from an exempt source."""
    rows = modality.is_in(list(family.modalities)).to_numpy() & usable
    return np.flatnonzero(rows & ~exempt if family.web else rows)
