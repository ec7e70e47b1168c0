"""Loader throughput against the trainer's consumption, both measured here on this CPU.

Writes synthetic shards in the real format (Zipf-distributed text ids over cl100k's range,
some rows with image spans, trace-like rows with prompt spans), then measures:
  * index: build_index over the shard dir (one pass, done once per run);
  * loader: tokens/s of packed batches (TrainConfig's batch_size x block_size), single
    process, including each epoch's packing plan (the per-document Python loop in pack());
  * training: tokens/s of train() steps with the default TrainConfig on the CPU, with 1 and
    with 2 torch threads; the faster is the reference (on a busy machine 2 OpenMP threads
    can be far slower than 1), so the ratio is the conservative one.
Goal: loader >= 20x training, so data never starves the model. Prints both and the ratio.

    python bench/loader.py [--rows 5000] [--steps 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer import TrainConfig, train  # noqa: E402
from trainer.data import PackedStream  # noqa: E402
from trainer.shardset import build_index  # noqa: E402
from trainer.synthetic import layout, write_shards  # noqa: E402
from trainer.vocab import compact_vocabulary, remap_table  # noqa: E402


def synthetic_rows(n: int, vocab: dict, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    n_text = vocab["ranges"][0]["length"]
    img0 = next(r["start"] for r in vocab["ranges"] if r["name"] == "image")
    eos = vocab["special"]["<|eos|>"]
    rows = []
    for i in range(n):
        k = int(rng.integers(20, 600))
        text = np.minimum(rng.zipf(1.5, k) - 1, n_text - 1)
        kind = i % 10
        if kind == 0:  # an image row: text, a 64-token image span, text
            img = img0 + rng.integers(0, 1024, 64)
            toks = np.concatenate([text[:10], img, text[10:], [eos]])
            spans = [("text", 0, 10, True), ("image", 10, 64, True), ("text", 74, k - 10 + 1, True)]
        elif kind == 1:  # a trace-like row: prompt without loss, then the answer
            toks = np.concatenate([text, [eos]])
            spans = [("prompt", 0, k // 3, False), ("answer", k // 3, k - k // 3 + 1, True)]
        else:
            toks = np.concatenate([text, [eos]])
            spans = [("text", 0, k + 1, True)]
        rows.append({"tokens": toks, "spans": spans, "split": "val" if i % 50 == 0 else "train", "text_bytes": 4 * k})
    return rows


def loader_tokens_per_s(shard_dir: Path, cfg: TrainConfig, min_tokens: int) -> tuple[float, int]:
    index = build_index(shard_dir)
    vocab = compact_vocabulary(index, cfg.compact_vocab)
    remap = remap_table(vocab, index.manifest.vocab_size)
    stream = PackedStream(index, remap, "train", cfg.block_size, cfg.batch_size, cfg.seed)
    t0, tokens = time.perf_counter(), 0
    for batch in stream.batches((0, 0)):  # includes the plans of each epoch it enters
        tokens += batch["x"].numel()
        if tokens >= min_tokens:
            break
    return tokens / (time.perf_counter() - t0), len(vocab)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=15)
    args = ap.parse_args()
    cfg = TrainConfig(steps=args.steps, device="cpu", log_every=5)
    with tempfile.TemporaryDirectory() as tmp:
        shard_dir = Path(tmp) / "shards"
        vocab = layout(100277, {"image": 1024})
        rows = synthetic_rows(args.rows, vocab)
        write_shards(shard_dir, rows, vocab, rows_per_group=1024, rows_per_file=8192)
        n_tokens = sum(len(r["tokens"]) for r in rows)
        t0 = time.perf_counter()
        index = build_index(shard_dir)
        t_index = time.perf_counter() - t0
        print(f"shards: {args.rows} rows, {n_tokens:,} tokens, {len(index.groups)} row groups")
        print(f"index:    {t_index:.2f} s  ({n_tokens / t_index:,.0f} tokens/s, once per run)")

        loader, n_vocab = loader_tokens_per_s(shard_dir, cfg, min_tokens=2 * n_tokens)
        print(
            f"loader:   {loader:,.0f} tokens/s  (batch {cfg.batch_size} x block {cfg.block_size}, "
            f"2 epochs incl. packing plans, 1 process)"
        )

        speeds = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            logs = []
            train(shard_dir, cfg, Path(tmp) / f"run{threads}", on_log=logs.append)
            steady = [e["tokens_per_s"] for e in logs[1:]] or [e["tokens_per_s"] for e in logs]
            speeds[threads] = statistics.median(steady)
            print(
                f"training: {speeds[threads]:,.0f} tokens/s with {threads} thread(s)  (default TrainConfig: "
                f"{cfg.n_layer} layers, n_embd {cfg.n_embd}, batch {cfg.batch_size} x block {cfg.block_size}, "
                f"compact vocab {n_vocab:,} ids; median of log windows after the first)"
            )
        training = max(speeds.values())
        ratio = loader / training
        print(f"ratio loader/training: {ratio:.1f}x  (goal >= 20x: {'met' if ratio >= 20 else 'NOT met'})")


if __name__ == "__main__":
    main()
