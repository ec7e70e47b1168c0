"""The training loop and evaluation on the held-out split.

train(), in named steps read top to bottom: settings (device, seed) -> data (index the
shards) -> vocabulary (compacted) -> build_model (model + AdamW, or restored) -> loop: for
each step the next batch (timed: the data-wait share), train_step (forward under autocast,
masked loss, backward, clip, step) -> eval -> checkpoint (checkpoint_state) -> log.
Logs every `log_every` steps, evaluates every `eval_every`, checkpoints every
`checkpoint_every` and at the end. With resume=True it continues from out_dir's checkpoint
to the bit-identical next batch and loss (model, optimizer, RNG and loader position restored).

Evaluation runs over the "val" rows, packed the same way, in file order: the loss per span
kind (text, reasoning, answer, image, ...) over the targets that carry loss, and text bits
per byte = (sum of loss in nats over text-range targets) / (ln 2 * their text bytes).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from trainer.checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from trainer.completion import row_outcomes
from trainer.config import TrainConfig
from trainer.data import PackedStream, batch_iterator
from trainer.loss_chart import thin
from trainer.model import GPT, GPTConfig
from trainer.shardset import KINDS, ShardIndex, build_index
from trainer.vocab import compact_vocabulary, remap_table


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA by default (matmuls in bf16, reductions and the loss in fp32)."""
    if dtype == "bf16" or (dtype == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr, then cosine decay to cfg.min_lr at cfg.steps (nanoGPT)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    ratio = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.lr - cfg.min_lr)


def check_vocab(index: ShardIndex, remap: np.ndarray) -> None:
    """Raise if the shard dir uses ids the (checkpoint's) vocabulary does not have."""
    unknown = np.flatnonzero(index.seen & (remap < 0))
    if len(unknown):
        raise ValueError(
            f"the shards use {len(unknown)} token ids outside the checkpoint's vocabulary "
            f"(e.g. {unknown[:5].tolist()}): train a new model on these shards instead"
        )


@torch.no_grad()
def run_eval(
    model: GPT,
    index: ShardIndex,
    remap: np.ndarray | None,
    block_size: int,
    batch_size: int,
    max_batches: int | None,
    device: torch.device,
    dtype: str = "auto",
    whole_docs: bool = False,
) -> dict:
    """Loss per span kind and text bits per byte over (the first max_batches batches of) val."""
    stream = PackedStream(index, remap, "val", block_size, batch_size, shuffle=False, loop=False, whole_docs=whole_docs)
    nats = torch.zeros(len(KINDS), dtype=torch.float64)
    count = torch.zeros(len(KINDS), dtype=torch.float64)
    text_nats, text_bytes = 0.0, 0.0
    was_training = model.training
    model.eval()
    for i, b in enumerate(stream.batches()):
        if max_batches is not None and i >= max_batches:
            break
        with autocast(device, dtype):
            logits, _ = model(b["x"].to(device))
        nll = F.cross_entropy(logits.float().flatten(0, 1), b["y"].to(device).flatten(), reduction="none")
        nll = nll.double().cpu()
        m = b["mask"].flatten()
        kind = b["kind"].flatten().long()
        nats += torch.bincount(kind[m], weights=nll[m], minlength=len(KINDS))
        count += torch.bincount(kind[m], minlength=len(KINDS)).double()
        nb = b["nbytes"].flatten().double()
        is_text = m & (nb > 0)
        text_nats += float(nll[is_text].sum())
        text_bytes += float(nb[is_text].sum())
    model.train(was_training)
    per_kind = {KINDS[k]: float(nats[k] / count[k]) for k in range(len(KINDS)) if count[k] > 0}
    total = float(count.sum())
    return {
        "val_loss": per_kind,
        "val_loss_mean": float(nats.sum() / total) if total else None,
        "val_tokens": int(total),
        "text_bpb": text_nats / (math.log(2) * text_bytes) if text_bytes > 0 else None,
    }


def image_codebook(index: ShardIndex, shard_dir: Path) -> tuple[torch.Tensor | None, str]:
    """The image codebook's centroids (k, patch*patch*3), for decoding samples; and a status.

    Read with the shards stage's loader (which checks the file's sha256); the centroids are
    saved in the checkpoint so sampling needs no shard dir.
    """
    spec = index.manifest.raw.get("tokenizer") or {}
    if not spec.get("image") or not any(cb.get("name") == "image" for cb in spec.get("codebooks") or []):
        return None, "absent"
    try:
        from shards.codebook_io import load_codebook

        centroids = load_codebook(spec, "image", shard_dir)
    except (ImportError, OSError, ValueError, KeyError) as exc:
        return None, f"unreadable: {type(exc).__name__}: {exc}"
    return (
        (torch.tensor(np.asarray(centroids, dtype=np.float32)), "saved") if centroids is not None else (None, "absent")
    )


def _manifest_meta(index: ShardIndex) -> str:
    raw = index.manifest.raw
    return json.dumps({k: raw.get(k) for k in ("format", "vocab", "tokenizer", "codebooks")})


