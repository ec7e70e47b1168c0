"""The distill stage: ask a teacher model (any OpenAI-compatible endpoint) for reasoning
traces on curated rows, cache every paid response, verify, and return lake tables.

    from teacher import DistillConfig, distill_partition, BudgetExhausted
    result = distill_partition(rows, cfg, cache_dir, media_root)

The bundled reference teacher (`teacher.server.start_server`) is a deterministic stand-in
for tests and the demo.
"""

from teacher.batch import BatchPending
from teacher.budget import BudgetExhausted
from teacher.config import DistillConfig, Price, SelectorConfig, TaskConfig
from teacher.distill import distill_partition

__all__ = [
    "BatchPending",
    "BudgetExhausted",
    "DistillConfig",
    "Price",
    "SelectorConfig",
    "TaskConfig",
    "distill_partition",
]
