"""Code repositories: resolve a `repo` source to a commit, check it out, list its files.

A URL (anything with "://", or scp-style user@host:path) is resolved with
`git ls-remote` at discovery (no clone needed to know the commit) and cloned at read
time into `<lake>/cache/repos/` (a mirror per URL, a checkout per commit; see _cache_clone).
A local folder that is a git repository is read in place when `ref` is None (tracked
plus untracked-but-not-ignored files, `git ls-files --cached --others --exclude-standard`)
and through the cache clone when a ref is given. A plain folder is walked with its
.gitignore files applied by `pathspec` (gitwildmatch semantics), `.git` skipped.

Fingerprints: the commit sha; a dirty working tree appends "+<hash of its listing>", a
plain folder is "tree:<hash>" of every listed file's path, size and mtime_ns.
Listings are sorted by path; symlinks are listed as entries and never followed here
(repo_read decides: inside the repository -> read, outside -> symlink_escape).
FIFOs, sockets and devices are listed too (repo_read quarantines them, never opening
them): os.walk lists them in plain folders; git never does, so for a working tree read in
place the folders holding listed files are scanned for them (`special_files`). A folder
the walk or git cannot list is listed itself, with the reason in `Checkout.problems`.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pathspec

from sources.config import RepoSource
from sources.item import SourceItem

_SHA = re.compile(r"^[0-9a-f]{40}$")
_SCP = re.compile(r"^[\w.-]+@[\w.-]+:")
_GIT_ENV = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}


class RepoError(RuntimeError):
    """The repository cannot be resolved, cloned or listed (message says why)."""


def is_url(url_or_path: str) -> bool:
    return "://" in url_or_path or bool(_SCP.match(url_or_path))


def git(*args: str, cwd: str | None = None, warnings: list[str] | None = None) -> str:
    """git's stdout; its stderr lines go to `warnings` when given (git warns and goes on)."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd, env=_GIT_ENV, capture_output=True, check=True, timeout=600)
    except subprocess.CalledProcessError as exc:
        raise RepoError(f"git {args[0]} failed: {exc.stderr.decode(errors='replace').strip()[:500]}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RepoError(f"git {args[0]} failed: {exc}") from exc
    if warnings is not None:
        warnings.extend(out.stderr.decode("utf-8", errors="surrogateescape").splitlines())
    return out.stdout.decode("utf-8", errors="surrogateescape")


def _git_toplevel(path: Path) -> Path | None:
    try:
        top = git("rev-parse", "--show-toplevel", cwd=str(path)).strip()
    except RepoError:
        return None
    return Path(top) if Path(top).resolve() == path.resolve() else None


def resolve_remote(url: str, ref: str | None) -> str:
    """Commit sha of `ref` (default HEAD) at `url`, without cloning."""
    if ref and _SHA.match(ref):
        return ref
    want = ref or "HEAD"
    refs: dict[str, str] = {}
    for line in git("ls-remote", url, want).splitlines():
        sha, _, name = line.partition("\t")
        refs[name] = sha
    for name in (want, f"refs/heads/{want}", f"refs/tags/{want}^{{}}", f"refs/tags/{want}"):
        if name in refs:
            return refs[name]
    if refs:
        return refs[sorted(refs)[0]]
    raise RepoError(f"ref {want!r} not found at {url}")


def _local_path(source: RepoSource, base_dir: Path) -> Path:
    p = Path(os.path.expanduser(source.url_or_path))
    return (p if p.is_absolute() else base_dir / p).absolute()


def tree_hash(root: Path, files: list[str]) -> str:
    h = hashlib.sha256()
    for rel in files:
        try:
            st = os.lstat(root / rel)
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            h.update(f"{rel}\0missing\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:40]


def discover_repo(source: RepoSource, base_dir: Path) -> Iterator[SourceItem]:
    """One item: uri = url_or_path@ref, path = URL or absolute folder, fingerprint = commit/tree.

    An unresolvable repository still yields its item (fingerprint "unresolved:..."), so the
    failure is quarantined by read_items instead of crashing discovery.
    """
    uri = f"{source.url_or_path}@{source.ref or 'HEAD'}"
    if is_url(source.url_or_path):
        path = source.url_or_path
        try:
            fp = resolve_remote(path, source.ref)
        except RepoError as exc:
            fp = f"unresolved:{str(exc)[:200]}"
    else:
        local = _local_path(source, base_dir)
        path = str(local)
        try:
            fp = local_fingerprint(local, source.ref)
        except RepoError as exc:
            fp = f"unresolved:{str(exc)[:200]}"
    yield SourceItem(source=source.name, uri=uri, path=path, fingerprint=fp)


def local_fingerprint(local: Path, ref: str | None) -> str:
    if not local.is_dir():
        raise RepoError(f"not a folder: {local}")
    if _git_toplevel(local) is None:
        if ref:
            raise RepoError(f"ref {ref!r} given but {local} is not a git repository")
        return "tree:" + tree_hash(local, walk_plain(local))
    if ref:
        return git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=str(local)).strip()
    head = git("rev-parse", "--verify", "HEAD^{commit}", cwd=str(local)).strip()
    if git("status", "--porcelain", cwd=str(local)).strip():
        return f"{head}+{tree_hash(local, list_git(local, working_tree=True))}"
    return head


@dataclass
class Checkout:
    root: Path  # folder holding the files
    commit: str | None  # None for a plain folder
    files: list[str]  # sorted relative paths (posix)
    # listed entries that cannot be read as they stand: rel -> (quarantine reason, message)
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)


