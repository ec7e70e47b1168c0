"""The request cache: every teacher response ever paid for, addressed by what was asked.

Layout: `<cache_dir>/<model slug>/<key[:2]>/<key>.json`, where key = sha256 over the base
URL, model, messages in stored form (media by content hash), every sampling parameter and
the sample index (`request_key`). The file holds the raw HTTP response body exactly as
received -- it is the wire format of one response, not a data table, which is why it is
JSON and not Parquet. It is written atomically (temp file + rename) BEFORE it is parsed,
so a crash, a re-run, or a changed parser never pays for the same request twice.

A body that proved unusable (not JSON, no choices) is moved to `<model slug>/_set_aside/`
for inspection and the request counts as not answered. The spend of everything in the
cache is recomputed by `cached_spend`, which is how a budget survives restarts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from distillery import atomic


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no whitespace: equal values always give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(base_url: str, model: str, messages: list[dict], params: dict, sample_index: int | str) -> str:
    """The content address of one request (hex sha256)."""
    payload = {
        "base_url": base_url.rstrip("/"),
        "model": model,
        "messages": messages,
        "params": params,
        "sample_index": sample_index,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def model_slug(model: str) -> str:
    """A directory name for `model` (org/name -> org_name)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", model) or "_"


_MADE_DIRS: set[Path] = set()  # folders known to exist: skips a mkdir syscall per write


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one.

    distillery.atomic.write_bytes without fsyncs (a lost entry is re-fetched) and without a
    mkdir per call: this runs once per teacher response and sits on the request path.
    """
    if path.parent not in _MADE_DIRS:
        path.parent.mkdir(parents=True, exist_ok=True)
        _MADE_DIRS.add(path.parent)
    try:
        atomic.write_bytes(path, data, durable=False, make_dirs=False)
    except FileNotFoundError:  # the folder was removed since we made it
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(path, data, durable=False, make_dirs=False)


class ResponseCache:
    """Raw responses of one model under one cache directory."""

    def __init__(self, cache_dir: Path, model: str) -> None:
        self.root = Path(cache_dir) / model_slug(model)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, body: bytes) -> None:
        write_atomic(self.path(key), body)

    def set_aside(self, key: str) -> None:
        """Move an unusable body out of the way (kept for inspection, not served again)."""
        src = self.path(key)
        if src.exists():
            dest = self.root / "_set_aside" / f"{key}.{time.time_ns()}.{os.getpid()}.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)


@dataclass
class Spend:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def usage_of(body: bytes) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens) a raw body reports (JSON or SSE); (0, 0) if none."""
    try:
        if body.lstrip().startswith(b"data:"):  # streamed: usage rides on a late event
            events = [ln[5:].strip() for ln in body.splitlines() if ln.startswith(b"data:")]
            docs = [json.loads(e) for e in events if e and e != b"[DONE]"]
            usage = next((d["usage"] for d in reversed(docs) if d.get("usage")), {})
        else:
            usage = json.loads(body).get("usage") or {}
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    except (ValueError, AttributeError, TypeError):
        return 0, 0


# How many cache files' usage a process remembers. Each entry is ~400 bytes (path string,
# tuple, dict slot), so 100_000 entries bound the memo near 40 MB; a cache with more files
# than that is partly re-read from disk by each recount (one small file read per miss).
USAGE_MEMO_ENTRIES = 100_000


class UsageMemo:
    """file path -> (mtime_ns, prompt_tokens, completion_tokens), least recently used out
    past `max_entries`. Cache files are immutable once written, so a process parses each one
    once however many partitions it distills; thread-safe (partitions run on threads)."""

    def __init__(self, max_entries: int = USAGE_MEMO_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[int, int, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str) -> tuple[int, int, int] | None:
        with self._lock:
            memo = self._entries.get(path)
            if memo is not None:
                self._entries.move_to_end(path)
            return memo

    def put(self, path: str, memo: tuple[int, int, int]) -> None:
        with self._lock:
            self._entries[path] = memo
            self._entries.move_to_end(path)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


_USAGE_MEMO = UsageMemo()


def cached_spend(cache_dir: Path, prices: dict[str, tuple[float, float]], memo: UsageMemo | None = None) -> Spend:
    """Everything the cache under `cache_dir` holds was paid for: sum it up.

    `prices` maps model name to (input, output) USD per 1M tokens; models without a price
    add tokens but no dollars. `memo` remembers parsed files (the process's own by default).
    """
    memo_of = _USAGE_MEMO if memo is None else memo
    spend = Spend()
    by_slug = {model_slug(m): p for m, p in prices.items()}
    root = Path(cache_dir)
    if not root.is_dir():
        return spend
    for model_dir in os.scandir(root):
        if not model_dir.is_dir():
            continue
        price_in, price_out = by_slug.get(model_dir.name, (0.0, 0.0))
        for shard in os.scandir(model_dir.path):
            if not shard.is_dir() or shard.name.startswith("_"):
                continue
            for entry in os.scandir(shard.path):
                if not entry.name.endswith(".json") or entry.name.startswith(".tmp-"):
                    continue
                mtime = entry.stat().st_mtime_ns
                usage = memo_of.get(entry.path)
                if usage is None or usage[0] != mtime:
                    try:
                        p, c = usage_of(Path(entry.path).read_bytes())
                    except OSError:
                        continue
                    usage = (mtime, p, c)
                    memo_of.put(entry.path, usage)
                spend.prompt_tokens += usage[1]
                spend.completion_tokens += usage[2]
                spend.usd += (usage[1] * price_in + usage[2] * price_out) / 1e6
    return spend