# --- the steps of train(), in the order it runs them -----------------------------------------


def settings(cfg: TrainConfig) -> torch.device:
    """The device (TF32 matmuls on CUDA) and the seed every random draw of the run follows."""
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(cfg.seed)
    return device


def vocabulary(index: ShardIndex, cfg: TrainConfig, ckpt: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """(vocabulary, remap table from shard ids): the checkpoint's vocabulary when resuming,
    else the shards' compacted one. Raises if the shards use ids the vocabulary lacks."""
    vocab = ckpt["vocab"].numpy() if ckpt else compact_vocabulary(index, cfg.compact_vocab)
    remap = remap_table(vocab, index.manifest.vocab_size)
    check_vocab(index, remap)
    return vocab, remap


def build_model(
    cfg: TrainConfig, vocab_size: int, device: torch.device, ckpt: dict | None
) -> tuple[GPT, torch.optim.Optimizer, GPTConfig, int, tuple[int, int]]:
    """(model, AdamW, model shape, step, loader state): fresh, or restored from `ckpt` with
    its optimizer, step, loader position and RNG (a shape differing from cfg raises)."""
    gcfg = GPTConfig(vocab_size, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.dropout)
    if ckpt and ckpt["model_args"] != asdict(gcfg):
        raise ValueError(f"cannot resume: checkpoint model {ckpt['model_args']} differs from {asdict(gcfg)}")
    model = GPT(gcfg).to(device)
    opt = model.configure_optimizer(cfg.lr, cfg.weight_decay, device.type)
    step, state = 0, (0, 0)
    if ckpt:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, state = int(ckpt["step"]), tuple(int(v) for v in ckpt["data_state"].tolist())
        set_rng_state(ckpt["rng"], device)
    return model, opt, gcfg, step, state


def train_step(
    fwd: Callable,
    model: GPT,
    opt: torch.optim.Optimizer,
    batch: dict,
    step: int,
    cfg: TrainConfig,
    device: torch.device,
) -> tuple[float, float]:
    """One optimizer step on `batch` at the schedule's lr for `step`; returns (loss, lr)."""
    x, y, mask = (batch[k].to(device, non_blocking=True) for k in ("x", "y", "mask"))
    lr = lr_at(step, cfg)
    for group in opt.param_groups:
        group["lr"] = lr
    with autocast(device, cfg.dtype):
        _, loss = fwd(x, y, mask)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return loss.item(), lr


def checkpoint_state(
    model: GPT,
    opt: torch.optim.Optimizer,
    step: int,
    state: tuple[int, int],
    cfg: TrainConfig,
    gcfg: GPTConfig,
    vocab: np.ndarray,
    index: ShardIndex,
    codebook: torch.Tensor | None,
    device: torch.device,
) -> dict:
    """Everything a resume (or sampling) needs, as saved in checkpoint.pt."""
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": step,
        "data_state": torch.tensor(state, dtype=torch.int64),
        "rng": rng_state(device),
        "config": cfg.model_dump(),
        "model_args": asdict(gcfg),
        "vocab": torch.from_numpy(vocab),
        "manifest": _manifest_meta(index),
        "image_codebook": codebook,
    }


