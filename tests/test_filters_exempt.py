"""Sources exempt from the web-text rules still get PII redaction, and others do not escape them."""

import polars as pl

from filters import filter_partition
from filters.config import CurateConfig


def _docs():
    texts = ["What is 123 + 989? Mail me at jo@example.com", "What is 5 + 7?"]
    return pl.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "modality": ["text"] * 4,
            "source": ["problems", "problems", "web", "web"],
            "uri": ["u1", "u2", "u3", "u4"],
            "license": [None] * 4,
            "text": texts + texts,
            "media": [None] * 4,
            "meta": ["{}"] * 4,
            "parents": [[]] * 4,
        }
    )


def test_exempt_source_skips_web_rules_but_is_redacted(tmp_path):
    result = filter_partition(_docs(), CurateConfig(web_rules_exempt_sources=["problems"]), tmp_path)
    kept = result.tables["curated"]
    assert sorted(kept["id"]) == ["a", "b"]  # the same short texts from "web" are rejected
    assert sorted(result.tables["rejects"]["id"]) == ["c", "d"]
    assert "jo@example.com" not in " ".join(kept["text"].to_list())
    assert result.rows_in == 4


def test_without_exemption_short_questions_are_rejected(tmp_path):
    result = filter_partition(_docs(), CurateConfig(), tmp_path)
    assert result.tables["curated"].height == 0
