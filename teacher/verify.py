"""Verifiers: decide per trace whether the teacher's answer is right. Untrusted work runs in
subprocesses under a time limit.

  math   final number vs. the reference (teacher.mathcheck), one subprocess per partition
  code   the answer's last fenced code block + the row's meta.tests, run by `python -I` in a
         temporary directory, one subprocess per trace with `timeout_s`; exit 0 is a pass
  judge  a judge model's PASS/FAIL (the requests are made by distill.py; `judge_verdict`
         reads the reply)
  none   every trace is "unverified"
A verifier that cannot decide (no reference, no tests, timed out as a whole) says
"unverified" with the reason in the detail.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
from pathlib import Path

_CODE_BLOCK = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_MATHCHECK = str(Path(__file__).resolve().parent / "mathcheck.py")  # stdlib only
Verdict = tuple[str, str]  # (pass | fail | unverified, detail)


async def _run(args: list[str], stdin: bytes | None, timeout_s: float, cwd: str | None = None):
    """(returncode or None on timeout, stdout, stderr) of a subprocess, killed at the limit."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": _PACKAGE_ROOT, "PYTHONHASHSEED": "0"}
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout_s)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return None, b"", b""
    return proc.returncode, out, err


async def verify_math(pairs: list[tuple[str, str | None]], timeout_s: float) -> list[Verdict]:
    """Check (answer, reference) pairs in one subprocess; allow timeout_s per 1000 pairs."""
    if not pairs:
        return []
    limit = timeout_s * max(1.0, len(pairs) / 1000)
    # run the file, not the module: importing the teacher package would cost seconds
    args = [sys.executable, "-I", "-B", _MATHCHECK]
    code, out, err = await _run(args, json.dumps(pairs).encode(), limit)
    if code is None:
        return [("unverified", f"math verifier timed out after {limit:.1f}s")] * len(pairs)
    if code != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        return [("unverified", f"math verifier failed: {tail[0][:200]}")] * len(pairs)
    return [tuple(v) for v in json.loads(out)]


def code_of(answer: str) -> str | None:
    """The last fenced code block of the answer (preferring python-tagged ones)."""
    blocks = _CODE_BLOCK.findall(answer or "")
    python = [body for tag, body in blocks if tag.lower() in ("python", "py", "python3")]
    chosen = python or [body for _, body in blocks]
    return chosen[-1] if chosen else None


async def _verify_one_code(answer: str, tests: str | None, timeout_s: float, slots) -> Verdict:
    if not tests:
        return "unverified", "the row has no meta.tests to run"
    code = code_of(answer)
    if code is None:
        return "fail", "the answer has no fenced code block"
    async with slots:
        with tempfile.TemporaryDirectory(prefix="distill-verify-") as tmp:
            Path(tmp, "candidate.py").write_text(code + "\n\n" + tests + "\n")
            rc, _, err = await _run([sys.executable, "-I", "-B", "candidate.py"], None, timeout_s, cwd=tmp)
    if rc is None:
        return "fail", f"tests did not finish within {timeout_s}s"
    if rc == 0:
        return "pass", "tests passed"
    tail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit code {rc}"]
    return "fail", f"tests failed: {tail[0][:300]}"


async def verify_code(pairs: list[tuple[str, str | None]], timeout_s: float) -> list[Verdict]:
    """Run each (answer, tests) pair in its own subprocess, as many at once as there are CPUs."""
    slots = asyncio.Semaphore(os.cpu_count() or 1)
    return list(await asyncio.gather(*(_verify_one_code(a, t, timeout_s, slots) for a, t in pairs)))


def judge_verdict(reply: str | None) -> Verdict:
    """Read a judge's reply: the last PASS or FAIL it says wins."""
    words = re.findall(r"\b(PASS|FAIL)\b", reply or "")
    if not words:
        return "unverified", "the judge said neither PASS nor FAIL"
    return ("pass" if words[-1] == "PASS" else "fail"), "judge: " + words[-1]