def train(
    shard_dir: Path,
    cfg: TrainConfig,
    out_dir: Path,
    resume: bool = False,
    on_log: Callable[[dict], None] | None = None,
) -> dict:
    """Train a model on `shard_dir`'s train split; write out_dir/checkpoint.pt; return a report.

    The report: steps, train_loss (last step), train_loss_window (mean over the last log
    window), loss_curve ([[step, loss], ...] of this run's steps, thinned: trainer/loss_chart.py),
    val_loss (per span kind), val_loss_mean, text_bpb, tokens_per_s, data_wait_share,
    checkpoint, vocab_size, params, media_spans_dropped, media_tokens_dropped, rows_invalid, rows_other_split,
    image_codebook ("saved" | "absent" | "unreadable: ..."), device, evals (periodic evals),
    row_outcomes ({rows_in, kept, quarantined} over the build's rows) and unusable_rows (a
    quarantine row for each row not used; see trainer/completion.py).
    `on_log` receives {step, loss, lr, tokens_per_s, data_wait_share} every cfg.log_every
    steps and at the last step (plus val_loss_mean and text_bpb on steps that evaluated).
    With resume=True and a checkpoint in out_dir, training continues from it (the model shape
    and vocabulary come from the checkpoint; a mismatching shape in cfg raises ValueError).
    """
    # settings
    ckpt_path = Path(out_dir) / CHECKPOINT_NAME
    device = settings(cfg)

    # data (the shards' index) and the vocabulary, the checkpoint's when resuming
    index = build_index(Path(shard_dir))
    ckpt = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    vocab, remap = vocabulary(index, cfg, ckpt)

    # model (and, when resuming, optimizer, step, loader position, RNG)
    model, opt, gcfg, step, state = build_model(cfg, len(vocab), device, ckpt)
    stream = PackedStream(
        index, remap, "train", cfg.block_size, cfg.batch_size, seed=cfg.seed, whole_docs=cfg.whole_docs
    )
    if len(stream.docs) == 0:
        raise ValueError(f"{shard_dir} has no usable train rows (rows_invalid={index.rows_invalid})")
    fwd = torch.compile(model) if cfg.compile else model
    codebook, codebook_status = image_codebook(index, Path(shard_dir))

    def checkpoint() -> Path:
        return save_checkpoint(
            ckpt_path, checkpoint_state(model, opt, step, state, cfg, gcfg, vocab, index, codebook, device)
        )

    def evaluate_now() -> dict:
        return run_eval(
            model, index, remap, cfg.block_size, cfg.batch_size, cfg.eval_batches, device, cfg.dtype, cfg.whole_docs
        )

    # loop: step, evaluate every eval_every, checkpoint every checkpoint_every, log every log_every
    batches = batch_iterator(stream, state, cfg.num_workers, pin_memory=device.type == "cuda")
    model.train()
    t_start = t_win = time.perf_counter()
    wait_total = wait_win = 0.0
    tokens_total = tokens_win = 0
    first_step, losses_win, evals, losses_all = step, [], [], []
    loss_val = window_loss = float("nan")
    while step < cfg.steps:
        t0 = time.perf_counter()
        batch = next(batches)
        dt = time.perf_counter() - t0
        wait_total, wait_win = wait_total + dt, wait_win + dt
        loss_val, lr = train_step(fwd, model, opt, batch, step, cfg, device)
        step += 1
        state = tuple(int(v) for v in batch["state"].tolist())
        losses_win.append(loss_val)
        losses_all.append(loss_val)
        tokens = batch["x"].numel()
        tokens_total, tokens_win = tokens_total + tokens, tokens_win + tokens

        # eval
        extra = {}
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
            ev = evaluate_now()
            evals.append({"step": step, **ev})
            extra = {"val_loss_mean": ev["val_loss_mean"], "text_bpb": ev["text_bpb"]}
        # checkpoint
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            checkpoint()
        # log
        if step % cfg.log_every == 0 or step == cfg.steps or extra:
            now = time.perf_counter()
            entry = {
                "step": step,
                "loss": sum(losses_win) / len(losses_win),
                "lr": lr,
                "tokens_per_s": tokens_win / max(now - t_win, 1e-9),
                "data_wait_share": wait_win / max(now - t_win, 1e-9),
                **extra,
            }
            window_loss = entry["loss"]
            t_win, wait_win, tokens_win, losses_win = now, 0.0, 0, []
            if on_log is not None:
                on_log(entry)
    elapsed = time.perf_counter() - t_start
    del batches  # stops loader worker processes, if any

    # final checkpoint (unless the loop just wrote it) and eval
    saved = step > first_step and cfg.checkpoint_every and step % cfg.checkpoint_every == 0
    path = ckpt_path if saved else checkpoint()
    final = evaluate_now()
    plan = stream.plan(0)
    outcomes, unusable = row_outcomes(index)
    return {
        "steps": step,
        "steps_this_run": step - first_step,
        "train_loss": loss_val,
        "train_loss_window": window_loss,
        "loss_curve": thin(losses_all, first_step),
        **final,
        "evals": evals,
        "tokens_per_s": tokens_total / elapsed if elapsed > 0 else 0.0,
        "data_wait_share": wait_total / elapsed if elapsed > 0 else 0.0,
        "checkpoint": str(path),
        "vocab_size": len(vocab),
        "params": model.num_params(),
        "media_spans_dropped": plan.media_dropped,
        "media_tokens_dropped": plan.media_tokens_dropped,
        "rows_invalid": index.rows_invalid,
        "rows_other_split": index.rows_other_split,
        "image_codebook": codebook_status,
        "device": str(device),
        "row_outcomes": outcomes,
        "unusable_rows": unusable,
    }


def load_model(checkpoint: Path, device: str = "auto") -> tuple[GPT, dict]:
    """Rebuild the model from a checkpoint; return (model in eval mode, the checkpoint dict)."""
    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint)
    model = GPT(GPTConfig(**ckpt["model_args"])).to(dev)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


def evaluate(checkpoint: Path, shard_dir: Path, max_batches: int | None = None, device: str = "auto") -> dict:
    """Evaluate a checkpoint on `shard_dir`'s val split (all of it unless max_batches is given).

    Returns {val_loss: {kind: nats}, val_loss_mean, val_tokens, text_bpb}. Raises ValueError
    if the shards use token ids the checkpoint's vocabulary lacks.
    """
    model, ckpt = load_model(checkpoint, device)
    index = build_index(Path(shard_dir))
    remap = remap_table(ckpt["vocab"].numpy(), index.manifest.vocab_size)
    check_vocab(index, remap)
    cfg = ckpt["config"]
    dev = next(model.parameters()).device
    whole = cfg.get("whole_docs", False)  # checkpoints from before the option packed with cuts
    return run_eval(model, index, remap, cfg["block_size"], cfg["batch_size"], max_batches, dev, cfg["dtype"], whole)
