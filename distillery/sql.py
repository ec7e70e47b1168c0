"""Read-only SQL over the lake, for people (`distillery sql`) and for code.

Three locks keep a query from changing anything:
1. only statements of a reading kind (SELECT, EXPLAIN, DESCRIBE/SHOW, a read-only PRAGMA)
   are accepted — checked on DuckDB's own parse of the text, not with a regex;
2. the catalog opens read-only, so no table or view can be created, changed or dropped;
3. DuckDB's external access is switched off except for reading the lake folder, and the
   configuration is locked, so COPY TO, ATTACH, extension installs and reads of other files
   are refused by the engine itself.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import duckdb

from distillery.catalog import connect
from distillery.lake import Lake

READING = {"SELECT", "EXPLAIN", "PRAGMA"}
READ_PRAGMAS = ("show", "table_info", "database_size", "storage_info", "version", "show_tables", "show_databases")


class WriteRefused(PermissionError):
    """The statement would change something; `distillery sql` only reads."""


def check_read_only(query: str) -> None:
    """Raise WriteRefused unless every statement in `query` only reads."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise ValueError(f"cannot parse the query: {exc}") from None
    if not statements:
        raise ValueError("the query is empty")
    for st in statements:
        kind = st.type.name
        text = st.query.strip().lower()
        if kind == "PRAGMA" and not text.startswith(tuple("pragma " + p for p in READ_PRAGMAS)):
            raise WriteRefused(f"refused: only read-only PRAGMAs are allowed here ({text[:40]}...)")
        if kind not in READING and not (kind == "SELECT" or text.startswith(("describe", "show", "summarize"))):
            raise WriteRefused(
                f"refused: `distillery sql` only reads the lake, and this is a {kind} statement. "
                "Use SELECT (or DESCRIBE/SHOW/EXPLAIN); stages write the lake."
            )


def query(lake: Lake, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run read-only `sql` against the catalog; return (column names, rows)."""
    check_read_only(sql)
    if not lake.catalog_path.exists():
        raise FileNotFoundError(f"no catalog at {lake.catalog_path}: run `distillery run` first")
    con = connect(lake, read_only=True)
    try:
        con.execute(f"SET allowed_directories = ['{str(lake.root).replace(chr(39), '')}/']")
        con.execute("SET enable_external_access = false")
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET lock_configuration = true")
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description or []]
        return columns, cur.fetchall()
    finally:
        con.close()


def render(columns: list[str], rows: list[tuple], fmt: str = "table", max_width: int = 60) -> str:
    """Format a result as an aligned table, CSV or JSON lines."""
    if fmt == "json":
        return "\n".join(json.dumps(dict(zip(columns, r)), default=str) for r in rows)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")  # csv's default "\r\n" breaks line-based tools
        w.writerow(columns)
        w.writerows(rows)
        return buf.getvalue().rstrip("\n")

    def cell(v: Any) -> str:
        s = "NULL" if v is None else str(v)
        s = s.replace("\n", "\\n")
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    body = [[cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    sep = "  ".join("-" * w for w in widths)
    out = [line, sep] + ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in body]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)
