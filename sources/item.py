"""SourceItem: one unit of work that discovery hands to a reader."""

from __future__ import annotations

from dataclasses import dataclass

# The fingerprint of a file symlink whose target leaves the source's folder: this prefix and
# the target. It travels through the gather plan like any fingerprint, and `read_items`
# quarantines the item as symlink_escape without opening it.
ESCAPED = "symlink-escape:"


@dataclass(frozen=True)
class SourceItem:
    """One discovered item.

    source       the source's name
    uri          stable identifier: the file path, or `url@ref` for a repository
    path         local path to read (for a remote repository: the URL to clone)
    fingerprint  "size:mtime_ns" for files; the resolved commit sha (or a tree hash for a
                 non-git folder, or a dataset fingerprint) for repositories and datasets
    """

    source: str
    uri: str
    path: str
    fingerprint: str
