"""The `repo` kind: file-level code records plus one repo-level record per repository.

For each listed file (sorted; see repo_fetch for listing and .gitignore; files matching the
source's `exclude` patterns are left out of the listing like ignored files):
  a name that is not UTF-8 -> quarantine bad_filename (uri holds the name with the bad
             bytes backslash-escaped); a folder the listing could not read -> quarantine
             with the listing's reason (unreadable_directory, path_too_long).
  symlink    leaving the repository -> quarantine symlink_escape (never opened);
             dangling -> quarantine broken_symlink; to a folder -> reject symlink_dir;
             to a file inside the repository -> read through it.
  submodule / folder entry -> reject submodule.
  FIFO, socket, device -> quarantine not_regular_file (never opened: a FIFO blocks);
  a path over PATH_MAX -> quarantine path_too_long.
  then code_files' skip rules (oversized, vendored, binary, generated, minified, empty)
  -> REJECT rows with the measured value; undecodable text -> quarantine bad_encoding.
  else a DOCUMENT row, modality "code", meta: level "file", path, language, bytes,
  lines, commit, repo, license_source. license = per-file SPDX (license_detect).
Path-based rejects (oversized, vendored, symlink_dir, submodule) carry no text: reading
them is what the rule avoids.

Then the repo-level record (modality "code", meta.level "repo"): the kept files
concatenated in dependency order (code_order), each preceded by a comment line with its
path, parents = the file records' ids in that order. A repository with no kept file
gets a reject (rule empty_repository) for its repo record instead. A repository that
cannot be resolved or cloned is ONE quarantine row (reason clone_failed).
rows_in per repository = listed files + 1 (the repo-level record).
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from pathlib import Path

from sources import code_files
from sources.code_order import dependency_order, file_dependencies
from sources.config import RepoSource
from sources.discovery import safe_path, valid_utf8
from sources.item import SourceItem
from sources.license_detect import LicenseIndex
from sources.record import RowSink, text_id
from sources.repo_fetch import Checkout, RepoError, checkout
from sources.text_decode import BadEncoding, decode_text

_HASH_COMMENT = {
    "Python",
    "Shell",
    "Ruby",
    "Perl",
    "R",
    "YAML",
    "TOML",
    "Makefile",
    "Dockerfile",
    "CMake",
    "Julia",
    "Elixir",
    "PowerShell",
    "Starlark",
    "Nim",
    "INI",
    "Text",
    None,
}
_DASH_COMMENT = {"SQL", "Lua", "Haskell"}
_MARKUP_COMMENT = {"HTML", "XML", "Markdown", "Vue", "Svelte"}


def path_comment(rel: str, lang: str | None) -> str:
    """The line that announces a file inside the repo-level record, in the file's own comment syntax."""
    if lang in _HASH_COMMENT:
        return f"# {rel}"
    if lang in _DASH_COMMENT:
        return f"-- {rel}"
    if lang in _MARKUP_COMMENT:
        return f"<!-- {rel} -->"
    if lang in ("CSS", "SCSS"):
        return f"/* {rel} */"
    return f"// {rel}"


def _inside(target: str, root_real: str) -> bool:
    return target == root_real or target.startswith(root_real + os.sep)


def read_repo(sink: RowSink, source: RepoSource, item: SourceItem, media_root: Path) -> None:
    """Append the rows of one repository (files + repo record) to `sink`."""
    cache_root = Path(media_root).parent / "cache" / "repos"
    try:
        co = checkout(item, source, cache_root)
    except (RepoError, OSError) as exc:
        sink.quarantine(uri=item.uri, reason="clone_failed", error=str(exc))
        return
    _read_files(sink, source, item, co)


def _excluded(source: RepoSource):
    if not source.exclude:
        return lambda rel: False
    import pathspec

    spec = pathspec.PathSpec.from_lines("gitwildmatch", source.exclude)
    return spec.match_file


