"""The trainer's loader on real Parquet shards written by the test: masks, media, order, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.data import PackedStream, batch_iterator
from trainer.shardset import KIND_CODE, build_index
from trainer.synthetic import counting_rows, layout, media_rows, write_shards
from trainer.vocab import compact_vocabulary, remap_table

torch.set_num_threads(2)
VOCAB = layout(1000, {"image": 2048})


def stream_for(shard_dir, block_size=32, batch_size=4, seed=0, split="train", shuffle=True, loop=True):
    index = build_index(shard_dir)
    vocab = compact_vocabulary(index)
    remap = remap_table(vocab, index.manifest.vocab_size)
    return PackedStream(index, remap, split, block_size, batch_size, seed, shuffle, loop), vocab


def sequences(batch: dict, vocab: np.ndarray) -> np.ndarray:
    """The packed sequences (B, block_size + 1) of a batch, in original token ids."""
    seq = torch.cat([batch["x"][:, :1], batch["y"]], dim=1).numpy()
    return vocab[seq]


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in ("x", "y", "mask", "kind", "nbytes", "state"))


def test_loss_mask_follows_spans(tmp_path):
    rng = np.random.default_rng(1)
    eos = VOCAB["special"]["<|eos|>"]
    rows = []
    for _ in range(60):
        p, r, a, u = (int(rng.integers(1, 20)) for _ in range(4))
        toks = (
            rng.integers(500, 600, p).tolist()
            + rng.integers(600, 700, r).tolist()
            + rng.integers(700, 800, a).tolist()
            + [eos]
            + rng.integers(800, 900, u).tolist()
        )
        spans = [("prompt", 0, p, False), ("reasoning", p, r, True), ("answer", p + r, a + 1, True)]
        rows.append({"tokens": toks, "spans": spans})  # the trailing 800-899 tokens: no span
    write_shards(tmp_path, rows, VOCAB, rows_per_group=16)
    stream, vocab = stream_for(tmp_path, loop=False)
    n_targets = 0
    for b in stream.batches():
        y, mask, kind = vocab[b["y"].numpy()], b["mask"].numpy(), b["kind"].numpy()
        prompt, reasoning, answer = (y >= 500) & (y < 600), (y >= 600) & (y < 700), (y >= 700) & (y < 800)
        uncovered = (y >= 800) & (y < 900)
        assert not mask[prompt].any() and not mask[uncovered].any()
        assert mask[reasoning].all() and mask[answer].all()
        assert (kind[prompt] == KIND_CODE["prompt"]).all() and (kind[answer] == KIND_CODE["answer"]).all()
        assert (kind[uncovered] == KIND_CODE["none"]).all()
        pad = y == VOCAB["special"]["<|pad|>"]
        assert not mask[pad].any()
        n_targets += prompt.sum() + reasoning.sum() + answer.sum()
    assert n_targets > 0


def test_media_spans_are_never_cut_and_overlong_ones_are_dropped(tmp_path):
    block = 32  # sequences of 33 tokens; image spans are 4..40 tokens, so some cannot fit
    rows = media_rows(120, VOCAB, seed=3)
    write_shards(tmp_path, rows, VOCAB, rows_per_group=32)
    img0 = next(r["start"] for r in VOCAB["ranges"] if r["name"] == "image")
    lengths = [s[2] for r in rows for s in r["spans"] if s[0] == "image"]
    stream, vocab = stream_for(tmp_path, block_size=block, loop=False)
    found, real_tokens = [], 0
    for b in stream.batches():
        for seq in sequences(b, vocab):
            real_tokens += int((seq != VOCAB["special"]["<|pad|>"]).sum())
            is_img = seq >= img0
            # every maximal run of image tokens must be one whole span: header 1000 + m, then m - 1 codes
            edges = np.flatnonzero(np.diff(np.concatenate([[0], is_img.astype(int), [0]])))
            for s, e in zip(edges[::2], edges[1::2]):
                m = int(seq[s] - img0 - 1000)
                assert m == e - s, f"media run of {e - s} tokens cut from a span of {m}"
                assert (seq[s + 1 : e] - img0 < 1000).all()
                found.append(m)
    fits = sorted(m for m in lengths if m <= block + 1)
    assert sorted(found) == fits  # every span that fits a sequence appears once, whole
    plan = stream.plan(0)
    assert plan.media_dropped == len(lengths) - len(fits) > 0
    n_tokens = sum(len(r["tokens"]) for r in rows)
    assert real_tokens == n_tokens - plan.media_tokens_dropped  # nothing else is lost


def test_every_train_token_appears_once_per_epoch(tmp_path):
    rows = counting_rows(200, VOCAB, seed=5, length=(5, 90))
    write_shards(tmp_path, rows, VOCAB, rows_per_group=16, rows_per_file=64)
    stream, vocab = stream_for(tmp_path, block_size=40, loop=False)
    got = np.concatenate([sequences(b, vocab).ravel() for b in stream.batches()])
    got = got[got != VOCAB["special"]["<|pad|>"]]
    want = np.concatenate([r["tokens"] for r in rows if r["split"] == "train"])
    assert np.array_equal(np.bincount(got, minlength=VOCAB["size"]), np.bincount(want, minlength=VOCAB["size"]))


def test_whole_docs_never_cuts_a_row_that_fits_one_sequence(tmp_path):
    rows = counting_rows(200, VOCAB, seed=5, length=(5, 90))
    write_shards(tmp_path, rows, VOCAB, rows_per_group=16, rows_per_file=64)
    index = build_index(tmp_path)
    remap = remap_table(compact_vocabulary(index), index.manifest.vocab_size)
    seq_len = 41
    cuts = {}
    for whole in (False, True):
        plan = PackedStream(index, remap, "train", seq_len - 1, 4, whole_docs=whole).plan(0)
        seq_of = np.repeat(np.arange(plan.n_seq), np.diff(plan.seq_ptr))
        n_eff = index.n_eff[plan.seg_doc]
        fits = n_eff <= seq_len
        cuts[whole] = int((fits & ((plan.seg_start > 0) | (plan.seg_end < n_eff))).sum())
        if whole:  # a longer row's later pieces each start a sequence
            later = np.flatnonzero(plan.seg_start > 0)
            assert (later == plan.seq_ptr[seq_of[later]]).all()
        # every token is placed once
        assert (plan.seg_end - plan.seg_start).sum() == index.n_eff[index.docs("train")].sum()
    assert cuts[False] > 0 and cuts[True] == 0


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_order_does_not_depend_on_the_number_of_workers(tmp_path):
    write_shards(tmp_path, counting_rows(300, VOCAB, seed=2), VOCAB, rows_per_group=16, rows_per_file=64)
    stream, _ = stream_for(tmp_path)
    runs = []
    for workers in (0, 2, 3):
        it = batch_iterator(stream, (0, 0), num_workers=workers)
        runs.append([next(it) for _ in range(14)])
        del it
    for other in runs[1:]:
        assert all(same(a, b) for a, b in zip(runs[0], other))


def test_resuming_from_a_batch_state_gives_the_next_batch(tmp_path):
    write_shards(tmp_path, counting_rows(15, VOCAB, seed=4, val_share=0), VOCAB, rows_per_group=4)
    stream, _ = stream_for(tmp_path, batch_size=3)
    it = stream.batches((0, 0))
    run = [next(it) for _ in range(25)]  # several epochs of this small set
    assert int(run[-1]["state"][0]) >= 2
    for k in (0, 4, 11, 23):
        state = tuple(run[k]["state"].tolist())
        fresh, _ = stream_for(tmp_path, batch_size=3)  # a new process would rebuild everything
        assert same(next(fresh.batches(state)), run[k + 1])


def test_shuffle_is_seeded_and_changes_per_epoch(tmp_path):
    write_shards(tmp_path, counting_rows(200, VOCAB, seed=6), VOCAB, rows_per_group=16)
    a, _ = stream_for(tmp_path, seed=0)
    b, _ = stream_for(tmp_path, seed=0)
    c, _ = stream_for(tmp_path, seed=1)
    first = lambda s, e: s.plan(e).seg_doc.tolist()  # noqa: E731
    assert first(a, 0) == first(b, 0)
    assert first(a, 0) != first(c, 0)
    assert first(a, 0) != first(a, 1)
    assert sorted(set(first(a, 0))) == sorted(set(first(a, 1)))


def test_rows_with_bad_ids_or_unknown_split_are_counted_not_trained(tmp_path):
    rows = counting_rows(20, VOCAB, val_share=0)
    rows[3] = {"tokens": [1, 2, VOCAB["size"] + 5], "spans": [("text", 0, 3, True)]}
    rows[7]["split"] = "test"  # neither train nor val: counted, not used
    write_shards(tmp_path, rows, VOCAB)
    index = build_index(tmp_path)
    assert index.rows_invalid == 1 and index.rows_other_split == 1
    train_docs = index.docs("train").tolist()
    assert 3 not in train_docs and 7 not in train_docs and len(train_docs) == 18


def test_a_shard_dir_without_manifest_is_refused(tmp_path):
    write_shards(tmp_path, counting_rows(5, VOCAB), VOCAB)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(ValueError, match="manifest"):
        build_index(tmp_path)
