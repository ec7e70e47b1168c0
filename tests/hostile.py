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

Builders for single hostile inputs are public for the tests that need them alone:
`write_named` (a file under a raw bytes name), `make_fifo`, `make_socket`,
`make_deep_file` (a path over PATH_MAX), `nan_wav`, `write_huge_line_jsonl`.
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import subprocess
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Where the archives' absolute members would land if anything extracted them.
ESCAPE_MARKER = "/tmp/distillery-hostile-escape-{tag}"
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


def _png_bytes(w: int = 64, h: int = 48, seed: int = 0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg_bytes(seed: int = 1) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side: int = 30_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels (900 M pixels) that compresses to ~100 KB.

    The rows are streamed through one compressor, so building it never holds the pixels.
    """
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    parts = [comp.compress(row) for _ in range(side)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def _wav_bytes(seconds: float = 0.5, rate: int = 16_000) -> bytes:
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def lying_wav(claimed_seconds: float = 10.0, actual_seconds: float = 0.1, rate: int = 16_000) -> bytes:
    """A PCM WAV whose RIFF and data chunk sizes claim far more audio than the file holds."""
    real = _wav_bytes(actual_seconds, rate)
    data_at = real.index(b"data")
    claimed = int(claimed_seconds * rate) * 2
    return (
        b"RIFF"
        + struct.pack("<I", data_at + 8 + claimed - 8)
        + real[8:data_at]
        + b"data"
        + struct.pack("<I", claimed)
        + real[data_at + 8 :]
    )


def _flac_bytes(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    import soundfile as sf

    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    sf.write(buf, rng.uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32), rate, format="FLAC")
    return buf.getvalue()


def _mp4_bytes(frames: int) -> bytes:
    """An H.264/MP4 (or MPEG-4 part 2 when no H.264 encoder is built in) with `frames` frames."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        try:
            stream = out.add_stream("libx264", rate=8)
        except Exception:  # an FFmpeg build without x264
            stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()  # the header is written even when no frame follows
        rng = np.random.default_rng(4)
        for _ in range(frames):
            img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def _audio_only_mp4() -> bytes:
    """An MP4 whose only stream is audio: a "video" without a single video frame."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16_000)
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16_000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def nan_wav(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    """A 32-bit float WAV whose every sample is NaN (a valid file: IEEE floats may be NaN)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.full(int(seconds * rate), np.nan, dtype=np.float32), rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def write_named(folder: Path, name: bytes, data: bytes) -> str:
    """Write `data` to a file whose name is the raw bytes `name` (e.g. b"caf\\xe9.txt", not
    UTF-8); return the path as Python lists it (os.fsdecode: surrogateescape)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = os.path.join(os.fsencode(folder), name)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return os.fsdecode(path)


def escaped(path: str) -> str:
    """The lake's uri for a path that is not UTF-8: its bad bytes written as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def make_fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def make_socket(path: Path) -> Path:
    """A Unix socket file (mknod S_IFSOCK needs no privilege and no bound, listening socket)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, 0o600 | stat.S_IFSOCK)
    return path


def make_deep_file(root: Path, min_bytes: int = 5000, data: bytes = b"deep text\n") -> tuple[str, str]:
    """A file at a path of at least `min_bytes` bytes (beyond PATH_MAX, 4096 on Linux), made
    one folder at a time relative to the previous one's descriptor, since no call may name
    the whole path. Returns (the first folder whose absolute path reaches 4096 bytes, the file)."""
    root.mkdir(parents=True, exist_ok=True)
    name = "d" * 200
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    path, first_long = str(root), None
    try:
        while len(os.fsencode(path)) < min_bytes:
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd, path = nfd, os.path.join(path, name)
            if first_long is None and len(os.fsencode(path)) >= 4096:
                first_long = path
        f = os.open("deep.txt", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)
        os.write(f, data)
        os.close(f)
    finally:
        os.close(fd)
    return first_long, os.path.join(path, "deep.txt")


def write_huge_line_jsonl(path: Path, line_bytes: int, before: int = 2, after: int = 2) -> Path:
    """`before` good rows, one JSON row of about `line_bytes` bytes (written in 1 MiB pieces,
    never held whole), then `after` good rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for i in range(before):
            fh.write(json.dumps({"text": f"before {i}: " + PROSE}).encode() + b"\n")
        fh.write(b'{"text": "')
        left = line_bytes - len(b'{"text": ""}')
        block = b"word " * (2**20 // 5)
        while left > 0:
            fh.write(block[:left])
            left -= len(block[:left])
        fh.write(b'"}\n')
        for i in range(after):
            fh.write(json.dumps({"text": f"after {i}: " + PROSE}).encode() + b"\n")
    return path


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _archive_members(tag: str) -> list[tuple[str, bytes]]:
    escape = ESCAPE_MARKER.format(tag=tag)
    return [
        (escape, b"written by extracting an absolute member\n"),
        ("../../distillery-hostile-dotdot-" + tag, b"written by extracting a .. member\n"),
        ("fine/readme.txt", b"an ordinary member\n"),
    ]


def _tar_bytes(tag: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in _archive_members(tag):
            info = tarfile.TarInfo(name)  # tarfile keeps the leading "/" when told this way
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip_bytes(tag: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in _archive_members(tag):
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def non_utf8_jsonl() -> bytes:
    """Two JSONL rows: the first UTF-8, the second with raw Latin-1 bytes inside its string."""
    return b'{"text": "ok row ' + PROSE.encode() + b'"}\n{"text": "caf\xe9 cr\xe8me au lait"}\n'


PROSE = (
    "The river delta changes shape every season as sediment settles along the channel banks, "
    "and the people who live there have learned to read the water like a calendar. "
) * 4


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
    add("zero-byte text", _write(t / "empty.txt", b""), "quarantine:zero_byte")
    add("PNG named .txt", _write(t / "image.txt", _png_bytes()), "quarantine:wrong_extension")
    add(
        "ELF binary named .md",
        _write(t / "program.md", b"\x7fELF\x02\x01\x01" + bytes(200)),
        "quarantine:wrong_extension",
    )
    add(
        "Latin-1 prose",
        _write(t / "latin1.txt", ("Le café du marché était très animé ce matin-là. " * 8).encode("latin-1")),
        "document",
    )
    add(
        "UTF-16 with BOM",
        _write(t / "utf16.txt", ("Über die Brücke gehen wir jeden Tag. " * 8).encode("utf-16")),
        "document",
    )
    add(
        "undecodable bytes", _write(t / "noise.txt", bytes(range(128, 256)) * 40), "quarantine:bad_encoding", "document"
    )
    add(
        "mixed UTF-8 and Latin-1",
        _write(t / "mixed.txt", ("Grüße aus Köln. " * 10).encode() + ("Café crème. " * 10).encode("latin-1")),
        "document",
        "quarantine:bad_encoding",
    )
    add(
        "UTF-8 cut inside a character",
        _write(t / "cut_utf8.txt", ("naïve résumé " * 20).encode()[:-1]),
        "document",
        "quarantine:bad_encoding",
        "quarantine:truncated",
    )
    add(
        "HTML that is only a script",
        _write(t / "script.html", "<html><script>" + "var a=1;" * 50 + "</script></html>"),
        "document",
    )
    add("file name with a newline", _write(t / "new\nline.txt", PROSE), "document")
    add("file name with dots", _write(t / "..weird...name...txt", PROSE + " dots"), "document")
    add(
        "file name that is not UTF-8",
        escaped(write_named(t, b"caf\xe9.txt", PROSE.encode())),
        "quarantine:bad_filename",
    )
    add("FIFO named .txt", make_fifo(t / "pipe.txt"), "quarantine:not_regular_file")
    add("socket named .txt", make_socket(t / "sock.txt"), "quarantine:not_regular_file")
    add("symlink to /etc/passwd", _link(t / "passwd.txt", "/etc/passwd"), "quarantine:symlink_escape")
    add("tar with absolute and .. members", _write(t / "evil.tar", _tar_bytes(tag)), "quarantine:wrong_extension")
    add("zip with absolute and .. members", _write(t / "evil.zip", _zip_bytes(tag)), "quarantine:wrong_extension")
    if huge:
        with open(t / "huge.txt", "wb") as fh:  # one line of 100 MB: written in 1 MiB blocks
            block = b"a" * 2**20
            for _ in range(HUGE_BYTES // len(block)):
                fh.write(block)
        add("100 MB single-line file", t / "huge.txt", "reject:oversized")

    # --- jsonl ---------------------------------------------------------------------------
    j = root / "jsonl"
    add("zero-byte jsonl", _write(j / "empty.jsonl", b""), "quarantine:zero_byte")
    good = [json.dumps({"text": f"record {i}: " + PROSE}) for i in range(3)]
    cut = _write(j / "truncated.jsonl", "\n".join(good) + "\n" + good[0][: len(good[0]) // 2])
    for i in range(3):
        add(f"jsonl row {i} before the cut", f"{cut}#row{i}", "document")
    add("jsonl line cut in half", f"{cut}#row3", "quarantine:bad_json", "quarantine:truncated")
    # (A JSONL row with raw Latin-1 bytes is tested on its own, with `non_utf8_jsonl`: it
    # crashed the whole gather stage, which would hide every other outcome here.)
    add("PNG named .jsonl", _write(j / "image.jsonl", _png_bytes(seed=5)), "quarantine:wrong_extension")
    big = write_huge_line_jsonl(j / "bigline.jsonl", HUGE_LINE_BYTES)
    add("jsonl row before a 12 MB line", f"{big}#row1", "document")
    add("jsonl line of 12 MB", f"{big}#row2", "reject:oversized")
    add("jsonl row after a 12 MB line", f"{big}#row3", "document")

    # --- images --------------------------------------------------------------------------
    im = root / "images"
    png, jpg = _png_bytes(seed=7), _jpeg_bytes()
    add("zero-byte PNG", _write(im / "empty.png", b""), "quarantine:zero_byte")
    add("zero-byte JPEG", _write(im / "empty.jpg", b""), "quarantine:zero_byte")
    add("truncated PNG", _write(im / "cut.png", png[: len(png) // 2]), "quarantine:truncated")
    add("truncated JPEG", _write(im / "cut.jpg", jpg[: len(jpg) // 2]), "quarantine:truncated")
    add("PNG decompression bomb", _write(im / "bomb.png", png_bomb()), "quarantine:decompression_bomb")
    add("JPEG named .png", _write(im / "photo.png", jpg), "quarantine:wrong_extension")
    add("text named .jpg", _write(im / "notes.jpg", PROSE), "quarantine:unreadable", "quarantine:wrong_extension")
    add("a valid PNG", _write(im / "fine.png", png), "document")

    # --- audio ---------------------------------------------------------------------------
    au = root / "audio"
    flac = _flac_bytes()
    add("zero-byte WAV", _write(au / "empty.wav", b""), "quarantine:zero_byte")
    add("zero-byte FLAC", _write(au / "empty.flac", b""), "quarantine:zero_byte")
    add("WAV with a lying header", _write(au / "liar.wav", lying_wav()), "quarantine:truncated")
    add(
        "truncated FLAC",
        _write(au / "cut.flac", flac[: len(flac) // 3]),
        "quarantine:truncated",
        "quarantine:unreadable",
    )
    add("text named .wav", _write(au / "notes.wav", PROSE), "quarantine:unreadable", "quarantine:wrong_extension")
    add("a valid WAV", _write(au / "fine.wav", _wav_bytes()), "document")
    add("float WAV of NaN samples", _write(au / "nan.wav", nan_wav()), "document")  # curate rejects it

    # --- video ---------------------------------------------------------------------------
    v = root / "video"
    mp4 = _mp4_bytes(16)
    add("zero-byte MP4", _write(v / "empty.mp4", b""), "quarantine:zero_byte")
    add("truncated MP4", _write(v / "cut.mp4", mp4[: len(mp4) // 2]), "quarantine:truncated", "quarantine:unreadable")
    add(
        "MP4 with no frames",
        _write(v / "noframes.mp4", _mp4_bytes(0)),
        "quarantine:no_decodable_frames",
        "quarantine:no_video_stream",
        "quarantine:unreadable",
        "quarantine:truncated",
    )
    add(
        "MP4 with only an audio stream",
        _write(v / "audio_only.mp4", _audio_only_mp4()),
        "quarantine:no_video_stream",
        "quarantine:no_decodable_frames",
    )
    add("PNG named .mp4", _write(v / "image.mp4", _png_bytes(seed=9)), "quarantine:wrong_extension")
    add("a valid MP4", _write(v / "fine.mp4", mp4), "document")

    # --- a git repository ----------------------------------------------------------------
    r = root / "repo"
    _write(r / "pkg" / "core.py", 'def square(x):\n    """Return x squared."""\n    return x * x\n')
    _write(r / "pkg" / "odd\nname.py", "def cube(x):\n    return x * x * x\n")
    _write(r / "pkg" / "latin1.py", "# caf\xe9\nNAME = 'cr\xe8me'\n".encode("latin-1"))
    _link(r / "passwd", "/etc/passwd")
    _link(r / "up", "..")
    _link(r / "pkg" / "escape.py", "../../text/latin1.txt")  # a `..` path that leaves the repository
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


def _link(path: Path, target: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    return path


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
