"""Dependency order of a repository's files, for the repo-level record (DeepSeek-Coder, 2024, sec. 2.1).

`file_dependencies` parses imports with the standard `ast` module for Python (a regex
fallback for files that do not parse) and simple regexes for JS/TS (relative specifiers),
Go (packages under the go.mod module path), Java/Kotlin (`import a.b.C` -> a/b/C.java),
and C/C++ (`#include "x.h"`). Only edges to files of the same repository are kept.

`dependency_order` is Kahn's topological sort with the lexicographically smallest ready
file first (deterministic); when every remaining file waits on another (a cycle) it
picks the remaining file with the fewest unmet dependencies (ties: smallest path), as
DeepSeek-Coder does, and goes on. Every file appears exactly once.
"""

from __future__ import annotations

import ast
import heapq
import posixpath
import re
from collections import defaultdict

_PY_FALLBACK = re.compile(r"^\s*(?:from\s+(\.*[\w.]*)\s+import\s+([^#\n;]+)|import\s+([^#\n;]+))", re.MULTILINE)
_JS = re.compile(
    r"""(?:\bimport\s+(?:[^'";]*?\s+from\s+)?|\bexport\s+[^'";]*?\s+from\s+|\brequire\s*\(\s*|\bimport\s*\(\s*)['"]([^'"\n]+)['"]"""
)
_JS_EXTS = ("", ".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".d.ts")
_GO_IMPORT_BLOCK = re.compile(r"^import\s*\(([^)]*)\)", re.MULTILINE)
_GO_IMPORT_LINE = re.compile(r'^import\s+(?:[\w.]+\s+)?"([^"]+)"', re.MULTILINE)
_GO_QUOTED = re.compile(r'"([^"]+)"')
_GO_MODULE = re.compile(r"^module\s+(\S+)", re.MULTILINE)
_JAVA_IMPORT = re.compile(r"^\s*import\s+(?:static\s+)?([\w.]+(?:\.\*)?)\s*;?", re.MULTILINE)
_C_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)


class _Index:
    def __init__(self, files: list[str], texts: dict[str, str]) -> None:
        self.files = set(files)
        self.py_modules: dict[str, str] = {}
        for rel in sorted(files):
            if rel.endswith((".py", ".pyi")):
                parts = rel.rsplit(".", 1)[0].split("/")
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                names = [".".join(parts)]
                if len(parts) > 1 and parts[0] in ("src", "lib", "python"):
                    names.append(".".join(parts[1:]))
                for name in names:
                    if name:
                        self.py_modules.setdefault(name, rel)
        self.by_suffix: dict[str, list[str]] = defaultdict(list)
        for rel in sorted(files):
            parts = rel.split("/")
            for i in range(len(parts)):
                self.by_suffix["/".join(parts[i:])].append(rel)
        self.go_module = None
        if "go.mod" in texts:
            m = _GO_MODULE.search(texts["go.mod"])
            self.go_module = m.group(1) if m else None
        self.go_dirs: dict[str, list[str]] = defaultdict(list)
        for rel in sorted(files):
            if rel.endswith(".go") and not rel.endswith("_test.go"):
                self.go_dirs[posixpath.dirname(rel)].append(rel)


def _py_module_candidates(rel: str, text: str) -> list[str]:
    """Dotted names an import in `rel` may refer to, most specific first per import."""
    package = rel.rsplit("/", 1)[0].split("/") if "/" in rel else []
    if rel.endswith("/__init__.py") or rel == "__init__.py":
        package = rel.split("/")[:-1]

    def absolute(level: int, module: str | None) -> str:
        if level == 0:
            return module or ""
        base = package[: len(package) - (level - 1)] if level - 1 <= len(package) else []
        return ".".join(base + ([module] if module else []))

    out: list[str] = []
    try:
        tree = ast.parse(text)
        nodes = []
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom):
                nodes.append((n.level, n.module, [a.name for a in n.names], True))
            elif isinstance(n, ast.Import):
                nodes.append((0, None, [a.name for a in n.names], False))
    except (SyntaxError, ValueError, RecursionError):
        nodes = []
        for m in _PY_FALLBACK.finditer(text):
            if m.group(1) is not None:
                dots = len(m.group(1)) - len(m.group(1).lstrip("."))
                names = [n.strip().split(" as ")[0].strip("() ") for n in m.group(2).split(",")]
                nodes.append((dots, m.group(1).lstrip(".") or None, names, True))
            else:
                nodes.append((0, None, [n.strip().split(" as ")[0] for n in m.group(3).split(",")], False))
    for level, module, names, is_from in nodes:
        if is_from:
            base = absolute(level, module)
            # "pkg.name" falls back to "pkg" in _resolve_py when name is not a module.
            for name in names:
                if name == "*":
                    out.append(base)
                else:
                    out.append(f"{base}.{name}" if base else name)
        else:
            out.extend(names)
    return out