# git (LC_ALL=C) warns this for a folder of the working tree it cannot list, and goes on.
_UNLISTABLE = re.compile(r"^warning: could not open directory '(.*)/': (.*)$")


def list_git(root: Path, working_tree: bool, problems: dict[str, tuple[str, str]] | None = None) -> list[str]:
    """Sorted files of a checkout (working tree: tracked, untracked-not-ignored, and the
    FIFOs/sockets/devices git skips). A working-tree folder git could not list is listed
    itself and, when `problems` is given, recorded there as unreadable_directory."""
    args = ["ls-files", "-z", "--cached"] + (["--others", "--exclude-standard"] if working_tree else [])
    warnings: list[str] = []
    files = set(p for p in git(*args, cwd=str(root), warnings=warnings).split("\0") if p)
    if working_tree:
        files.update(special_files(root, files))
        for line in warnings:
            if m := _UNLISTABLE.match(line):
                files.add(m.group(1))
                if problems is not None:
                    problems[m.group(1)] = ("unreadable_directory", f"cannot list the folder: {m.group(2)}")
    return sorted(files)


def special_files(root: Path, files: set[str]) -> list[str]:
    """FIFOs, sockets and devices that .gitignore does not exclude, in the folders of `files`.

    git lists none of them (it skips what is neither file, folder nor link), yet they are
    part of the working tree being read, so they are reported rather than silently dropped.
    Only folders that hold a listed file are scanned: one listing each, no walk of ignored
    trees (a folder holding nothing but a FIFO goes unseen).
    """
    found: list[str] = []
    for folder in sorted({rel.rpartition("/")[0] for rel in files} | {""}):
        try:
            it = os.scandir(root / folder if folder else root)
        except OSError:  # a tracked file's folder deleted from the working tree
            continue
        with it:
            for entry in it:
                try:
                    if (
                        entry.is_symlink()
                        or entry.is_dir(follow_symlinks=False)
                        or entry.is_file(follow_symlinks=False)
                    ):
                        continue
                except OSError:
                    continue
                found.append(f"{folder}/{entry.name}" if folder else entry.name)
    if not found:
        return []
    out = subprocess.run(
        ["git", "check-ignore", "-z", "--stdin"],
        cwd=str(root),
        env=_GIT_ENV,
        capture_output=True,
        input="\0".join(found).encode("utf-8", "surrogateescape"),
        timeout=600,
    )
    if out.returncode not in (0, 1):  # 1: none of them is ignored
        raise RepoError(f"git check-ignore failed: {out.stderr.decode(errors='replace').strip()[:500]}")
    ignored = set(out.stdout.decode("utf-8", "surrogateescape").split("\0"))
    return [rel for rel in found if rel not in ignored]


