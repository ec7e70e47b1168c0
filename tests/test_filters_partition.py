"""filter_partition end to end: accounting, rule names, redaction into meta, decontamination, config."""

from __future__ import annotations

import json
import random

import polars as pl
import pytest
from pydantic import ValidationError

from distillery.result import conform
from distillery.tables import DOCUMENT, QUARANTINE, REJECT
from filters import CurateConfig, filter_partition

VOCAB = (
    "river mountain garden teacher window science history music market travel village story "
    "doctor engine bridge winter summer island forest animal kitchen letter number people planet "
    "morning evening station library theater company painting harbor castle journey weather"
).split()


def article(seed: int, n_sentences: int = 12) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_sentences):
        w = rng.sample(VOCAB, 8)
        lines.append(f"The {w[0]} of the {w[1]} was near {w[2]} and {w[3]}, with {w[4]} {w[5]} in {w[6]} {w[7]}.")
    return "\n".join(lines)


def docs_frame(rows: list[dict]) -> pl.DataFrame:
    full = [
        {
            "id": f"id{i}",
            "source": "test",
            "uri": f"u{i}",
            "license": None,
            "media": None,
            "meta": None,
            "parents": [],
            "text": None,
            **r,
        }
        for i, r in enumerate(rows)
    ]
    return pl.from_arrow(conform(pl.DataFrame(full, schema_overrides={"parents": pl.List(pl.Utf8)}), DOCUMENT))


def test_every_row_lands_once_and_schemas_conform(tmp_path):
    docs = docs_frame(
        [
            {"modality": "text", "text": article(1) + "\nMail jane@example.com or call (415) 555-0132 today, please."},
            {"modality": "text", "text": "too short."},
            {"modality": "text", "text": None},
            {
                "modality": "code",
                "uri": "a.py",
                "text": "def f(x):\n    return x + 1  # key: sk-abcdefghijklmnopqrstuvwxyz\n",
            },
            {"modality": "image", "media": "media/ab/" + "ab" * 32, "meta": json.dumps({"width": 10, "height": 10})},
            {"modality": "hologram", "text": "x"},
        ]
    )
    res = filter_partition(docs, CurateConfig(), tmp_path)
    t = res.tables
    assert res.rows_in == 6 == t["curated"].height + t["rejects"].height + t["quarantine"].height
    conform(t["curated"], DOCUMENT), conform(t["rejects"], REJECT), conform(t["quarantine"], QUARANTINE)
    assert sorted(t["curated"]["id"]) == ["id0", "id3"]
    assert dict(zip(t["rejects"]["id"], t["rejects"]["rule"])) == {"id1": "language_not_allowed"} or t["rejects"][
        "id"
    ].to_list() == ["id1"]
    assert dict(zip(t["quarantine"]["id"], t["quarantine"]["reason"])) == {
        "id2": "text_missing",
        "id4": "media_missing",
        "id5": "unknown_modality",
    }
    cur = {r["id"]: r for r in t["curated"].iter_rows(named=True)}
    assert "<EMAIL>" in cur["id0"]["text"] and "jane@example.com" not in cur["id0"]["text"]
    assert "<PHONE>" in cur["id0"]["text"]
    meta = json.loads(cur["id0"]["meta"])
    assert meta["redactions"] == {"email": 1, "phone": 1} and meta["language"] == "en"
    assert "<API_KEY>" in cur["id3"]["text"] and json.loads(cur["id3"]["meta"])["redactions"] == {"api_key": 1}
    assert res.stats["redacted:email"] == 1 and res.stats["kept"] == 2
    assert res.stats["quarantine:text_missing"] == 1


def test_first_failing_rule_is_recorded_with_value(tmp_path):
    spam = article(2) + "\n" + "\n".join(["Buy now and save today on the best deals."] * 12)
    res = filter_partition(docs_frame([{"modality": "text", "text": spam}]), CurateConfig(), tmp_path)
    rej = res.tables["rejects"].row(0, named=True)
    assert rej["rule"] == "gopher_dup_line_frac" and rej["stage"] == "curate"
    assert rej["value"] == pytest.approx(11 / 24)


