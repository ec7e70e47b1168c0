"""License of each repository file, as an SPDX id.

Precedence, first hit wins:
  1. an `SPDX-License-Identifier:` line in the file's first 30 lines       (how: "spdx_header")
  2. the nearest LICENSE/LICENCE/COPYING* file in the file's folder or above,
     identified by key phrases of the license texts; several different ones in one
     folder (LICENSE-MIT + LICENSE-APACHE) give "A OR B"                    (how: "license_file")
  3. package metadata at the repository root: pyproject.toml ([project].license,
     [tool.poetry].license), package.json "license", Cargo.toml, setup.cfg (how: "package_metadata")
  4. the source's configured `license`                                      (how: "config")
Key phrases are the distinctive sentences of each license text (choosealicense.com texts);
LGPL/AGPL are tested before GPL since their texts mention the GPL.
"""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from pathlib import Path

_LICENSE_NAMES = re.compile(r"^(LICEN[CS]E|COPYING|UNLICENSE)([.-].*)?$", re.IGNORECASE)
_SPDX_LINE = re.compile(r"SPDX-License-Identifier:\s*([A-Za-z0-9.+\-() ]+?)\s*(?:\*/|-->|$)", re.MULTILINE)

# (spdx id, phrases that must all appear), tested in order on lower-cased, space-normalized text.
_PHRASES: list[tuple[str, tuple[str, ...]]] = [
    ("AGPL-3.0", ("gnu affero general public license", "version 3")),
    ("LGPL-3.0", ("gnu lesser general public license", "version 3")),
    ("LGPL-2.1", ("gnu lesser general public license", "version 2.1")),
    ("GPL-3.0", ("gnu general public license", "version 3")),
    ("GPL-2.0", ("gnu general public license", "version 2")),
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("MPL-2.0", ("mozilla public license", "2.0")),
    ("BSL-1.0", ("boost software license - version 1.0",)),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",)),
    ("CC0-1.0", ("cc0 1.0 universal",)),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any purpose",)),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "neither the name")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",)),
    ("Zlib", ("altered source versions must be plainly marked",)),
    # MIT's grant sentence alone: a LICENSE file cut after it (as many are) is still MIT
    ("MIT", ("permission is hereby granted, free of charge, to any person obtaining a copy",)),
]


def spdx_from_text(text: str) -> str | None:
    norm = " ".join(text.lower().split())
    for spdx, phrases in _PHRASES:
        if all(p in norm for p in phrases):
            return spdx
    return None


def spdx_header(text: str) -> str | None:
    m = _SPDX_LINE.search("\n".join(text.split("\n", 30)[:30]))
    return m.group(1).strip() if m else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def package_license(root: Path) -> str | None:
    """License declared in root package metadata, as written there (usually an SPDX id)."""
    text = _read(root / "pyproject.toml")
    if text:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            data = {}
        lic = data.get("project", {}).get("license") or data.get("tool", {}).get("poetry", {}).get("license")
        if isinstance(lic, dict):
            lic = lic.get("text") and spdx_from_text(lic["text"]) or lic.get("text")
        if isinstance(lic, str) and lic.strip():
            return lic.strip()
    text = _read(root / "package.json")
    if text:
        try:
            lic = json.loads(text).get("license")
        except (json.JSONDecodeError, AttributeError):
            lic = None
        if isinstance(lic, dict):
            lic = lic.get("type")
        if isinstance(lic, str) and lic.strip():
            return lic.strip()
    text = _read(root / "Cargo.toml")
    if text:
        try:
            lic = tomllib.loads(text).get("package", {}).get("license")
        except tomllib.TOMLDecodeError:
            lic = None
        if isinstance(lic, str) and lic.strip():
            return lic.strip()
    text = _read(root / "setup.cfg")
    if text:
        cfg = configparser.ConfigParser(interpolation=None)
        try:
            cfg.read_string(text)
            lic = cfg.get("metadata", "license", fallback=None)
        except configparser.Error:
            lic = None
        if lic and lic.strip():
            return lic.strip()
    return None


class LicenseIndex:
    """License lookup for the files of one checkout (LICENSE files read once per folder)."""

    def __init__(self, root: Path, files: list[str], default: str | None) -> None:
        self.root = root
        found: dict[str, set[str]] = {}
        for rel in files:
            folder, _, name = rel.rpartition("/")
            if _LICENSE_NAMES.match(name):
                path = root / rel
                if path.is_file() and not path.is_symlink():
                    spdx = spdx_from_text(_read(path) or "")
                    if spdx:
                        found.setdefault(folder, set()).add(spdx)
        # Several license files in one folder (LICENSE-MIT + LICENSE-APACHE) = a choice.
        self.by_dir = {folder: " OR ".join(sorted(ids)) for folder, ids in found.items()}
        self.package = package_license(root)
        self.default = default

    def repo_license(self) -> tuple[str | None, str]:
        if "" in self.by_dir:
            return self.by_dir[""], "license_file"
        if self.package:
            return self.package, "package_metadata"
        return self.default, "config"

    def for_file(self, rel: str, text: str | None) -> tuple[str | None, str]:
        if text:
            header = spdx_header(text)
            if header:
                return header, "spdx_header"
        folder = rel.rpartition("/")[0]
        while True:
            if folder in self.by_dir:
                return self.by_dir[folder], "license_file"
            if not folder:
                break
            folder = folder.rpartition("/")[0]
        if self.package:
            return self.package, "package_metadata"
        return self.default, "config"
