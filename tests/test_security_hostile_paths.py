"""Hostile paths, one input each: a file name that is not UTF-8 (in a folder and in a
repository), a path over PATH_MAX, FIFOs, sockets and device nodes, and a folder that
cannot be listed are each quarantined with their reason, never opened or skipped, and the
files beside them are read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_files import PROSE, escaped, make_deep_file, make_fifo, make_socket, write_named

REPO = Path(__file__).resolve().parents[1]


def _read(src, base: Path, media: Path):
    """discover + read_items, and the tables written to Parquet (where a non-UTF-8 name crashed)."""
    import sources

    result = sources.read_items(src, list(sources.discover(src, base)), media)
    for name, table in result.tables.items():
        table.write_parquet(media.parent / f"{src.name}-{name}.parquet")
    return result


def _outcome_rows(result) -> dict[str, str]:
    out = {u: "document" for u in result.tables["documents"]["uri"]}
    out |= {u: f"reject:{r}" for u, r in zip(result.tables["rejects"]["uri"], result.tables["rejects"]["rule"])}
    out |= {
        u: f"quarantine:{r}" for u, r in zip(result.tables["quarantine"]["uri"], result.tables["quarantine"]["reason"])
    }
    assert len(out) == result.rows_in
    return out


def test_non_utf8_file_name_is_quarantined_alone_and_the_other_files_read(tmp_path):
    from sources.config import FilesSource

    bad = write_named(tmp_path / "text", b"caf\xe9.txt", PROSE.encode())
    (tmp_path / "text" / "good.txt").write_text(PROSE)
    out = _outcome_rows(_read(FilesSource(name="t", paths=["text/*"]), tmp_path, tmp_path / "media"))
    assert out == {escaped(bad): "quarantine:bad_filename", str(tmp_path / "text" / "good.txt"): "document"}
    assert escaped(bad).endswith("caf\\xe9.txt")


@pytest.mark.parametrize("layout", ["git", "plain"])
def test_non_utf8_file_name_in_a_repo_is_quarantined_and_the_good_files_kept(tmp_path, layout):
    from sources.config import RepoSource

    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "good.py").write_text("def f():\n    return 1\n")
    write_named(repo / "pkg", b"caf\xe9.py", b"VALUE = 1\n")
    if layout == "git":
        git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
        subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
        subprocess.run(git + ["add", "-A"], cwd=repo, check=True)
        subprocess.run(git + ["commit", "-q", "-m", "x"], cwd=repo, check=True)
    out = _outcome_rows(_read(RepoSource(name="r", url_or_path="repo"), tmp_path, tmp_path / "media"))
    assert out == {
        "repo@HEAD#pkg/caf\\xe9.py": "quarantine:bad_filename",
        "repo@HEAD#pkg/good.py": "document",
        "repo@HEAD": "document",
    }


def test_path_longer_than_path_max_is_quarantined_and_the_rest_read(tmp_path):
    from sources.config import FilesSource, RepoSource

    first_long, _ = make_deep_file(tmp_path / "corpus" / "deep")
    lines = PROSE.replace(", ", ",\n").replace(". ", ".\n")  # short lines: prose, not "minified" code
    (tmp_path / "corpus" / "a.txt").write_text(lines)
    (tmp_path / "corpus" / "z.txt").write_text(lines + "z\n")
    out = _outcome_rows(_read(FilesSource(name="t", paths=["**/*.txt"]), tmp_path / "corpus", tmp_path / "media"))
    assert out == {
        str(tmp_path / "corpus" / "a.txt"): "document",
        first_long: "quarantine:path_too_long",
        str(tmp_path / "corpus" / "z.txt"): "document",
    }
    # The same folder read as a plain-folder repository: the folder it cannot list is quarantined.
    out = _outcome_rows(_read(RepoSource(name="r", url_or_path="corpus", repo_record=False), tmp_path, tmp_path / "m2"))
    rel = os.path.relpath(first_long, tmp_path / "corpus")
    assert out == {
        "corpus@HEAD#a.txt": "document",
        f"corpus@HEAD#{rel}": "quarantine:path_too_long",
        "corpus@HEAD#z.txt": "document",
    }


@pytest.mark.timeout(120)  # opening a FIFO would block forever: fail instead of hanging
def test_fifo_socket_and_device_are_quarantined_never_opened(tmp_path):
    from sources.config import FilesSource, RepoSource

    t = tmp_path / "text"
    make_fifo(t / "pipe.txt")
    make_socket(t / "sock.txt")
    (t / "good.txt").parent.mkdir(exist_ok=True)
    (t / "good.txt").write_text(PROSE)
    expect = {
        str(t / "pipe.txt"): "quarantine:not_regular_file",
        str(t / "sock.txt"): "quarantine:not_regular_file",
        str(t / "good.txt"): "document",
    }
    try:  # a device node needs CAP_MKNOD (root in most containers); checked where it can be made
        os.mknod(t / "null.txt", 0o600 | 0o020000, os.makedev(1, 3))
        expect[str(t / "null.txt")] = "quarantine:not_regular_file"
    except PermissionError:
        pass
    out = _outcome_rows(_read(FilesSource(name="t", paths=["text/*.txt"]), tmp_path, tmp_path / "media"))
    assert out == expect
    for layout in ("plain", "git"):
        repo = tmp_path / layout
        (repo / "src").mkdir(parents=True)
        (repo / "src" / "good.py").write_text("def f():\n    return 1\n")
        if layout == "git":  # git cannot hold a FIFO: it exists in the working tree only
            git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
            subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
            subprocess.run(git + ["add", "-A"], cwd=repo, check=True)
            subprocess.run(git + ["commit", "-q", "-m", "x"], cwd=repo, check=True)
        make_fifo(repo / "src" / "pipe.py")
        make_socket(repo / "src" / "sock.py")
        out = _outcome_rows(
            _read(
                RepoSource(name=layout, url_or_path=layout, repo_record=False), tmp_path, tmp_path / f"media-{layout}"
            )
        )
        assert out == {
            f"{layout}@HEAD#src/good.py": "document",
            f"{layout}@HEAD#src/pipe.py": "quarantine:not_regular_file",
            f"{layout}@HEAD#src/sock.py": "quarantine:not_regular_file",
        }, layout


_LIST_AS_UNPRIVILEGED = """
import json, sys
from pathlib import Path
import sources
from sources.config import FilesSource, RepoSource
corpus = Path(sys.argv[1])
for src in (FilesSource(name="t", paths=["**/*.txt"]), RepoSource(name="r", url_or_path=".", repo_record=False),
            RepoSource(name="g", url_or_path="../git", repo_record=False)):
    result = sources.read_items(src, list(sources.discover(src, corpus)), Path(sys.argv[2]))
    print(json.dumps(sorted(zip(result.tables["quarantine"]["uri"], result.tables["quarantine"]["reason"]))
                     + sorted(result.tables["documents"]["uri"]) + sorted(result.tables["rejects"]["uri"])))