def test_rule_switched_off_by_none(tmp_path):
    docs = docs_frame([{"modality": "text", "text": article(3, n_sentences=3)}])
    assert filter_partition(docs, CurateConfig(), tmp_path).tables["rejects"]["rule"].to_list() == ["gopher_short_doc"]
    cfg = CurateConfig.model_validate({"gopher_quality": {"min_doc_words": None}, "c4": {"min_num_sentences": None}})
    assert filter_partition(docs, cfg, tmp_path).tables["curated"].height == 1


def test_c4_cleaned_text_is_kept_and_counted(tmp_path):
    text = article(4) + "\nPlease enable javascript to see the rest of this page."
    res = filter_partition(
        docs_frame([{"modality": "text", "text": text, "meta": '{"lang_hint": "en"}'}]), CurateConfig(), tmp_path
    )
    row = res.tables["curated"].row(0, named=True)
    assert "javascript" not in row["text"]
    meta = json.loads(row["meta"])
    assert meta["c4_removed_lines"] == {"javascript": 1} and meta["lang_hint"] == "en"
    assert res.stats["c4_removed:javascript"] == 1


def test_decontamination_drops_and_flags(tmp_path):
    bench_item = article(7, n_sentences=2).replace("\n", " ")
    (tmp_path / "bench.jsonl").write_text(
        json.dumps({"text": bench_item}) + "\n" + json.dumps({"text": "short item"}) + "\n"
    )
    (tmp_path / "code.txt").write_text("for (int i = 0; i < count; ++i) { total += values[i] * weights[i]; }\n")
    eval_sets = [
        {"name": "mybench", "path": str(tmp_path / "bench.jsonl")},
        {"name": "codebench", "path": str(tmp_path / "code.txt")},
    ]
    leaked = article(8) + "\n" + bench_item.upper()  # case does not hide it
    code_leak = "int main() {\n  for (int i = 0; i < count; ++i) { total += values[i] * weights[i]; }\n}\n"
    docs = docs_frame(
        [
            {"modality": "text", "text": leaked},
            {"modality": "text", "text": article(9)},
            {"modality": "code", "uri": "m.c", "text": code_leak},
        ]
    )
    cfg = CurateConfig.model_validate({"decontam": {"eval_sets": eval_sets}})
    res = filter_partition(docs, cfg, tmp_path)
    rej = dict(zip(res.tables["rejects"]["id"], res.tables["rejects"]["rule"]))
    assert rej == {"id0": "decontam:mybench", "id2": "decontam:codebench"}
    assert res.tables["rejects"].filter(pl.col("id") == "id0")["value"][0] >= 10
    cfg_flag = CurateConfig.model_validate({"decontam": {"eval_sets": eval_sets, "action": "flag"}})
    res = filter_partition(docs, cfg_flag, tmp_path)
    assert res.tables["curated"].height == 3
    meta = json.loads(res.tables["curated"].filter(pl.col("id") == "id0")["meta"][0])
    assert meta["decontam"]["benchmark"] == "mybench" and meta["decontam"]["overlaps"] >= 10


def test_config_rejects_unknown_keys():
    with pytest.raises(ValidationError):
        CurateConfig.model_validate({"gopher_quality": {"min_words": 3}})
    with pytest.raises(ValidationError):
        CurateConfig.model_validate({"decontam": {"action": "delete"}})


def test_empty_partition(tmp_path):
    res = filter_partition(docs_frame([]).head(0), CurateConfig(), tmp_path)
    assert res.rows_in == 0 and all(t.height == 0 for t in res.tables.values())


def test_blank_text_is_rejected_as_empty(tmp_path):
    docs = docs_frame([{"modality": "text", "text": "   \n\t "}, {"modality": "code", "uri": "e.py", "text": ""}])
    res = filter_partition(docs, CurateConfig(), tmp_path)
    assert res.tables["rejects"]["rule"].to_list() == ["empty_text", "empty_text"]
    assert res.tables["rejects"]["value"].to_list() == [0.0, 0.0]


def test_rejected_rows_are_redacted_too(tmp_path):
    docs = docs_frame([{"modality": "text", "text": "AWS key AKIAIOSFODNN7EXAMPLE and mail bob@example.com."}])
    res = filter_partition(docs, CurateConfig(), tmp_path)
    rej = res.tables["rejects"].row(0, named=True)
    assert "AKIAIOSFODNN7EXAMPLE" not in rej["text"] and "bob@example.com" not in rej["text"]
    assert json.loads(rej["meta"])["redactions"] == {"api_key": 1, "email": 1}
    assert res.stats["redacted:api_key"] == 1
