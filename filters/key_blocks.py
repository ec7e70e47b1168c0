"""Armored private-key blocks, complete or truncated, found and replaced in one text.

Contract: `redact(text)` replaces every block that starts with a private-key BEGIN line (RSA,
EC, DSA, OpenSSH, PKCS#8 plain and encrypted, PGP, SSH2 encrypted: every marker of
detect-secrets' PrivateKeyDetector, and any other "BEGIN ... PRIVATE KEY") or a PuTTY key
header, and returns (text, number of blocks). A block ends at its END line; when there is
none (a truncated file), at the end of the block-shaped run of lines after the BEGIN: base64
body, `Name: value` headers, one blank line before more body, each possibly inside a comment
(`# `, `// `, ...) or a string literal; a block flattened into one line ("...-----\\nMIIE...")
ends where the escaped-newline and base64 characters end.
"""

from __future__ import annotations

import re

_BEGIN = re.compile(r"-{4,5} ?BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)? ?-{4,5}|PuTTY-User-Key-File-\d+:")
_END = re.compile(r"-{4,5} ?END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)? ?-{4,5}")
# What follows a BEGIN marker on its own line when the block was flattened into one string
# (JSON "...-----\nMIIE...\n"): escaped newlines, base64 and header characters.
_REST_OF_BEGIN_LINE = re.compile(r"(?:\\[nr]|[A-Za-z0-9+/=:,. -])*")
# A key's lines may sit in a comment (`# `, `// `, `; `, `-- `, ` * `, `> `) or a string literal.
_LINE_PREFIX = r"^[\s\"'`]*(?:(?:#+|//|;+|--|\*|>)[ \t]*)?[\"'`]?"
_BODY_LINE = re.compile(_LINE_PREFIX + r"[A-Za-z0-9+/]+={0,2}(?:\\n)?[\s\"'`,+\\]*$")
_HEADER_LINE = re.compile(_LINE_PREFIX + r"[A-Za-z][A-Za-z0-9-]*: .*$")
_BLANK_LINE = re.compile(_LINE_PREFIX + r"\s*$")
_PUTTY_BODY = re.compile(r"^[\s\"'`]*(?:Private-MAC|Private-Hash): ")


def redact(text: str, placeholder: str = "<PRIVATE_KEY>") -> tuple[str, int]:
    """Replace every armored private-key block, complete or truncated, by `placeholder`."""
    out, pos, n = [], 0, 0
    while (m := _BEGIN.search(text, pos)) is not None:
        end_m = _END.search(text, m.end())
        if end_m is not None:
            stop = end_m.end()
        else:
            stop = _block_run_end(text, m)
        out += [text[pos : m.start()], placeholder]
        n += 1
        pos = stop
    out.append(text[pos:])
    return "".join(out), n


def _block_run_end(text: str, begin: re.Match) -> int:
    """End offset of a block with no END line: the rest of the BEGIN line when it is block
    material, then every following line that is base64 body, a `Name: value` header, or a blank
    line followed by body (PGP armor puts one between headers and body)."""
    stop = _REST_OF_BEGIN_LINE.match(text, begin.end()).end()
    nl = text.find("\n", stop)
    if nl < 0 or text[stop:nl].strip():  # the text ends, or more text on the BEGIN line ends the block
        return stop
    pos = nl + 1
    while pos < len(text):
        nl = text.find("\n", pos)
        line = text[pos:] if nl < 0 else text[pos:nl]
        ok = bool(_BODY_LINE.match(line) or _HEADER_LINE.match(line) or _PUTTY_BODY.match(line))
        if not ok and _BLANK_LINE.match(line) and nl >= 0:
            nxt_end = text.find("\n", nl + 1)
            nxt = text[nl + 1 :] if nxt_end < 0 else text[nl + 1 : nxt_end]
            ok = bool(_BODY_LINE.match(nxt))
        if not ok:
            return stop
        stop = len(text) if nl < 0 else nl
        pos = len(text) if nl < 0 else nl + 1
    return stop
