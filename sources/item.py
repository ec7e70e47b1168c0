"""SourceItem: one unit of work that discovery hands to a reader."""

from __future__ import annotations

from dataclasses import dataclass

# The fingerprint of a file symlink whose target leaves the source's folder: this prefix and
# the target. It travels through the gather plan like any fingerprint, and `read_items`
# quarantines the item as symlink_escape without opening it.
ESCAPED = "symlink-escape:"

# The fingerprint of an item discovery already judged unreadable as it stands (a name that
# is not UTF-8, a path over PATH_MAX, a FIFO, a folder it could not list): this prefix, the
# reason, the item's size:mtime stamp (so a changed item is looked at again), a newline and
# the message. `read_items` quarantines such an item with that reason, never opening it.
FLAGGED = "quarantine:"


def flagged(reason: str, stamp: str, error: str) -> str:
    """The fingerprint of an item to quarantine with `reason` (see FLAGGED)."""
    return f"{FLAGGED}{reason}:{stamp}\n{error}"


def parse_flagged(fingerprint: str) -> tuple[str, str]:
    """(reason, error) of a FLAGGED fingerprint."""
    head, _, error = fingerprint[len(FLAGGED) :].partition("\n")
    return head.split(":", 1)[0], error


@dataclass(frozen=True)
class SourceItem:
    """One discovered item.

    source       the source's name
    uri          stable identifier: the file path, or `url@ref` for a repository
    path         local path to read (for a remote repository: the URL to clone)
    fingerprint  "size:mtime_ns" for files; the resolved commit sha (or a tree hash for a
                 non-git folder, or a dataset fingerprint) for repositories and datasets
    span         None: the whole item; else (start, stop, first_row), the part of a large
                 JSONL/CSV/Parquet/WARC file this item stands for (sources/spans.py)
    """

    source: str
    uri: str
    path: str
    fingerprint: str
    span: tuple[int, int, int] | None = None
