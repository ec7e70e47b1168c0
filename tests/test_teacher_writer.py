"""The cache writer: every queued body lands before its put returns, and errors come back."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from teacher.cache import ResponseCache
from teacher.writer import CacheWriter


def test_concurrent_puts_all_land_and_a_failed_write_raises_in_its_caller(tmp_path):
    cache = ResponseCache(tmp_path / "cache", "some/model")
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(300)]
    # a file where a key's shard folder must go: that one write fails, the others do not
    blocked = keys[0][:2]
    (cache.root).mkdir(parents=True)
    (cache.root / blocked).write_text("not a folder")

    async def main() -> list:
        writer = CacheWriter()
        try:
            return await asyncio.gather(
                *(writer.put(cache, k, f'{{"i": {i}}}'.encode()) for i, k in enumerate(keys)),
                return_exceptions=True,
            )
        finally:
            await writer.close()

    outcomes = asyncio.run(main())
    failed = [k for k, o in zip(keys, outcomes) if isinstance(o, BaseException)]
    assert failed == [k for k in keys if k[:2] == blocked]
    assert all(isinstance(outcomes[keys.index(k)], OSError) for k in failed)
    for i, k in enumerate(keys):
        if k not in failed:
            assert cache.get(k) == f'{{"i": {i}}}'.encode()


def test_close_without_use_is_a_no_op():
    asyncio.run(CacheWriter().close())


@pytest.mark.parametrize("n", [1, 50])
def test_put_returns_only_after_the_file_exists(tmp_path, n):
    cache = ResponseCache(tmp_path, "m")

    async def main() -> None:
        writer = CacheWriter()
        for i in range(n):
            key = f"{i:064x}"
            await writer.put(cache, key, b"{}")
            assert cache.path(key).read_bytes() == b"{}"
        await writer.close()

    asyncio.run(main())
