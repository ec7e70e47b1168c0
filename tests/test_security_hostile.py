"""Hostile and broken input: every item of the corpus built by tests/hostile.py ends in
exactly one place, with the specific reason it was expected to get, and the run completes.

The corpus covers zero-byte and truncated files of every modality, wrong extensions,
non-UTF-8 and mixed encodings, a 100 MB single-line file, a 12 MB JSONL line, a PNG
decompression bomb, a WAV whose header lies, a WAV of NaN samples, a video with no frames,
a git repository with symlinks to /etc/passwd and to its parent folder, names with
newlines and dots, names that are not UTF-8, FIFOs and sockets, and archives with absolute
and `..` member paths (no source reads archives: they must be refused, never extracted).
The tests after the corpus run take one hostile input each: a path over PATH_MAX, a folder
that cannot be listed, memory on a huge line, and one run of the CLI as users run it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from hostile import (
    ESCAPE_MARKER,
    PROSE,
    build_hostile_corpus,
    escaped,
    hostile_sources_yaml,
    make_deep_file,
    make_fifo,
    make_socket,
    nan_wav,
    non_utf8_jsonl,
    write_huge_line_jsonl,
    write_named,
)

from distillery import accounting
from distillery.config import load_config
from distillery.lake import Lake
from distillery.sql import query

REPO = Path(__file__).resolve().parents[1]

TAG = f"{os.getpid()}"


@pytest.fixture(scope="module")
def hostile_run(prefect_api, tmp_path_factory):
    from flows.pipeline import run_pipeline
    from teacher.reference.server import start_server

    root = tmp_path_factory.mktemp("hostile")
    corpus = root / "corpus"
    expected = build_hostile_corpus(corpus, tag=TAG)
    server = start_server(port=0)
    cfg_path = root / "c.yaml"
    cfg_path.write_text(f"""
lake: {root / "lake"}
base_dir: {corpus}
{hostile_sources_yaml(corpus)}
distill:
  base_url: {server.url}
  timeout_s: 10
  max_retries: 1
  tasks:
    - {{name: qa, template: qa_from_passage, selector: {{modalities: [text, code]}}, verify: none}}
