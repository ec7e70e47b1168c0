"""A hostile corpus, built on demand: the broken and malicious inputs real crawls contain.

`build_hostile_corpus(root)` writes the corpus under `root` and returns one `Hostile`
entry per input, each saying where the input must end (a document, a reject with a rule,
or a quarantine row with a reason code). `hostile_config(...)` is a pipeline YAML whose
sources read every folder of it. Nothing here needs the network or a shipped binary:
media are synthesised with numpy, Pillow, soundfile and PyAV, the repository with git.

Layout (relative to `root`):
    text/     files source: empty, wrong extensions, encodings, a 100 MB line, odd names,
              a name that is not UTF-8, a FIFO, a socket, a symlink to /etc/passwd, tar and
              zip archives with absolute and `..` members
    jsonl/    jsonl source: empty, truncated, a PNG in disguise, a 12 MB line between good rows
    images/   images source: empty, truncated PNG/JPEG, a decompression bomb, wrong extension
    audio/    audio source: empty WAV, a WAV whose header lies, truncated FLAC, text as WAV,
              a float WAV whose samples are all NaN (gathered; curate rejects it)
    video/    video source: empty, truncated, a container with no frames
    repo/     repo source (a git repository): symlinks to /etc/passwd and to its parent folder,
              a file name with a newline, a name that is not UTF-8, non-UTF-8 code, and
              (after the commit, read in place) a FIFO and a socket

The builders of single hostile inputs live by kind, for the tests that need them alone:
tests/hostile_files.py (names, FIFOs, sockets, symlinks, deep paths, archives, long and
non-UTF-8 JSONL lines) and tests/hostile_media.py (broken images, audio and video).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hostile_files import (
    PROSE,
    escaped,
    make_fifo,
    make_link,
    make_socket,
    tar_bytes,
    write_file,
    write_huge_line_jsonl,
    write_named,
    zip_bytes,
)
from hostile_media import (
    audio_only_mp4,
    flac_bytes,
    jpeg_bytes,
    lying_wav,
    mp4_bytes,
    nan_wav,
    png_bomb,
    png_bytes,
    wav_bytes,
)

HUGE_BYTES = 100 * 2**20  # the 100 MB single-line file
HUGE_LINE_BYTES = 12 * 2**20  # one JSONL line just over the default max_row_bytes (10 MiB)


@dataclass(frozen=True)
class Hostile:
    """One hostile input and where it must end.

    `uri` is the lake's uri for it (globbed sources: the absolute path; repo files:
    `<repo>@HEAD#<rel>`; jsonl rows: `<path>#row<n>`). `expect` is the set of acceptable
    outcomes, each "document", "reject:<rule>" or "quarantine:<reason>".
    """

    what: str
    uri: str
    expect: frozenset[str]


def _ok(*outcomes: str) -> frozenset[str]:
    return frozenset(outcomes)


def build_hostile_corpus(root: Path, tag: str = "x", huge: bool = True) -> list[Hostile]:
    """Write the hostile corpus under `root`; return what each input must become.

    `tag` makes the archives' escape targets unique per test; `huge` writes the 100 MB
    single-line file (about a second on a plain disk).
    """
    root = Path(root)
    out: list[Hostile] = []

    def add(what: str, path: Path | str, *expect: str) -> None:
        out.append(Hostile(what, str(path), _ok(*expect)))

    # --- text (files source) -------------------------------------------------------------
    t = root / "text"
    add("zero-byte text", write_file(t / "empty.txt", b""), "quarantine:zero_byte")
    add("PNG named .txt", write_file(t / "image.txt", png_bytes()), "quarantine:wrong_extension")
    add(
        "ELF binary named .md",
        write_file(t / "program.md", b"\x7fELF\x02\x01\x01" + bytes(200)),
        "quarantine:wrong_extension",
    )
    add(
        "Latin-1 prose",
        write_file(t / "latin1.txt", ("Le café du marché était très animé ce matin-là. " * 8).encode("latin-1")),
        "document",
    )
    add(
        "UTF-16 with BOM",
        write_file(t / "utf16.txt", ("Über die Brücke gehen wir jeden Tag. " * 8).encode("utf-16")),
        "document",
    )
    add(
        "undecodable bytes",
        write_file(t / "noise.txt", bytes(range(128, 256)) * 40),
        "quarantine:bad_encoding",
        "document",
    )
    add(
        "mixed UTF-8 and Latin-1",
        write_file(t / "mixed.txt", ("Grüße aus Köln. " * 10).encode() + ("Café crème. " * 10).encode("latin-1")),
        "document",
        "quarantine:bad_encoding",
    )
    add(
        "UTF-8 cut inside a character",
        write_file(t / "cut_utf8.txt", ("naïve résumé " * 20).encode()[:-1]),
        "document",
        "quarantine:bad_encoding",
        "quarantine:truncated",
    )
    add(
        "HTML that is only a script",
        write_file(t / "script.html", "<html><script>" + "var a=1;" * 50 + "</script></html>"),
        "document",
    )
    add("file name with a newline", write_file(t / "new\nline.txt", PROSE), "document")
    add("file name with dots", write_file(t / "..weird...name...txt", PROSE + " dots"), "document")
    add(
        "file name that is not UTF-8",
        escaped(write_named(t, b"caf\xe9.txt", PROSE.encode())),
        "quarantine:bad_filename",
    )
    add("FIFO named .txt", make_fifo(t / "pipe.txt"), "quarantine:not_regular_file")
    add("socket named .txt", make_socket(t / "sock.txt"), "quarantine:not_regular_file")
    add("symlink to /etc/passwd", make_link(t / "passwd.txt", "/etc/passwd"), "quarantine:symlink_escape")
    add("tar with absolute and .. members", write_file(t / "evil.tar", tar_bytes(tag)), "quarantine:wrong_extension")
    add("zip with absolute and .. members", write_file(t / "evil.zip", zip_bytes(tag)), "quarantine:wrong_extension")
    if huge:
        with open(t / "huge.txt", "wb") as fh:  # one line of 100 MB: written in 1 MiB blocks
            block = b"a" * 2**20
            for _ in range(HUGE_BYTES // len(block)):
                fh.write(block)
        add("100 MB single-line file", t / "huge.txt", "reject:oversized")

    # --- jsonl ---------------------------------------------------------------------------
    j = root / "jsonl"
    add("zero-byte jsonl", write_file(j / "empty.jsonl", b""), "quarantine:zero_byte")
    good = [json.dumps({"text": f"record {i}: " + PROSE}) for i in range(3)]
    cut = write_file(j / "truncated.jsonl", "\n".join(good) + "\n" + good[0][: len(good[0]) // 2])
    for i in range(3):
        add(f"jsonl row {i} before the cut", f"{cut}#row{i}", "document")
    add("jsonl line cut in half", f"{cut}#row3", "quarantine:bad_json", "quarantine:truncated")
    # (A JSONL row with raw Latin-1 bytes is tested on its own, with `non_utf8_jsonl`: it
    # crashed the whole gather stage, which would hide every other outcome here.)
    add("PNG named .jsonl", write_file(j / "image.jsonl", png_bytes(seed=5)), "quarantine:wrong_extension")
    big = write_huge_line_jsonl(j / "bigline.jsonl", HUGE_LINE_BYTES)
    add("jsonl row before a 12 MB line", f"{big}#row1", "document")
    add("jsonl line of 12 MB", f"{big}#row2", "reject:oversized")
    add("jsonl row after a 12 MB line", f"{big}#row3", "document")

    # --- images --------------------------------------------------------------------------
    im = root / "images"
    png, jpg = png_bytes(seed=7), jpeg_bytes()
    add("zero-byte PNG", write_file(im / "empty.png", b""), "quarantine:zero_byte")
    add("zero-byte JPEG", write_file(im / "empty.jpg", b""), "quarantine:zero_byte")
    add("truncated PNG", write_file(im / "cut.png", png[: len(png) // 2]), "quarantine:truncated")
    add("truncated JPEG", write_file(im / "cut.jpg", jpg[: len(jpg) // 2]), "quarantine:truncated")
    add("PNG decompression bomb", write_file(im / "bomb.png", png_bomb()), "quarantine:decompression_bomb")
    add("JPEG named .png", write_file(im / "photo.png", jpg), "quarantine:wrong_extension")
    add("text named .jpg", write_file(im / "notes.jpg", PROSE), "quarantine:unreadable", "quarantine:wrong_extension")
    add("a valid PNG", write_file(im / "fine.png", png), "document")

    # --- audio ---------------------------------------------------------------------------
    au = root / "audio"
    flac = flac_bytes()
    add("zero-byte WAV", write_file(au / "empty.wav", b""), "quarantine:zero_byte")
    add("zero-byte FLAC", write_file(au / "empty.flac", b""), "quarantine:zero_byte")
    add("WAV with a lying header", write_file(au / "liar.wav", lying_wav()), "quarantine:truncated")
    add(
        "truncated FLAC",
        write_file(au / "cut.flac", flac[: len(flac) // 3]),
        "quarantine:truncated",
        "quarantine:unreadable",
    )
    add("text named .wav", write_file(au / "notes.wav", PROSE), "quarantine:unreadable", "quarantine:wrong_extension")
    add("a valid WAV", write_file(au / "fine.wav", wav_bytes()), "document")
    add("float WAV of NaN samples", write_file(au / "nan.wav", nan_wav()), "document")  # curate rejects it

    # --- video ---------------------------------------------------------------------------
    v = root / "video"
    mp4 = mp4_bytes(16)
    add("zero-byte MP4", write_file(v / "empty.mp4", b""), "quarantine:zero_byte")
    add(
        "truncated MP4",
        write_file(v / "cut.mp4", mp4[: len(mp4) // 2]),
        "quarantine:truncated",
        "quarantine:unreadable",
    )
    add(
        "MP4 with no frames",
        write_file(v / "noframes.mp4", mp4_bytes(0)),
        "quarantine:no_decodable_frames",
        "quarantine:no_video_stream",
        "quarantine:unreadable",
        "quarantine:truncated",
    )
    add(
        "MP4 with only an audio stream",
        write_file(v / "audio_only.mp4", audio_only_mp4()),
        "quarantine:no_video_stream",
        "quarantine:no_decodable_frames",
    )
    add("PNG named .mp4", write_file(v / "image.mp4", png_bytes(seed=9)), "quarantine:wrong_extension")
    add("a valid MP4", write_file(v / "fine.mp4", mp4), "document")

    # --- a git repository ----------------------------------------------------------------
    r = root / "repo"
    write_file(r / "pkg" / "core.py", 'def square(x):\n    """Return x squared."""\n    return x * x\n')
    write_file(r / "pkg" / "odd\nname.py", "def cube(x):\n    return x * x * x\n")
    write_file(r / "pkg" / "latin1.py", "# caf\xe9\nNAME = 'cr\xe8me'\n".encode("latin-1"))
    make_link(r / "passwd", "/etc/passwd")
    make_link(r / "up", "..")
    make_link(r / "pkg" / "escape.py", "../../text/latin1.txt")  # a `..` path that leaves the repository
    bad_name = write_named(r / "pkg", b"caf\xe9.py", b"VALUE = 1\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "init.defaultBranch=main"]
    subprocess.run(git + ["init", "-q"], cwd=r, check=True)
    subprocess.run(git + ["add", "-A"], cwd=r, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "hostile"], cwd=r, check=True)
    make_fifo(r / "pkg" / "pipe.py")  # git cannot hold these: they exist in the working tree only
    make_socket(r / "pkg" / "sock.py")
    repo = f"{r}@HEAD"
    add(
        "repo file name that is not UTF-8", f"{repo}#{escaped(os.path.relpath(bad_name, r))}", "quarantine:bad_filename"
    )
    add("repo FIFO", f"{repo}#pkg/pipe.py", "quarantine:not_regular_file")
    add("repo socket", f"{repo}#pkg/sock.py", "quarantine:not_regular_file")
    add("code file", f"{repo}#pkg/core.py", "document")
    add("code file name with a newline", f"{repo}#pkg/odd\nname.py", "document")
    add("Latin-1 code", f"{repo}#pkg/latin1.py", "document", "quarantine:bad_encoding")
    add("repo symlink to /etc/passwd", f"{repo}#passwd", "quarantine:symlink_escape")
    add("repo symlink to its parent folder", f"{repo}#up", "quarantine:symlink_escape")
    add("repo symlink out through ..", f"{repo}#pkg/escape.py", "quarantine:symlink_escape")
    return out


def hostile_sources_yaml(root: Path) -> str:
    """The `sources:` block reading every folder of the corpus at `root`."""
    return f"""
sources:
  - {{name: text, kind: files, paths: ["text/*"]}}
  - {{name: rows, kind: jsonl, paths: ["jsonl/*"], text_field: text}}
  - {{name: images, kind: images, paths: ["images/*"]}}
  - {{name: audio, kind: audio, paths: ["audio/*"]}}
  - {{name: video, kind: video, paths: ["video/*"], frame_rate: 4.0, max_frames: 8}}
  - {{name: repo, kind: repo, url_or_path: {json.dumps(str(root / "repo"))}}}
"""
