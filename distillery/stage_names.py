"""The stages' names, in the order a pipeline runs them: the one place they are spelled out.

Kept apart from distillery/lake.py (which re-exports them with the tables each stage writes)
only so that reading a config imports no data library (tests/test_import_weight.py).
"""

from __future__ import annotations

from typing import Literal, get_args

StageName = Literal["gather", "curate", "distill", "shard", "train"]
STAGES: tuple[str, ...] = get_args(StageName)
