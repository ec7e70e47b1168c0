"""`distillery explain ID`: where one shard row came from, one line per step.

    shard    the row in the current build (lake/shard/CURRENT): file, modality, split, tokens, uri, license
    trace    for a teacher trace row: model, verdict, and the cache file holding the raw HTTP response
    curated  each curated row it was made from (`parents`): source, modality, license, uri
    document the gathered document of the same id: source, uri
    source   the file or item it was read from (`uri`), with the repository and git commit for code

The lineage columns: a shard row's `parents` lists the curated document ids it was made
from, then (for a trace row) the trace id; `uri` and `license` are its document's (a
trace's: its first source document's). Curated rows keep their document's id.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from distillery.catalog import connect
from distillery.lake import Lake


class NotInShards(LookupError):
    """The id is not a row of the current shard build."""


def _shard_row(build: Path, sample_id: str) -> dict | None:
    manifest = json.loads((build / "manifest.json").read_text())
    files = [str(build / s["file"]) for s in manifest["shards"]]
    if not files:
        return None
    con = duckdb.connect()
    try:
        cur = con.execute(
            "SELECT id, modality, split, n_tokens, uri, license, parents, filename "
            "FROM read_parquet(?, filename = true) WHERE id = ? LIMIT 1",
            [files, sample_id],
        )
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row))
    finally:
        con.close()


def _one(con: duckdb.DuckDBPyConnection, sql: str, key: str) -> dict | None:
    cur = con.execute(sql, [key])
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row))


def _cache_file(lake: Lake, model: str | None, key: str | None) -> Path | None:
    if not model or not key:
        return None
    from teacher.cache import model_slug

    return (lake.root / "cache" / "teacher" / model_slug(model) / key[:2] / f"{key}.json").resolve()


def explain(lake: Lake, build: Path, sample_id: str) -> list[str]:
    """The lineage of shard row `sample_id` of `build`, as lines; raises NotInShards."""
    row = _shard_row(build, sample_id)
    if row is None:
        raise NotInShards(f"{sample_id}: no such row in the shard build {build}")
    lines = [
        f"shard    {row['id']}  {Path(row['filename']).name} in {build}  modality {row['modality']}  "
        f"split {row['split']}  tokens {row['n_tokens']}  uri {row['uri']}  license {row['license']}"
    ]
    parents = list(row["parents"] or [])
    con = connect(lake, read_only=True)
    try:
        trace = (
            _one(
                con,
                "SELECT id, model, task, verdict, verdict_detail, cache_key, source_ids FROM traces WHERE id = ?",
                parents[-1],
            )
            if parents
            else None
        )
        if trace is not None:
            parents = list(trace["source_ids"] or [])
            cache = _cache_file(lake, trace["model"], trace["cache_key"])
            state = "" if cache is None or cache.exists() else " (missing)"
            lines.append(
                f"trace    {trace['id']}  model {trace['model']}  task {trace['task']}  verdict {trace['verdict']}"
                f"{' (' + trace['verdict_detail'] + ')' if trace['verdict_detail'] else ''}  "
                f"raw response {cache}{state}"
            )
        for pid in parents:
            cur = _one(con, "SELECT id, source, modality, license, uri FROM curated WHERE id = ?", pid)
            if cur is None:
                lines.append(f"curated  {pid}  not in the current curate generation")
                continue
            lines.append(
                f"curated  {cur['id']}  source {cur['source']}  modality {cur['modality']}  "
                f"license {cur['license']}  uri {cur['uri']}"
            )
            doc = _one(con, "SELECT id, source, uri, meta FROM documents WHERE id = ?", pid)
            if doc is None:
                lines.append(f"document {pid}  not in the current gather generations")
                continue
            lines.append(f"document {doc['id']}  source {doc['source']}  uri {doc['uri']}")
            meta = json.loads(doc["meta"]) if doc["meta"] else {}
            has_commit = isinstance(meta, dict) and meta.get("commit")
            where = f"  repository {meta.get('repo')} at git commit {meta['commit']}" if has_commit else ""
            lines.append(f"source   {doc['uri']}{where}")
    finally:
        con.close()
    return lines
