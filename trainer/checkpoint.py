"""Checkpoints: everything needed to continue a run to the bit-identical next step.

A checkpoint is one `torch.save` file (the usual format for model and optimizer state dicts)
holding: the model's and optimizer's state dicts, the step, the loader's position (epoch,
next sequence: see trainer/data.py), the RNG states (torch CPU, and CUDA when used: dropout
draws from them), the run's TrainConfig and model shape as plain dicts, the compact
vocabulary as an int64 tensor, and the manifest's vocab/tokenizer/codebooks sections so
that sampling can decode without the shard dir.

It is written by distillery.atomic (a temporary file in the same directory, flushed to disk
and moved over the old one): a crash leaves the previous checkpoint intact.
Loading uses `weights_only=True`, so a checkpoint can hold tensors and plain data only.
"""

from __future__ import annotations

from pathlib import Path

import torch

from distillery import atomic

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: Path, state: dict) -> Path:
    """Write `state` to `path` atomically and durably (distillery.atomic); return the path."""
    path = Path(path)
    with atomic.open_write(path) as f:
        torch.save(state, f)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by save_checkpoint (tensors and plain data only)."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
