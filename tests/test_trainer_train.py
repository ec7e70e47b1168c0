"""The trainer end to end on small generated shards: learning, exact resume, vocab, eval, sampling."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from trainer import TrainConfig, evaluate, sample, train
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.data import PackedStream
from trainer.model import GPT, GPTConfig
from trainer.sample import decode_images
from trainer.shardset import build_index
from trainer.synthetic import counting_rows, layout, write_shards
from trainer.vocab import remap_table

torch.set_num_threads(2)
VOCAB = layout(1000, {"image": 64})
TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=4, device="cpu")


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    return write_shards(d, counting_rows(300, VOCAB, seed=0), VOCAB, rows_per_group=32, rows_per_file=128)


@pytest.fixture(scope="module")
def trained(shard_dir, tmp_path_factory):
    """One short real training run, shared: (report, on_log entries)."""
    logs = []
    cfg = TrainConfig(**TINY, steps=50, lr=1e-2, warmup_steps=2, log_every=5, eval_batches=4)
    report = train(shard_dir, cfg, tmp_path_factory.mktemp("run"), on_log=logs.append)
    return report, logs


def test_loss_falls(trained):
    report, logs = trained
    assert [e["step"] for e in logs] == list(range(5, 51, 5))
    assert set(logs[0]) >= {"step", "loss", "lr", "tokens_per_s", "data_wait_share"}
    assert logs[-1]["loss"] < 0.5 * logs[0]["loss"]
    # the untrained model is near uniform over the vocabulary; after training val is far below
    assert report["val_loss"]["text"] < 0.5 * math.log(report["vocab_size"])
    assert report["text_bpb"] is not None and report["text_bpb"] > 0
    assert report["steps"] == 50 and 0 <= report["data_wait_share"] < 1


def test_loss_curve_is_every_step_and_draws_as_a_chart(trained):
    """The report's loss_curve has each of the run's steps, agrees with the logged window
    means, and draws as an SVG line whose highest point is the highest loss."""
    import base64
    import re
    import xml.etree.ElementTree as ET

    from trainer.loss_chart import MAX_POINTS, PAD_TOP, loss_markdown, thin

    report, logs = trained
    curve = report["loss_curve"]
    assert [s for s, _ in curve] == list(range(1, 51))
    for entry in logs:  # each log entry is the mean of the steps since the one before
        window = [v for s, v in curve if entry["step"] - 5 < s <= entry["step"]]
        assert entry["loss"] == pytest.approx(sum(window) / len(window))
    svg_b64 = re.search(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", loss_markdown(curve)).group(1)
    svg = ET.fromstring(base64.b64decode(svg_b64))
    ns = "{http://www.w3.org/2000/svg}"
    points = [tuple(map(float, p.split(","))) for p in svg.find(f"{ns}polyline").get("points").split()]
    assert len(points) == len(curve)
    top = min(range(len(points)), key=lambda i: points[i][1])
    assert curve[top][1] == max(v for _, v in curve) and points[top][1] == pytest.approx(PAD_TOP)
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    # a long run is thinned to means of equal runs of steps
    long = thin([float(i % 7) for i in range(5000)], first_step=100)
    assert len(long) <= MAX_POINTS and long[0] == [110, sum(i % 7 for i in range(10)) / 10] and long[-1][0] == 5100


class Crash(Exception):
    pass


def test_resume_continues_bit_identically(shard_dir, tmp_path):
    # dropout > 0 so the restored RNG state matters, not only weights and data position
    cfg = TrainConfig(**TINY, steps=12, dropout=0.1, checkpoint_every=6, log_every=1, warmup_steps=2)

    def crash_at_6(entry):
        if entry["step"] == 6:
            raise Crash

    with pytest.raises(Crash):
        train(shard_dir, cfg, tmp_path / "a", on_log=crash_at_6)
    ckpt = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert int(ckpt["step"]) == 6

    # the checkpoint's loader position yields exactly the 7th batch of an uninterrupted stream
    index = build_index(shard_dir)
    remap = remap_table(ckpt["vocab"].numpy(), index.manifest.vocab_size)
    stream = PackedStream(index, remap, "train", cfg.block_size, cfg.batch_size, seed=cfg.seed)
    it = stream.batches((0, 0))
    seventh = [next(it) for _ in range(7)][-1]
    resumed_first = next(stream.batches(tuple(ckpt["data_state"].tolist())))
    assert torch.equal(seventh["x"], resumed_first["x"]) and torch.equal(seventh["mask"], resumed_first["mask"])

    resumed = []
    train(shard_dir, cfg, tmp_path / "a", resume=True, on_log=resumed.append)
    straight = []  # uninterrupted, and with two loader workers: the batches must not change
    train(shard_dir, cfg.model_copy(update={"num_workers": 2}), tmp_path / "b", on_log=straight.append)
    assert [e["step"] for e in resumed] == list(range(7, 13))
    assert [e["loss"] for e in resumed] == [e["loss"] for e in straight[6:]]
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_holds_the_compact_vocabulary(shard_dir, tmp_path):
    report = train(shard_dir, TrainConfig(**TINY, steps=2), tmp_path / "c")
    vocab = load_checkpoint(report["checkpoint"])["vocab"]
    assert vocab.dtype == torch.int64
    used = set(range(40))  # counting_rows uses text ids 0..39 (and <|eos|>, a special)
    assert set(vocab.tolist()) == used | set(VOCAB["special"].values())
    assert report["vocab_size"] == len(vocab) < VOCAB["size"]
    full = train(shard_dir, TrainConfig(**TINY, steps=2, compact_vocab=False), tmp_path / "f")
    assert full["vocab_size"] == VOCAB["size"]


def test_evaluate_and_sample_from_a_checkpoint(shard_dir, trained):
    report, _ = trained
    again = evaluate(report["checkpoint"], shard_dir, max_batches=4, device="cpu")
    assert again["val_loss"] == report["val_loss"] and again["text_bpb"] == report["text_bpb"]
    out = sample(report["checkpoint"], [5, 6, 7, 8], max_new_tokens=6, temperature=0, device="cpu")
    assert out["prompt_tokens"] == [5, 6, 7, 8]
    assert 1 <= len(out["tokens"]) <= 6 and isinstance(out["text"], str)
    # the model learned to count: greedy decoding continues the sequence for at least a few tokens
    assert out["tokens"][:3] == [9, 10, 11]
    with pytest.raises(ValueError, match="vocabulary"):
        sample(report["checkpoint"], [900], device="cpu")


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"w": torch.ones(3)})
    with pytest.raises((AttributeError, pickle.PicklingError)):  # a lambda cannot be pickled
        save_checkpoint(path, {"w": torch.zeros(3), "bad": lambda: None})
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))  # the old one is intact
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # and no temp file is left


def test_config_rejects_unknown_keys_and_bad_shapes():
    with pytest.raises(ValidationError):
        TrainConfig(n_layers=3)
    with pytest.raises(ValidationError):
        TrainConfig(n_embd=65, n_head=2)
    assert np.isclose(TrainConfig().lr, 3e-3)


def test_sampled_image_blocks_decode_to_pictures(tmp_path):
    v = layout(100, {"image": 4})
    sp, img0 = v["special"], v["ranges"][2]["start"]
    codebook = np.repeat(60.0 * np.arange(4)[:, None], 12, axis=1)  # code k: a 2x2 patch of grey 60k
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(60):
        c = (img0 + rng.integers(0, 4, 4)).tolist()
        toks = [sp["<|boi|>"], c[0], c[1], sp["<|eor|>"], c[2], c[3], sp["<|eor|>"], sp["<|eoi|>"], sp["<|eos|>"]]
        rows.append({"tokens": toks, "spans": [("image", 0, 8, True), ("text", 8, 1, True)], "modality": "image"})
    write_shards(tmp_path / "s", rows, v, image_codebook=codebook, image_grid=2, image_patch=2)
    cfg = TrainConfig(**TINY, steps=40, lr=1e-2, warmup_steps=2)
    report = train(tmp_path / "s", cfg, tmp_path / "run")
    assert report["image_codebook"] == "saved"
    ckpt = load_checkpoint(report["checkpoint"])
    meta = json.loads(ckpt["manifest"])
    block = [sp["<|boi|>"], img0 + 1, img0 + 2, sp["<|eor|>"], img0 + 3, img0, sp["<|eor|>"], sp["<|eoi|>"]]
    images, errors = decode_images(block + [sp["<|boi|>"], img0, sp["<|eoi|>"]], meta, ckpt["image_codebook"].numpy())
    assert len(images) == 1 and images[0].shape == (4, 4, 3) and len(errors) == 1  # the second block is too short
    assert [int(images[0][y, x, 0]) for y, x in ((0, 0), (0, 2), (2, 0), (2, 2))] == [60, 120, 180, 0]
    out = sample(
        report["checkpoint"],
        [sp["<|boi|>"]],
        max_new_tokens=12,
        temperature=0,
        device="cpu",
        image_dir=tmp_path / "png",
    )
    assert len(out["images"]) == 1 and out["images"][0].shape == (4, 4, 3)  # it learned the block layout
    assert all(Path(f).exists() for f in out["image_files"])


def test_cached_generation_equals_recomputing_the_context():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=2, n_embd=16)).eval()
    x = torch.randint(0, 50, (3, 5))
    cached = model.generate(x, 20, temperature=0)  # 5 + 20 <= 32: key/value cache
    recomputed = model.generate(x, 30, temperature=0)[:, :25]  # 35 > 32: full recompute each step
    assert torch.equal(cached, recomputed)