run: {{partition_rows: 8, workers: 2, max_quarantine_share: 1.0}}
""")  # a corpus of hostile files on purpose: most of it is quarantined, and the run must go on
    cfg = load_config(cfg_path)
    try:
        result = run_pipeline(cfg, ["gather", "curate", "distill", "shard"])
    finally:
        server.stop()
    return cfg, expected, result


def _outcomes(lake: Lake) -> dict[str, list[str]]:
    """uri -> every gather outcome recorded for it."""
    out: dict[str, list[str]] = {}
    for sql, fmt in (
        ("select uri from documents", "document"),
        ("select uri, rule from rejects where stage = 'gather'", "reject:{}"),
        ("select uri, reason from quarantine where stage = 'gather'", "quarantine:{}"),
    ):
        for row in query(lake, sql)[1]:
            out.setdefault(row[0], []).append(fmt.format(*row[1:]))
    return out


def test_every_hostile_input_ends_where_expected(hostile_run):
    cfg, expected, _ = hostile_run
    outcomes = _outcomes(Lake(cfg.lake_root))
    wrong = []
    for h in expected:
        got = outcomes.get(h.uri, [])
        if len(got) != 1 or got[0] not in h.expect:
            wrong.append(f"{h.what}: {h.uri!r} -> {got or 'nowhere'}; expected one of {sorted(h.expect)}")
    assert wrong == [], "\n".join(wrong)


def test_the_run_completes_and_adds_up(hostile_run):
    cfg, _, result = hostile_run
    status = accounting.check(Lake(cfg.lake_root))
    assert status.ok, status.render()
    for stage in ("gather", "curate", "distill", "shard"):
        assert result[stage]["balanced"], result[stage]
    assert result["shard"]["rows_in"] > 0


def test_quarantine_summary_counts_each_reason(hostile_run):
    """The summary a user asks for: how many of each were seen, by reason."""
    cfg, expected, _ = hostile_run
    summary = dict(
        query(Lake(cfg.lake_root), "select reason, count(*) from quarantine where stage = 'gather' group by reason")[1]
    )
    for reason in (
        "zero_byte",
        "wrong_extension",
        "bad_encoding",
        "truncated",
        "decompression_bomb",
        "symlink_escape",
        "bad_json",
    ):
        assert summary.get(reason, 0) > 0, f"no {reason} in {summary}"
    # Each expected quarantine is counted under its reason: the counts are at least what the
    # corpus planted wherever only one reason was acceptable.
    planted = Counter(
        next(iter(h.expect)).split(":", 1)[1]
        for h in expected
        if len(h.expect) == 1 and next(iter(h.expect)).startswith("quarantine:")
    )
    for reason, n in planted.items():
        assert summary.get(reason, 0) >= n, (reason, summary)
    oversized = query(Lake(cfg.lake_root), "select count(*), max(value) from rejects where rule = 'oversized'")[1][0]
    assert oversized[0] >= 1 and oversized[1] >= 100 * 2**20


def test_nan_audio_is_gathered_then_rejected_by_curate_with_its_non_finite_share(hostile_run):
    cfg, _, _ = hostile_run
    rows = query(Lake(cfg.lake_root), "select stage, rule, value from rejects where uri like '%/audio/nan.wav'")[1]
    assert rows == [("curate", "audio_non_finite", 1.0)]
    assert query(Lake(cfg.lake_root), "select count(*) from curated where uri like '%/audio/nan.wav'")[1][0][0] == 0


def test_nothing_escaped_the_corpus(hostile_run):
    cfg, _, _ = hostile_run
    lake = Lake(cfg.lake_root)
    # Archives were not extracted: neither their absolute nor their `..` members exist anywhere.
    assert not Path(ESCAPE_MARKER.format(tag=TAG)).exists()
    dotdot = f"distillery-hostile-dotdot-{TAG}"
    corpus = Path(cfg.base_dir)
    for base in (corpus / "text", corpus, cfg.lake_root, cfg.lake_root / "media", Path.cwd(), Path("/tmp")):
        for where in (base / dotdot, base / ".." / ".." / dotdot, base / ".." / dotdot):
            assert not where.exists(), where
    # /etc/passwd's content is in no table and went to no teacher.
    marker = open("/etc/passwd").readline().strip().replace("'", "''")
    for view, column in (("documents", "text"), ("curated", "text"), ("traces", "messages")):
        n = query(lake, f"select count(*) from {view} where contains({column}, '{marker}')")[1][0][0]
        assert n == 0, f"/etc/passwd content in {view}.{column}"
    # Nothing outside the lake's media store was copied in: every media ref resolves inside it.
    for (ref,) in query(lake, "select media from documents where media is not null")[1]:
        assert (cfg.lake_root / ref).resolve().is_relative_to(cfg.lake_root / "media")


def test_non_utf8_jsonl_row_is_quarantined_not_a_crash(tmp_path):
    """A JSONL row whose string holds raw Latin-1 bytes is one bad row (bad_encoding), not a
    reason to stop the stage; the UTF-8 row beside it is kept."""
    import sources
    from sources.config import JsonlSource

    (tmp_path / "rows.jsonl").write_bytes(non_utf8_jsonl())
    src = JsonlSource(name="rows", paths=["rows.jsonl"])
    items = list(sources.discover(src, tmp_path))
    result = sources.read_items(src, items, tmp_path / "media")
    docs, quarantine = result.tables["documents"], result.tables.get("quarantine")
    assert docs.height == 1 and "ok row" in docs["text"][0]
    assert quarantine is not None and quarantine["reason"].to_list() == ["bad_encoding"]
    assert quarantine["uri"][0].endswith("#row1")


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


def test_audio_with_nan_or_inf_samples_is_rejected_by_curate_with_their_share(tmp_path):
    import hashlib
    import io

    import numpy as np
    import polars as pl
    import soundfile as sf

    from distillery.result import conform
    from distillery.tables import DOCUMENT
    from filters import CurateConfig, filter_partition

    def put(data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        (tmp_path / "media" / sha[:2]).mkdir(parents=True, exist_ok=True)
        (tmp_path / "media" / sha[:2] / sha).write_bytes(data)
        return f"media/{sha[:2]}/{sha}"

    def float_wav(samples: np.ndarray) -> bytes:
        buf = io.BytesIO()
        sf.write(buf, samples.astype(np.float32), 16_000, format="WAV", subtype="FLOAT")
        return buf.getvalue()

    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000)
    quarter_inf = tone.copy()
    quarter_inf[:4000] = np.inf
    wavs = [nan_wav(), float_wav(quarter_inf), float_wav(tone)]
    docs = pl.from_arrow(
        conform(
            pl.DataFrame(
                [
                    {
                        "id": f"id{i}",
                        "modality": "audio",
                        "source": "a",
                        "uri": f"u{i}",
                        "license": None,
                        "text": None,
                        "media": put(w),
                        "meta": None,
                        "parents": [],
                    }
                    for i, w in enumerate(wavs)
                ],
                schema_overrides={"parents": pl.List(pl.Utf8)},
            ),
            DOCUMENT,
        )
    )
    res = filter_partition(docs, CurateConfig(), tmp_path)
    rejects = res.tables["rejects"]
    assert sorted(zip(rejects["id"], rejects["rule"], rejects["value"])) == [
        ("id0", "audio_non_finite", 1.0),
        ("id1", "audio_non_finite", 0.25),
    ]
    assert res.tables["curated"]["id"].to_list() == ["id2"]


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


_READ_JSONL_MEASURED = """
import json, resource, sys
from pathlib import Path
import sources
from sources.config import JsonlSource
base = Path(sys.argv[1])
warm = JsonlSource(name="warm", paths=["warm.jsonl"])  # imports and first allocations, before the baseline
sources.read_items(warm, list(sources.discover(warm, base)), base / "media")
src = JsonlSource(name="rows", paths=["rows.jsonl"], max_row_bytes=2**20)
items = list(sources.discover(src, base))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = sources.read_items(src, items, base / "media")
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
rej = result.tables["rejects"]
print(json.dumps({"grown_kb": grown, "docs": sorted(result.tables["documents"]["uri"]),
                  "rejects": list(zip(rej["uri"], rej["rule"], rej["value"]))}))
