"""Text quality rules (Gopher, C4, FineWeb, language id): crafted inputs on both sides of each threshold."""

from __future__ import annotations

import random

import polars as pl
import pytest

from filters import c4, fineweb, gopher, langid
from filters.config import C4Config, FineWebConfig, GopherQualityConfig, GopherRepetitionConfig, LanguageConfig
from filters.rules import Rule, first_failure

VOCAB = (
    "river mountain garden teacher window science history music market travel village story "
    "doctor engine bridge winter summer island forest animal kitchen letter number people planet "
    "morning evening station library theater company painting harbor castle journey weather"
).split()


def sentence(i: int, n_words: int = 10) -> str:
    """A distinct, ordinary sentence with stop words; varies with i so nothing repeats."""
    picks = random.Random(i).sample(VOCAB, n_words - 3)
    return f"The {picks[0]} of {' '.join(picks[1:-1])} with {picks[-1]} {i}."


def good_text(n_sentences: int = 12) -> str:
    return "\n".join(sentence(i) for i in range(n_sentences))


def verdicts(texts: list[str], stats, rules: list[Rule]) -> list[str | None]:
    return first_failure(stats(pl.Series(texts)), rules)["rule"].to_list()


def gq(texts, **kw):
    cfg = GopherQualityConfig(**kw)
    return verdicts(texts, lambda s: gopher.quality_stats(s, cfg), gopher.quality_rules(cfg))


def gr(texts, **kw):
    cfg = GopherRepetitionConfig(**kw)
    return verdicts(texts, lambda s: gopher.repetition_stats(s, cfg), gopher.repetition_rules(cfg))


def test_good_text_passes_every_family():
    t = good_text()
    assert gq([t]) == [None]
    assert gr([t]) == [None]
    cleaned, st = c4.clean(pl.Series([t]), C4Config())
    assert first_failure(st, c4.rules(C4Config()))["rule"].to_list() == [None]
    assert cleaned.to_list() == [t]
    assert verdicts([t], lambda s: fineweb.stats(s, FineWebConfig()), fineweb.rules(FineWebConfig())) == [None]


def words_text(n: int) -> str:
    ws = [VOCAB[i % len(VOCAB)] for i in range(n)]
    ws[0], ws[1] = "the", "and"
    return " ".join(ws) + "."


def test_gopher_short_and_long_doc():
    assert gq([words_text(49), words_text(50)], min_doc_words=50) == ["gopher_short_doc", None]
    assert gq([words_text(61), words_text(60)], max_doc_words=60) == ["gopher_long_doc", None]


def test_gopher_word_length_bounds():
    short_words = " ".join(["the", "and", "a", "of"] * 20)  # mean 2.25 < 3
    assert gq([short_words, words_text(80)]) == ["gopher_below_avg_word_length", None]
    long_words = "the and " + " ".join(["internationalization"] * 60)
    assert gq([long_words]) == ["gopher_above_avg_word_length"]


def test_gopher_hash_and_ellipsis_ratio():
    base = words_text(100)
    assert gq([base + " #" * 13, base + " #" * 9]) == ["gopher_too_many_hashes", None]
    assert gq([base + " ..." * 13 + " fin.", base + " ..." * 5 + " fin."]) == ["gopher_too_many_ellipsis", None]


def test_gopher_bullets_and_end_ellipsis():
    lines = [f"- {sentence(i)}" for i in range(10)]
    assert gq(["\n".join(lines)], min_alpha_words_ratio=None) == ["gopher_too_many_bullets"]
    lines_ok = lines[:9] + [sentence(20)] + [sentence(21)]  # 9/11 bullets < 0.9
    assert gq(["\n".join(lines_ok)], min_alpha_words_ratio=None) == [None]
    ell = [sentence(i).rstrip(".") + "..." if i < 4 else sentence(i) for i in range(10)]  # 0.4 > 0.3
    assert gq(["\n".join(ell)], max_symbol_word_ratio=None) == ["gopher_too_many_end_ellipsis"]
    ell_ok = [sentence(i).rstrip(".") + "..." if i < 3 else sentence(i) for i in range(10)]  # 0.3
    assert gq(["\n".join(ell_ok)], max_symbol_word_ratio=None) == [None]


def test_gopher_alpha_and_stop_words():
    nums = words_text(60) + " " + " ".join(["1234"] * 20)  # 20 of 81 tokens without letters
    assert gq([nums]) == ["gopher_below_alpha_threshold"]
    assert gq([words_text(60) + " " + " ".join(["1234"] * 10)]) == [None]
    no_stop = " ".join(VOCAB[i % len(VOCAB)] for i in range(60)) + " the."
    assert gq([no_stop, no_stop + " and"]) == ["gopher_enough_stop_words", None]


