"""Store paid responses off the event loop, on one thread, many per wake-up.

Every teacher response is written to the cache before it is parsed (teacher/cache.py).
Writing on the event loop would stall every request in flight whenever the disk is slow;
a hop to the default executor per response costs more CPU than the write itself (a thread
wake-up, a contended GIL and a loop wake-up each time), which at a few hundred responses a
second is what bounds a partition's request rate. So one writer thread per event loop
takes whatever responses have queued up, writes them all, and wakes the loop once.

Contract: `await writer.put(cache, key, body)` returns once the body is on disk, or raises
what the write raised (a full disk, say); the caller's request is then not answered.
"""

from __future__ import annotations

import asyncio
import queue
import threading

from teacher.cache import ResponseCache

_STOP = object()


class CacheWriter:
    """A writer thread bound to the running event loop; `close` stops it."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def put(self, cache: ResponseCache, key: str, body: bytes) -> None:
        if self._thread is None:  # started on first use, from inside the loop it reports to
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="teacher-cache-writer", daemon=True)
            self._thread.start()
        done = self._loop.create_future()
        self._queue.put((cache, key, body, done))
        await done

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            outcomes = []
            for item in batch:
                if item is _STOP:
                    continue
                cache, key, body, done = item
                try:
                    cache.put(key, body)
                    outcomes.append((done, None))
                except BaseException as exc:  # handed to the awaiting request, never lost here
                    outcomes.append((done, exc))
            if outcomes:
                self._loop.call_soon_threadsafe(_settle, outcomes)
            if any(item is _STOP for item in batch):
                return

    async def close(self) -> None:
        """Finish what is queued, then stop the thread (no-op if it never started)."""
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None


def _settle(outcomes: list) -> None:
    for done, exc in outcomes:
        if done.cancelled():
            continue
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)