def _read_files(sink: RowSink, source: RepoSource, item: SourceItem, co: Checkout) -> None:
    root_real = os.path.realpath(co.root)
    excluded = _excluded(source)
    files = [rel for rel in co.files if not excluded(rel)]
    licenses = LicenseIndex(co.root, files, source.license)
    base_meta = {"repo": item.uri, "commit": co.commit}
    kept: dict[str, tuple[str, str, str | None]] = {}  # rel -> (id, text, language)

    for rel in files:
        if not valid_utf8(rel):  # cannot go into Parquet as is; never read
            sink.quarantine(
                uri=f"{item.uri}#{safe_path(rel)}",
                reason="bad_filename",
                error=f"file name is not valid UTF-8: {safe_path(rel)}",
            )
            continue
        uri = f"{item.uri}#{rel}"
        if rel in co.problems:
            reason, error = co.problems[rel]
            sink.quarantine(uri=uri, reason=reason, error=error)
            continue
        path = os.path.join(co.root, rel)
        lang = code_files.language(rel)
        meta = {**base_meta, "level": "file", "path": rel, "language": lang}
        if os.path.islink(path):
            target = os.path.realpath(path)
            if not _inside(target, root_real):
                # The target path is not echoed: it may name a private file outside the repo.
                sink.quarantine(
                    uri=uri, reason="symlink_escape", error="symlink points outside the repository; not followed"
                )
                continue
            if not os.path.exists(target):
                sink.quarantine(uri=uri, reason="broken_symlink", error="symlink target does not exist")
                continue
            if os.path.isdir(target):
                sink.reject(modality="code", uri=uri, rule="symlink_dir", value=0.0, meta=meta)
                continue
        if os.path.isdir(path):
            sink.reject(modality="code", uri=uri, rule="submodule", value=0.0, meta=meta)
            continue
        try:
            st = os.stat(path)
        except OSError as exc:
            reason = "path_too_long" if exc.errno == errno.ENAMETOOLONG else "unreadable"
            sink.quarantine(uri=uri, reason=reason, error=f"{type(exc).__name__}: {exc.strerror}")
            continue
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block, a device never end
            kind = "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device"
            sink.quarantine(uri=uri, reason="not_regular_file", error=f"a {kind}, not a regular file; not opened")
            continue
        size = st.st_size
        rule = code_files.path_rule(rel, size, source.max_file_bytes)
        if rule:
            sink.reject(modality="code", uri=uri, rule=rule[0], value=rule[1], meta={**meta, "bytes": size})
            continue
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            sink.quarantine(uri=uri, reason="unreadable", error=f"{type(exc).__name__}: {exc}")
            continue
        rule = code_files.bytes_rule(data)
        if rule:
            sink.reject(modality="code", uri=uri, rule=rule[0], value=rule[1], meta={**meta, "bytes": size})
            continue
        try:
            text, encoding = decode_text(data)
        except BadEncoding as exc:
            sink.quarantine(uri=uri, reason="bad_encoding", error=str(exc))
            continue
        lang = code_files.language(rel, text)
        license, how = licenses.for_file(rel, text)
        meta.update(language=lang, bytes=size, lines=text.count("\n") + 1, encoding=encoding, license_source=how)
        rule = code_files.text_rule(rel, text, source.max_line_length, source.max_mean_line_length)
        if rule:
            sink.reject(modality="code", uri=uri, rule=rule[0], value=rule[1], license=license, meta=meta, text=text)
            continue
        rid = text_id("code", text)
        sink.document(id=rid, modality="code", uri=uri, license=license, meta=meta, text=text)
        kept[rel] = (rid, text, lang)

    if source.repo_record:
        _repo_record(sink, item, co, kept, licenses)


def _repo_record(sink: RowSink, item: SourceItem, co: Checkout, kept: dict, licenses: LicenseIndex) -> None:
    license, how = licenses.repo_license()
    if not kept:
        sink.reject(
            modality="code",
            uri=item.uri,
            rule="empty_repository",
            value=0.0,
            license=license,
            meta={"level": "repo", "repo": item.uri, "commit": co.commit},
        )
        return
    order = dependency_order(file_dependencies({rel: t for rel, (_, t, _) in kept.items()}))
    parts = []
    for rel in order:
        _, text, lang = kept[rel]
        parts.append(f"{path_comment(rel, lang)}\n{text}" + ("" if text.endswith("\n") else "\n"))
    text = "\n".join(parts)
    languages = Counter(kept[rel][2] or "unknown" for rel in order)
    meta = {
        "level": "repo",
        "repo": item.uri,
        "commit": co.commit,
        "files": order,
        "n_files": len(order),
        "languages": dict(sorted(languages.items())),
        "license_source": how,
    }
    sink.document(
        id=text_id("code", text),
        modality="code",
        uri=item.uri,
        license=license,
        meta=meta,
        text=text,
        parents=[kept[rel][0] for rel in order],
    )
