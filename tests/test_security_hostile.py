"""Hostile and broken input: every item of the corpus built by tests/hostile.py ends in
exactly one place, with the specific reason it was expected to get, and the run completes.

The corpus covers zero-byte and truncated files of every modality, wrong extensions,
non-UTF-8 and mixed encodings, a 100 MB single-line file, a PNG decompression bomb, a WAV
whose header lies, a video with no frames, a git repository with symlinks to /etc/passwd
and to its parent folder, names with newlines and dots, and archives with absolute and
`..` member paths (no source reads archives: they must be refused, never extracted).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from distillery import accounting
from distillery.config import load_config
from distillery.lake import Lake
from distillery.sql import query
from hostile import ESCAPE_MARKER, build_hostile_corpus, hostile_sources_yaml, non_utf8_jsonl

TAG = f"{os.getpid()}"


@pytest.fixture(scope="module")
def hostile_run(prefect_api, tmp_path_factory):
    from flows.pipeline import run_pipeline
    from teacher.server import start_server
    root = tmp_path_factory.mktemp("hostile")
    corpus = root / "corpus"
    expected = build_hostile_corpus(corpus, tag=TAG)
    server = start_server(port=0)
    cfg_path = root / "c.yaml"
    cfg_path.write_text(f"""
lake: {root / 'lake'}
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
    for sql, fmt in (("select uri from documents", "document"),
                     ("select uri, rule from rejects where stage = 'gather'", "reject:{}"),
                     ("select uri, reason from quarantine where stage = 'gather'", "quarantine:{}")):
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
    summary = dict(query(Lake(cfg.lake_root),
                         "select reason, count(*) from quarantine where stage = 'gather' group by reason")[1])
    for reason in ("zero_byte", "wrong_extension", "bad_encoding", "truncated", "decompression_bomb",
                   "symlink_escape", "bad_json"):
        assert summary.get(reason, 0) > 0, f"no {reason} in {summary}"
    # Each expected quarantine is counted under its reason: the counts are at least what the
    # corpus planted wherever only one reason was acceptable.
    planted = Counter(next(iter(h.expect)).split(":", 1)[1] for h in expected
                      if len(h.expect) == 1 and next(iter(h.expect)).startswith("quarantine:"))
    for reason, n in planted.items():
        assert summary.get(reason, 0) >= n, (reason, summary)
    oversized = query(Lake(cfg.lake_root), "select count(*), max(value) from rejects where rule = 'oversized'")[1][0]
    assert oversized[0] >= 1 and oversized[1] >= 100 * 2**20


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