def walk_plain(root: Path, problems: dict[str, tuple[str, str]] | None = None) -> list[str]:
    """Files of a non-git folder, .gitignore files applied (nested ones relative to their folder).

    A folder that cannot be listed (permissions, a path over PATH_MAX) is listed itself and,
    when `problems` is given, recorded there as rel -> (reason, message).
    """
    out: list[str] = []
    specs: list[tuple[str, pathspec.PathSpec]] = []  # (folder prefix, spec)

    def unlistable(exc: OSError) -> None:
        rel = os.path.relpath(exc.filename, root).replace(os.sep, "/") if exc.filename else "."
        if rel == ".":
            raise RepoError(f"cannot list {root}: {exc.strerror}")
        out.append(rel)
        if problems is not None:
            if exc.errno == errno.ENAMETOOLONG:
                problems[rel] = ("path_too_long", f"folder path is over the OS limit: {exc.strerror}")
            else:
                problems[rel] = (
                    "unreadable_directory",
                    f"cannot list the folder: {type(exc).__name__}: {exc.strerror}",
                )

    def ignored(rel: str, is_dir: bool) -> bool:
        for prefix, spec in specs:
            if rel.startswith(prefix):
                sub = rel[len(prefix) :] + ("/" if is_dir else "")
                if spec.match_file(sub):
                    return True
        return False

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        gi = os.path.join(dirpath, ".gitignore")
        if os.path.isfile(gi):
            with open(gi, encoding="utf-8", errors="replace") as fh:
                specs.append((prefix, pathspec.PathSpec.from_lines("gitwildmatch", fh)))
        keep_dirs = []
        for d in sorted(dirnames):
            rel = prefix + d
            if d == ".git" or ignored(rel, True):
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                out.append(rel)  # listed, not descended: repo_read checks where it points
            else:
                keep_dirs.append(d)
        dirnames[:] = keep_dirs
        for f in filenames:
            rel = prefix + f
            if not ignored(rel, False):
                out.append(rel)
    return sorted(out)


@contextmanager
def _locked(lock_path: Path):
    """An exclusive advisory lock (flock) shared by every process using the cache."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _cache_clone(url: str, commit: str, cache_root: Path) -> Path:
    """A checkout of `commit` of `url` under cache_root, made once and then reused.

    Layout: `<key>.git` is a mirror of the repository (fetched under a lock when the commit
    is missing) and `<key>/<commit>/` a read-only-by-convention checkout sharing the
    mirror's objects (`clone --shared`). One folder per commit means two sources reading
    different refs of the same URL never check out over each other.
    """
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    mirror = cache_root / f"{key}.git"
    tree = cache_root / key / commit
    if (tree / ".git").exists():
        return tree
    with _locked(cache_root / f"{key}.lock"):
        if not mirror.is_dir():
            tmp = cache_root / f"{key}.git.tmp{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            git("clone", "--quiet", "--mirror", url, str(tmp))
            os.replace(tmp, mirror)
        try:
            git("cat-file", "-e", f"{commit}^{{commit}}", cwd=str(mirror))
        except RepoError:
            git("fetch", "--quiet", "--prune", "origin", cwd=str(mirror))
            try:
                git("cat-file", "-e", f"{commit}^{{commit}}", cwd=str(mirror))
            except RepoError:  # not on any ref (yet): ask for the commit itself
                git("fetch", "--quiet", "origin", commit, cwd=str(mirror))
        if not (tree / ".git").exists():
            tmp = tree.with_name(f"{commit}.tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            git("clone", "--quiet", "--shared", "--no-checkout", str(mirror), str(tmp))
            git("-c", "advice.detachedHead=false", "checkout", "--quiet", "--force", "--detach", commit, cwd=str(tmp))
            os.replace(tmp, tree)
    return tree


def checkout(item: SourceItem, source: RepoSource, cache_root: Path) -> Checkout:
    """Make the item's files readable on disk and list them (sorted, .gitignore applied)."""
    if item.fingerprint.startswith("unresolved:"):
        raise RepoError(item.fingerprint[len("unresolved:") :])
    if is_url(item.path):
        root = _cache_clone(item.path, item.fingerprint, cache_root)
        return Checkout(root, item.fingerprint, list_git(root, working_tree=False))
    local = Path(item.path)
    if item.fingerprint.startswith("tree:"):
        problems: dict[str, tuple[str, str]] = {}
        return Checkout(local, None, walk_plain(local, problems), problems)
    commit = item.fingerprint.split("+")[0]
    if source.ref is None:
        problems = {}
        return Checkout(local, commit, list_git(local, working_tree=True, problems=problems), problems)
    root = _cache_clone(str(local), commit, cache_root)
    return Checkout(root, commit, list_git(root, working_tree=False))
