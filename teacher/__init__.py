"""The distill stage: ask a teacher model (any OpenAI-compatible endpoint) for reasoning
traces on curated rows, cache every paid response, verify, and return lake tables.

    from teacher import DistillConfig, distill_partition, BudgetExhausted
    result = distill_partition(rows, cfg, cache_dir, media_root)

The bundled reference teacher (`teacher.reference.server.start_server`) is a deterministic stand-in
for tests and the demo.
"""

from teacher.budget import BudgetExhausted
from teacher.config import DistillConfig, Price, SelectorConfig, TaskConfig


def __getattr__(name: str):
    # The client stack (openai, httpx) loads when a stage distills, not when a config is read.
    if name == "distill_partition":
        from teacher.distill import distill_partition

        return distill_partition
    if name == "BatchPending":
        from teacher.batch import BatchPending

        return BatchPending
    raise AttributeError(name)


__all__ = [
    "BatchPending",
    "BudgetExhausted",
    "DistillConfig",
    "Price",
    "SelectorConfig",
    "TaskConfig",
    "distill_partition",
]
