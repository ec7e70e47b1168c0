"""One student of bench/distill_proof.py: trained from scratch on an arm's shards with the
bundled trainer, then asked the held-out problems greedily (exact match of the final answer).

Reproducibility. A run's figures must not depend on the machine's load or on how many
students share it, so every student runs in a fresh process with fixed numerics:
  - one intra-op and one inter-op torch thread, and OMP/MKL told the same before torch
    loads (`pin_threads`, called before `import torch`): with N threads a reduction is cut
    into N chunks, and the sums then round differently (2 threads changed the val loss of
    a 30-step run in its 9th digit; over 1000 steps such differences grow into a different
    model -- the recorded figures changed sign that way);
  - the same instruction set on every x86 CPU (AVX2, `PINNED_ENV`) instead of the widest the
    CPU has: torch, MKL and oneDNN pick kernels by CPU, and the kernels round differently
    (the recorded run's machine and today's need not share AVX-512);
  - torch.use_deterministic_algorithms(True), and the seeds of torch, numpy and random set
    from the run's seed (the trainer seeds init and data order from TrainConfig.seed).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

ANSWER = re.compile(r"Answer:\s*(-?\d+)")
# AVX2: every x86 server CPU since 2013 has it, and the dev box's AVX-512 kernels round
# differently (ATEN_CPU_CAPABILITY=avx2 changed a 100-step run's loss in its 5th digit).
PINNED_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorized kernels
    "MKL_CBWR": "AVX2",  # MKL's matrix products (conditional numerical reproducibility)
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN's kernels
}


def pin_threads() -> None:
    """Fix the math libraries' threads and kernels; raises if torch is already loaded (the
    settings would not hold: each student runs in a fresh spawned process for this)."""
    if "torch" in sys.modules:
        raise RuntimeError("pin_threads() must run before torch is imported")
    os.environ.update(PINNED_ENV)


def deterministic(seed: int) -> None:
    """One torch thread each way, deterministic kernels, every RNG seeded."""
    import random

    import numpy as np
    import torch

    torch.set_num_threads(1)
    if torch.get_num_interop_threads() != 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already used in this process: the pool's processes are fresh
            pass
    torch.use_deterministic_algorithms(True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def exact_match(checkpoint: Path, spec: dict, test: list[dict], max_new_tokens: int, batch: int = 100) -> float:
    """Greedy answers to `test` in the trace layout <|user|> q <|assistant|> <|think|> ...; share correct."""
    import numpy as np
    import torch

    from distillery.encoding import get_encoding
    from shards import decode_text
    from trainer.train import load_model
    from trainer.vocab import remap_table

    model, ckpt = load_model(checkpoint, "cpu")
    vocab = ckpt["vocab"].numpy()
    remap = remap_table(vocab, spec["vocab"]["size"])
    sp = spec["vocab"]["special"]
    enc = get_encoding(spec["encoding"])
    prompts = [[sp["<|user|>"], *enc.encode(p["question"]), sp["<|assistant|>"], sp["<|think|>"]] for p in test]
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    eos, correct = int(remap[sp["<|eos|>"]]), 0
    with torch.no_grad():
        for idx in by_len.values():  # prompts of one length batch together (no padding needed)
            for lo in range(0, len(idx), batch):
                part = idx[lo : lo + batch]
                x = torch.from_numpy(remap[np.array([prompts[i] for i in part])])
                y = model.generate(x, max_new_tokens, temperature=0, stop=eos)
                for i, row in zip(part, y[:, x.size(1) :].numpy()):
                    ids = vocab[row].tolist()
                    ids = ids[: ids.index(sp["<|eos|>"])] if sp["<|eos|>"] in ids else ids
                    found = ANSWER.findall(decode_text(ids, spec))
                    correct += bool(found) and found[-1] == test[i]["answer"]
    return correct / len(test)


def student(arm: str, seed: int, shard_dir: Path, train_cfg: dict, test: list[dict], out: Path) -> dict:
    """Train one student (seed = init and data order) on `shard_dir`, measure it; own process."""
    pin_threads()
    deterministic(seed)
    import json

    from trainer import TrainConfig, train

    cfg = TrainConfig(**{**train_cfg, "seed": seed})
    t0, c0 = time.perf_counter(), time.process_time()
    report = train(shard_dir, cfg, out)
    spec = json.loads((Path(shard_dir) / "manifest.json").read_text())["tokenizer"]
    reasoning = arm != "answers"
    acc = exact_match(Path(report["checkpoint"]), spec, test, cfg.block_size - 16 if reasoning else 40)
    return {
        "arm": arm,
        "seed": seed,
        "accuracy": acc,
        "train_loss": report["train_loss_window"],
        "val_loss": report["val_loss_mean"],
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
    }
