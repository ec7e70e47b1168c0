"""The request cache's spend recount: its memo of parsed files stays within a named bound."""

from __future__ import annotations

import json

from teacher.cache import _USAGE_MEMO, USAGE_MEMO_ENTRIES, ResponseCache, UsageMemo, cached_spend, request_key


def _fill(cache_dir, n: int) -> int:
    cache, total = ResponseCache(cache_dir, "org/model"), 0
    for i in range(n):
        usage = {"prompt_tokens": 10 + i, "completion_tokens": 3 * i}
        total += usage["prompt_tokens"] + usage["completion_tokens"]
        key = request_key("http://127.0.0.1:1", "org/model", [{"role": "user", "content": str(i)}], {}, 0)
        cache.put(key, json.dumps({"choices": [{"message": {"content": str(i)}}], "usage": usage}).encode())
    return total


def test_usage_memo_keeps_at_most_its_size_and_the_recount_stays_exact(tmp_path):
    total = _fill(tmp_path / "c", 12)
    memo = UsageMemo(max_entries=5)
    for _ in range(3):  # more files than the memo holds: every recount is still the whole sum
        assert cached_spend(tmp_path / "c", {"org/model": (1.0, 2.0)}, memo).tokens == total
        assert len(memo) == 5
    total = _fill(tmp_path / "c", 13)  # the same 12 files rewritten (new mtimes) and one more
    assert cached_spend(tmp_path / "c", {}, memo).tokens == total and len(memo) == 5


def test_usage_memo_drops_the_least_recently_used_entry():
    memo = UsageMemo(max_entries=2)
    memo.put("a", (1, 1, 1))
    memo.put("b", (1, 2, 2))
    assert memo.get("a") == (1, 1, 1)  # "a" used last: "b" is the one to go
    memo.put("c", (1, 3, 3))
    assert memo.get("b") is None and memo.get("a") == (1, 1, 1) and memo.get("c") == (1, 3, 3)


def test_the_process_memo_is_bounded_by_the_named_size():
    assert _USAGE_MEMO.max_entries == USAGE_MEMO_ENTRIES
