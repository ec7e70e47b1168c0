"""Hostile and broken input: every item of the corpus built by tests/hostile.py ends in
exactly one place, with the specific reason it was expected to get, and the run completes;
and one run of the CLI as users run it over hostile names and rows exits 0 with each in the lake.

The corpus covers zero-byte and truncated files of every modality, wrong extensions,
non-UTF-8 and mixed encodings, a 100 MB single-line file, a 12 MB JSONL line, a PNG
decompression bomb, a WAV whose header lies, a WAV of NaN samples, a video with no frames,
a git repository with symlinks to /etc/passwd and to its parent folder, names with
newlines and dots, names that are not UTF-8, FIFOs and sockets, and archives with absolute
and `..` member paths (no source reads archives: they must be refused, never extracted).
The tests that take one hostile input each are in test_security_hostile_paths.py (names,
special files, unreadable folders) and test_security_hostile_rows.py (oversized and
non-finite rows).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from hostile import build_hostile_corpus, hostile_sources_yaml
from hostile_files import ESCAPE_MARKER, PROSE, escaped, make_fifo, make_socket, write_huge_line_jsonl, write_named
from hostile_media import nan_wav

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