def _resolve_py(name: str, rel: str, index: _Index) -> str | None:
    sibling_prefix = ".".join(rel.split("/")[:-1])
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        for candidate in ((f"{sibling_prefix}.{prefix}" if sibling_prefix else prefix), prefix):
            if candidate in index.py_modules:
                return index.py_modules[candidate]
    return None


def _deps_of(rel: str, text: str, index: _Index) -> set[str]:
    deps: set[str] = set()
    folder = posixpath.dirname(rel)
    if rel.endswith((".py", ".pyi")):
        for name in _py_module_candidates(rel, text):
            target = _resolve_py(name, rel, index)
            if target:
                deps.add(target)
    elif rel.endswith((".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".vue", ".svelte")):
        for spec in _JS.findall(text):
            if not spec.startswith("."):
                continue
            base = posixpath.normpath(posixpath.join(folder, spec))
            for cand in [base + e for e in _JS_EXTS] + [f"{base}/index{e}" for e in _JS_EXTS[1:]]:
                if cand in index.files:
                    deps.add(cand)
                    break
    elif rel.endswith(".go") and index.go_module:
        paths = _GO_IMPORT_LINE.findall(text)
        for block in _GO_IMPORT_BLOCK.findall(text):
            paths.extend(_GO_QUOTED.findall(block))
        for path in paths:
            if path.startswith(index.go_module + "/"):
                deps.update(index.go_dirs.get(path[len(index.go_module) + 1 :], []))
    elif rel.endswith((".java", ".kt", ".scala")):
        ext = posixpath.splitext(rel)[1]
        for name in _JAVA_IMPORT.findall(text):
            if name.endswith(".*"):
                pkg_dir = name[:-2].replace(".", "/")
                deps.update(f for f in index.files if posixpath.dirname(f).endswith(pkg_dir) and f.endswith(ext))
            else:
                deps.update(index.by_suffix.get(name.replace(".", "/") + ext, []))
    elif rel.endswith((".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".m", ".mm")):
        for inc in _C_INCLUDE.findall(text):
            local = posixpath.normpath(posixpath.join(folder, inc))
            if local in index.files:
                deps.add(local)
            else:
                deps.update(index.by_suffix.get(inc, [])[:1])
    deps.discard(rel)
    return deps


def file_dependencies(texts: dict[str, str]) -> dict[str, set[str]]:
    """{file: files it imports} over the given {relative path: text} of one repository."""
    files = sorted(texts)
    index = _Index(files, texts)
    return {rel: _deps_of(rel, texts[rel], index) & index.files for rel in files}


def dependency_order(deps: dict[str, set[str]]) -> list[str]:
    """Files ordered so that dependencies come first; cycles broken by fewest unmet deps."""
    remaining = {f: set(d) & deps.keys() - {f} for f, d in deps.items()}
    dependents: dict[str, list[str]] = defaultdict(list)
    for f, ds in remaining.items():
        for d in ds:
            dependents[d].append(f)
    ready = [f for f, ds in remaining.items() if not ds]
    heapq.heapify(ready)
    done: set[str] = set()
    order: list[str] = []
    while len(order) < len(remaining):
        if ready:
            f = heapq.heappop(ready)
            if f in done:
                continue
        else:  # a cycle blocks: take the file closest to being ready
            f = min((g for g in remaining if g not in done), key=lambda g: (len(remaining[g]), g))
        done.add(f)
        order.append(f)
        for g in dependents[f]:
            remaining[g].discard(f)
            if not remaining[g] and g not in done:
                heapq.heappush(ready, g)
    return order
