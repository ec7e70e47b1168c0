"""A tiny nanoGPT-style trainer over Distillery's Parquet shards.

    from trainer import TrainConfig, train, evaluate, sample
    report = train(shard_dir, TrainConfig(steps=200), out_dir, on_log=print)
    evaluate(report["checkpoint"], shard_dir)       # val loss per span kind, text bits/byte
    sample(report["checkpoint"], "What is 1 + 2?")  # {"tokens", "text", "prompt_tokens"}

Modules: config (TrainConfig), shardset (manifest, row index, row-group decoding), vocab
(compact vocabulary), data (packing + deterministic resumable order), model (the GPT),
checkpoint (atomic save/load), train (loop + evaluation), sample (generation + decoding),
synthetic (shards in the real format for tests and benchmarks).
"""

from trainer.config import TrainConfig
from trainer.sample import sample
from trainer.train import evaluate, train

__all__ = ["TrainConfig", "train", "evaluate", "sample"]
