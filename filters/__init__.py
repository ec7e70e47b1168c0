"""Curate stage logic: quality filters, PII redaction, decontamination, deduplication.

filter_partition(docs, cfg, lake_root) -> PartitionResult   (filters.pipeline)
dedup_keys(curated, cfg, lake_root) -> pl.DataFrame          (filters.dedup)
find_duplicates(new, existing, cfg) -> pl.DataFrame          (filters.dedup)
"""

from filters.config import CurateConfig

# The filters (Polars, DuckDB, numpy, Pillow) load when a stage curates, not when a config is
# read: distillery.config imports filters.config, which runs this file first.
_LAZY = {"dedup_keys": "filters.dedup", "find_duplicates": "filters.dedup", "filter_partition": "filters.pipeline"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(name)


__all__ = ["CurateConfig", "dedup_keys", "filter_partition", "find_duplicates"]
