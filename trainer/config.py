"""The trainer's configuration: one pydantic model, unknown keys fail at start-up."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainConfig(BaseModel):
    """Everything a training run depends on. Defaults train a tiny model on a CPU in seconds.

    The model shape (n_layer, n_head, n_embd, block_size, dropout) follows nanoGPT's names.
    The learning rate warms up linearly for `warmup_steps`, then follows a cosine from `lr`
    down to `min_lr` at `steps` (nanoGPT's schedule). `eval_every`/`checkpoint_every` of 0
    mean "only at the end of the run". `compact_vocab` trains on only the token ids present
    in the shards (see trainer/vocab.py). `whole_docs` packs no row that fits one sequence
    across two (trainer/data.py): for trace rows, whose reply needs its prompt. `dtype="auto"`
    is bf16 autocast on CUDA, fp32 on CPU.
    """

    model_config = ConfigDict(extra="forbid")

    # model
    n_layer: int = Field(2, ge=1)
    n_head: int = Field(2, ge=1)
    n_embd: int = Field(64, ge=1)
    block_size: int = Field(128, ge=2)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # optimisation
    batch_size: int = Field(8, ge=1)
    steps: int = Field(50, ge=0)
    lr: float = Field(3e-3, gt=0)
    min_lr: float = Field(3e-4, ge=0)
    warmup_steps: int = Field(5, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float = Field(1.0, ge=0)  # 0 disables clipping
    seed: int = 0
    # bookkeeping
    log_every: int = Field(10, ge=1)
    eval_every: int = Field(0, ge=0)
    eval_batches: int = Field(8, ge=1)
    checkpoint_every: int = Field(0, ge=0)
    # data and hardware
    compact_vocab: bool = True
    whole_docs: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    num_workers: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _shape_is_consistent(self) -> "TrainConfig":
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        return self