"""


def test_unreadable_directory_is_quarantined_not_skipped(tmp_path):
    """chmod 000 stops nobody running as root (CAP_DAC_OVERRIDE), so as root the reader runs
    under setpriv with the DAC capabilities removed from its bounding set: root then obeys
    permission bits like any user, and the folder really cannot be listed."""
    corpus = tmp_path / "corpus"
    (corpus / "locked").mkdir(parents=True)
    (corpus / "locked" / "secret.txt").write_text(PROSE)
    (corpus / "open.txt").write_text(PROSE)
    repo = tmp_path / "git"  # a git working tree read in place, its unlistable folder untracked
    (repo / "locked").mkdir(parents=True)
    (repo / "open.txt").write_text("a = 1\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["add", "-A"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "x"], cwd=repo, check=True)
    (repo / "locked" / "secret.txt").write_text("b = 2\n")
    (corpus / "locked").chmod(0)
    (repo / "locked").chmod(0)
    cmd = [sys.executable, "-c", _LIST_AS_UNPRIVILEGED, str(corpus), str(tmp_path / "media")]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: no way to make a folder unreadable to root")
        cmd = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"] + cmd
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=tmp_path, timeout=300
        )
    finally:
        (corpus / "locked").chmod(0o755)
        (repo / "locked").chmod(0o755)
    assert out.returncode == 0, out.stderr[-3000:]
    files, plain, in_git = (json.loads(line) for line in out.stdout.splitlines()[-3:])
    assert files == [[str(corpus / "locked"), "unreadable_directory"], str(corpus / "open.txt")]
    # The same folder as a plain-folder repository (code rules may reject the prose file).
    assert plain == [[".@HEAD#locked", "unreadable_directory"], ".@HEAD#open.txt"]
    assert in_git == [["../git@HEAD#locked", "unreadable_directory"], "../git@HEAD#open.txt"]