"""


def test_huge_jsonl_line_is_rejected_oversized_and_memory_stays_below_the_line(tmp_path):
    """A 64 MB line over a 1 MiB max_row_bytes is rejected as oversized with its size, before
    parsing, and reading it grows peak RSS by a bound set by max_row_bytes, not by the line
    (under a quarter of it; the reader before this held the line whole, then copies of it:
    465 MB of growth measured for this file)."""
    line = 64 * 2**20
    write_huge_line_jsonl(tmp_path / "rows.jsonl", line)
    write_huge_line_jsonl(tmp_path / "warm.jsonl", 1000)
    out = subprocess.run(
        [sys.executable, "-c", _READ_JSONL_MEASURED, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.splitlines()[-1])
    uri = str(tmp_path / "rows.jsonl")
    assert r["docs"] == [f"{uri}#row{i}" for i in (0, 1, 3, 4)]
    assert r["rejects"] == [[f"{uri}#row2", "oversized", float(line)]]
    assert r["grown_kb"] * 1024 < line / 4, f"reading grew peak RSS by {r['grown_kb'] // 1024} MB for a 64 MB line"


def test_csv_and_parquet_values_over_max_row_bytes_are_rejected_oversized_and_the_rest_kept(tmp_path):
    import polars as pl

    import sources
    from sources.config import CsvSource, ParquetSource

    texts = ["short one", "x" * 5000, "short two"]
    pl.DataFrame({"text": texts}).write_csv(tmp_path / "rows.csv")
    pl.DataFrame({"text": texts}).write_parquet(tmp_path / "rows.parquet")
    for src in (
        CsvSource(name="c", paths=["rows.csv"], max_row_bytes=1000),
        ParquetSource(name="p", paths=["rows.parquet"], max_row_bytes=1000),
    ):
        result = sources.read_items(src, list(sources.discover(src, tmp_path)), tmp_path / "media")
        rej = result.tables["rejects"]
        uri = str(tmp_path / src.paths[0])
        assert list(zip(rej["uri"], rej["rule"], rej["value"])) == [(f"{uri}#row1", "oversized", 5000.0)], src.kind
        assert result.tables["documents"]["text"].to_list() == ["short one", "short two"], src.kind


def test_cli_run_quarantines_hostile_names_and_rows_exit_0(tmp_path):
    """The user's path: `distillery run` with no PREFECT_API_URL (Prefect's temporary server),
    from another folder, its own run folder; the run exits 0 and every hostile item is in
    the lake under its reason."""
    corpus = tmp_path / "corpus"
    bad = write_named(corpus / "text", b"r\xe9sum\xe9.txt", PROSE.encode())
    (corpus / "text" / "good.txt").write_text(PROSE)
    make_fifo(corpus / "text" / "pipe.txt")
    make_socket(corpus / "text" / "sock.txt")
    write_huge_line_jsonl(corpus / "rows" / "rows.jsonl", 11 * 2**20)
    (corpus / "audio").mkdir()
    (corpus / "audio" / "nan.wav").write_bytes(nan_wav())
    cfg = tmp_path / "cfg" / "c.yaml"
    cfg.parent.mkdir()
    cfg.write_text(
        textwrap.dedent(f"""
        lake: {tmp_path / "lake"}
        base_dir: {corpus}
        sources:
          - {{name: text, kind: files, paths: ["text/*"]}}
          - {{name: rows, kind: jsonl, paths: ["rows/*.jsonl"]}}
          - {{name: audio, kind: audio, paths: ["audio/*"]}}
    """)
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    env.update(DISTILLERY_RUN_DIR=str(tmp_path / "run"), PYTHONPATH=str(REPO))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "distillery.cli", "run", str(cfg), "--stages", "gather,curate"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lake = Lake(tmp_path / "lake")
    quarantined = dict(query(lake, "select uri, reason from quarantine where stage = 'gather'")[1])
    assert quarantined == {
        escaped(bad): "bad_filename",
        str(corpus / "text" / "pipe.txt"): "not_regular_file",
        str(corpus / "text" / "sock.txt"): "not_regular_file",
    }
    rejects = query(
        lake,
        "select stage, uri, rule, value from rejects "
        "where rule in ('audio_non_finite', 'oversized') order by stage, uri",
    )[1]
    assert rejects == [
        ("curate", str(corpus / "audio" / "nan.wav"), "audio_non_finite", 1.0),
        ("gather", f"{corpus / 'rows' / 'rows.jsonl'}#row2", "oversized", float(11 * 2**20)),
    ]
    assert accounting.check(lake).ok