def test_gopher_repetition_lines_and_paragraphs():
    uniq = [sentence(i) for i in range(10)]
    dup_lines = uniq[:6] + [uniq[0]] * 4  # 4/10 repeated lines > 0.3
    assert gr(["\n".join(dup_lines)], dup_para_frac=None, dup_para_char_frac=None) == ["gopher_dup_line_frac"]
    ok_lines = uniq[:8] + [uniq[0]] * 1
    assert gr(["\n".join(ok_lines)], dup_para_frac=None, dup_para_char_frac=None) == [None]
    paras = "\n\n".join(uniq[:6] + [uniq[0]] * 4)
    assert gr([paras]) == ["gopher_dup_para_frac"]


def test_gopher_top_and_duplicate_ngrams():
    spam = good_text(6) + " " + "buy cheap " * 40
    assert gr([spam])[0] in ("gopher_top_2_gram",)
    rep = " ".join(sentence(i) for i in range(6))
    assert gr([rep + " " + rep], top_n_grams={}) == ["gopher_dup_5_gram"]
    assert gr([rep + " " + sentence(30)], top_n_grams={}) == [None]


def test_c4_line_removal_and_document_rules():
    cfg = C4Config()
    text = "\n".join(
        [
            sentence(1),
            "Menu Home About",
            sentence(2),
            "Please enable JavaScript to view this page.",
            sentence(3),
            "Read our privacy policy before you continue here.",
            sentence(4),
            sentence(5),
            "Ok.",
            sentence(6) + "[1]",
        ]
    )
    cleaned, st = c4.clean(pl.Series([text]), cfg)
    out = cleaned[0]
    assert "JavaScript" not in out and "privacy policy" not in out and "Menu" not in out and "Ok." not in out
    assert "[1]" not in out and sentence(6) in out
    assert st["c4_removed_javascript"][0] == 1 and st["c4_removed_policy"][0] == 1
    assert st["c4_removed_no_terminal_punct"][0] == 1 and st["c4_removed_too_few_words"][0] == 1
    rules = c4.rules(cfg)
    verdict = lambda ts: first_failure(c4.clean(pl.Series(ts), cfg)[1], rules)["rule"].to_list()  # noqa: E731
    assert verdict([good_text(4), good_text(5)]) == ["c4_too_few_sentences", None]
    assert verdict([good_text() + "\nLorem ipsum dolor sit amet is here."]) == ["c4_lorem_ipsum"]
    assert verdict([good_text() + "\nThe code { is } here today."]) == ["c4_curly_bracket"]
    assert verdict([good_text() + "\nThe code { is } about javascript."]) == [None]


def fw(texts, **kw):
    cfg = FineWebConfig(**kw)
    return verdicts(texts, lambda s: fineweb.stats(s, cfg), fineweb.rules(cfg))


def test_fineweb_rules():
    no_punct = "\n".join(sentence(i).rstrip(".") + " and more words to be long" for i in range(10))
    one_punct = no_punct + "\n" + sentence(50) + "\n" + sentence(51)  # 2/12 > 0.12
    assert fw([no_punct, one_punct]) == ["fineweb_line_punct_ratio", None]
    assert fw([no_punct], line_punct_exclude_zero=True) == [None]
    short = "\n".join(["Short line here."] * 1 + [f"Tiny {i}." for i in range(8)] + [sentence(i) for i in range(3)])
    assert fw([short], char_duplicates_ratio=None, new_line_ratio=None) == ["fineweb_short_line_ratio"]
    dup = good_text() + "\n" + sentence(0)
    assert fw([dup, good_text()]) == ["fineweb_char_dup_ratio", None]
    listy = "\n".join(f"{VOCAB[i]} {VOCAB[i + 1]}." for i in range(20))
    assert fw([listy], short_line_thr=None) == ["fineweb_list_ratio"]
    assert fw([""]) == ["fineweb_empty"]


def test_language_rules():
    cfg = LanguageConfig()
    en = "The committee published its annual report on the state of public libraries in the region."
    fr = "Le comité a publié son rapport annuel sur l'état des bibliothèques publiques de la région."
    v = verdicts([en, fr], lambda s: langid.stats(s, cfg), langid.rules(cfg))
    assert v == [None, "language_not_allowed"]
    strict = LanguageConfig(min_score=1.01)
    assert verdicts([en], lambda s: langid.stats(s, strict), langid.rules(strict)) == ["language_low_score"]
    assert verdicts(
        [fr], lambda s: langid.stats(s, LanguageConfig(allowed=["fr"])), langid.rules(LanguageConfig(allowed=["fr"]))
    ) == [None]


@pytest.mark.parametrize("op,value,fails", [(">", 0.31, True), (">", 0.3, False), ("<", 2.0, False), ("<", 1.0, True)])
def test_rule_comparisons_and_nan_never_fail(op, value, fails):
    rule = Rule("r", "x", op, 0.3 if op == ">" else 1.5)
    out = first_failure(pl.DataFrame({"x": [value, float("nan"), None]}), [rule])
    assert out["rule"].to_list() == [("r" if fails else None), None, None]
