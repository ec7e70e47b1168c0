"""The teacher cache's write path: teacher.cache.write_atomic (through distillery.atomic) vs
the hand-written version it replaced (frozen below as the reference).

    python bench/cache_write.py [--writes 3000] [--rounds 11] [--dir /dev/shm]   (~10 s)

Each round writes `writes` 2 KB bodies into 256 sub-folders (the cache's layout) with each
implementation, alternating which goes first; the figure is the best round of each (the
least disturbed by other load) and their ratio. Use a tmpfs folder to see the CPU cost of
the code rather than the disk's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the repo's packages first

from teacher.cache import write_atomic  # noqa: E402

_MADE: set[Path] = set()


def reference_write_atomic(path: Path, data: bytes) -> None:
    """teacher/cache.py's write_atomic before distillery.atomic (commit e3847c1)."""
    if path.parent not in _MADE:
        path.parent.mkdir(parents=True, exist_ok=True)
        _MADE.add(path.parent)
    tmp = f"{path.parent}/.tmp-{path.name}.{os.getpid()}.{threading.get_ident()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, flags, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--dir", default=None, help="where to write (default: the system temp folder)")
    args = ap.parse_args()
    body = b'{"choices": "' + b"y" * 2000 + b'"}'
    root = Path(tempfile.mkdtemp(prefix="bench-cache-write-", dir=args.dir))
    impls = {"reference": reference_write_atomic, "current": write_atomic}
    best = dict.fromkeys(impls, float("inf"))
    try:
        for rnd in range(args.rounds):
            order = list(impls) if rnd % 2 == 0 else list(reversed(impls))
            for name in order:
                paths = [root / f"{name}{rnd}" / f"{i % 256:02x}" / f"{i:08d}.json" for i in range(args.writes)]
                write = impls[name]
                t = time.perf_counter()
                for p in paths:
                    write(p, body)
                best[name] = min(best[name], (time.perf_counter() - t) / args.writes * 1e6)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"per write: current {best['current']:.1f} us, reference {best['reference']:.1f} us, "
        f"current/reference {best['current'] / best['reference']:.3f} (best of {args.rounds} rounds x {args.writes})"
    )


if __name__ == "__main__":
    main()
