"""A tiny nanoGPT-style trainer over Distillery's Parquet shards.

    from trainer import TrainConfig, train, evaluate, sample
    report = train(shard_dir, TrainConfig(steps=200), out_dir, on_log=print)
    evaluate(report["checkpoint"], shard_dir)       # val loss per span kind, text bits/byte
    sample(report["checkpoint"], "What is 1 + 2?")  # {"tokens", "text", "prompt_tokens"}

Modules: config (TrainConfig), shardset (manifest, row index, row-group decoding), vocab
(compact vocabulary), data (packing + deterministic resumable order), model (the GPT),
checkpoint (atomic save/load), train (loop + evaluation), sample (generation + decoding),
synthetic (shards in the real format for tests and benchmarks), loss_chart (the loss as an
SVG chart for the UI).
"""

from trainer.config import TrainConfig

__all__ = ["TrainConfig", "train", "evaluate", "sample"]


def __getattr__(name: str):
    # torch loads only when training is asked for: the pipeline config imports TrainConfig,
    # and importing torch costs seconds that every other command would pay.
    if name in ("train", "evaluate", "sample"):
        import importlib

        loop = importlib.import_module("trainer.train")
        sampling = importlib.import_module("trainer.sample")
        # Importing a submodule binds its name on the package; rebind the functions over them.
        globals().update(train=loop.train, evaluate=loop.evaluate, sample=sampling.sample)
        return globals()[name]
    raise AttributeError(name)
