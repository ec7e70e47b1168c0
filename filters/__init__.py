"""Curate stage logic: quality filters, PII redaction, decontamination, deduplication.

    filter_partition(docs, cfg, lake_root) -> PartitionResult   (filters.pipeline)
    dedup_keys(curated, cfg, lake_root) -> pl.DataFrame          (filters.dedup)
    find_duplicates(new, existing, cfg) -> pl.DataFrame          (filters.dedup)
"""

from filters.config import CurateConfig
from filters.dedup import dedup_keys, find_duplicates
from filters.pipeline import filter_partition

__all__ = ["CurateConfig", "dedup_keys", "filter_partition", "find_duplicates"]
