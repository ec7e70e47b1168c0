"""What a stage's partition function returns, and how its frames are held to the lake's schemas."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa


@dataclass
class PartitionResult:
    """The outcome of one partition of one stage.

    `rows_in` counts the items the partition consumed; `tables` maps a table name
    (documents, curated, rejects, duplicates, quarantine, traces, ...) to its rows.
    The stage contract: rows_in == kept + rejected + duplicate + quarantined, where
    `kept` is the row count of the stage's main output table(s) as the stage defines.
    `stats` carries small extra counters (e.g. redactions per kind) for artifacts.
    """

    rows_in: int
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)


def conform(df: pl.DataFrame | None, schema: pa.Schema) -> pa.Table:
    """Return `df` as an Arrow table with exactly `schema`'s columns, order and types.

    Missing nullable columns are filled with nulls; extra columns are an error, since
    they would silently vanish from the lake.
    """
    if df is None or df.height == 0:
        return schema.empty_table()
    extra = set(df.columns) - set(schema.names)
    if extra:
        raise ValueError(f"columns not in the {schema.names[:3]}... schema: {sorted(extra)}")
    table = df.to_arrow()
    columns = []
    for fld in schema:
        if fld.name in table.column_names:
            columns.append(table.column(fld.name).cast(fld.type))
        else:
            columns.append(pa.nulls(table.num_rows, fld.type))
    return pa.Table.from_arrays(columns, schema=schema)
