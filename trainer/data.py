"""The loader: packs shard rows into fixed-length training sequences, deterministically.

Packing. Rows (documents, each ending in `<|eos|>`) are laid end to end into sequences of
block_size + 1 tokens (inputs are tokens[:-1], targets tokens[1:]). A sequence boundary may
fall inside text but never inside a media span (image / audio / video tokens are one unit):
  * a document whose media span would be cut, and whose rest fits in one sequence, starts a
    new sequence (the current one is padded, padding carries no loss);
  * a document longer than a sequence is split, only at text positions (before the span);
  * a media span longer than block_size + 1 cannot fit anywhere: it is dropped and counted;
  * with whole_docs, no document that fits in one sequence is cut at all: it starts a new
    sequence like a media span would. For instruction or trace rows (a masked prompt, then
    the reply that depends on it) a cut leaves the reply's second half without its prompt,
    loss the model cannot learn from: 101-token traces packed into 129-token sequences lost
    their prompt in about three of four rows (bench/distill_proof.py).
The loss mask comes from the shard's spans: a target carries loss iff its span says so
(prompts, uncovered tokens and padding carry none).

Order. Megatron-LM's idea: the order is precomputed, not sampled on the fly. Epoch e's
document order is a permutation seeded by (seed, e): row groups in a random order and the
documents within each row group in a random order (two levels, so a worker streams one row
group at a time instead of seeking across all files). Packing that order gives the epoch's
plan: sequence k = a list of (document, start, end) segments. The stream position is then
just (epoch, next sequence), two integers, and the same position always yields the same
batch. Batch i goes to loader worker i % num_workers and torch's DataLoader returns workers'
batches round-robin, so the batches come out in the same order for any number of workers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from trainer.shardset import GroupData, ShardIndex, load_group

GROUP_CACHE = 4  # decoded row groups each worker keeps; consecutive batches share groups


@dataclass
class Plan:
    """One epoch's packing: sequence k is segments seq_ptr[k]:seq_ptr[k+1]."""

    seq_ptr: np.ndarray
    seg_doc: np.ndarray
    seg_start: np.ndarray
    seg_end: np.ndarray
    media_dropped: int  # media spans longer than a sequence, dropped
    media_tokens_dropped: int

    @property
    def n_seq(self) -> int:
        return len(self.seq_ptr) - 1


def epoch_order(index: ShardIndex, docs: np.ndarray, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The documents of one epoch in order: row groups shuffled, then docs within each group."""
    if not shuffle:
        return docs
    rng = np.random.default_rng([seed, epoch])
    group_rank = rng.permutation(len(index.groups))
    within = rng.random(len(docs))
    return docs[np.lexsort((within, group_rank[index.doc_group[docs]]))]


def pack(index: ShardIndex, order: np.ndarray, seq_len: int, whole_docs: bool = False) -> Plan:
    """Greedily pack documents (in `order`) into sequences of seq_len tokens (whole_docs: see
    the module docstring).

    The loop runs once per document and epoch over plain integers (the tokens themselves are
    never touched here); bench/loader.py measures it inside the loader's throughput.
    """
    n_eff = index.n_eff.tolist()
    mptr, ms, me = index.media_ptr.tolist(), index.media_start.tolist(), index.media_end.tolist()
    seg_doc, seg_s, seg_e, seq_ptr = [], [], [], [0]
    fill, dropped, dropped_tok = 0, 0, 0
    for d in order.tolist():
        n, pos = n_eff[d], 0
        spans = list(zip(ms[mptr[d] : mptr[d + 1]], me[mptr[d] : mptr[d + 1]]))
        while pos < n:
            room = seq_len - fill
            if n - pos <= room:  # the rest of the document fits
                seg_doc.append(d), seg_s.append(pos), seg_e.append(n)
                fill += n - pos
                pos = n
                break
            cut = pos + room
            span = next(((s, e) for s, e in spans if s < cut < e), None)
            if whole_docs and fill > 0 and n - pos <= seq_len:  # keep it whole: a new sequence
                fill = seq_len
            elif span is None:  # the boundary falls in text: cut there
                seg_doc.append(d), seg_s.append(pos), seg_e.append(cut)
                pos, fill = cut, seq_len
            elif fill > 0 and n - pos <= seq_len:  # would cut media; the rest fits a new sequence
                fill = seq_len
            elif span[0] > pos:  # too long anyway: cut at the text boundary before the span
                seg_doc.append(d), seg_s.append(pos), seg_e.append(span[0])
                pos, fill = span[0], seq_len
            elif fill > 0:  # the span starts here and does not fit the rest of this sequence
                fill = seq_len
            else:  # an empty sequence cannot hold it: the span is longer than a sequence
                dropped += 1
                dropped_tok += span[1] - span[0]
                pos = span[1]
            if fill == seq_len:
                seq_ptr.append(len(seg_doc))
                fill = 0
        if fill == seq_len:
            seq_ptr.append(len(seg_doc))
            fill = 0
    if fill > 0:
        seq_ptr.append(len(seg_doc))
    arr = lambda xs: np.array(xs, dtype=np.int64)  # noqa: E731
    return Plan(arr(seq_ptr), arr(seg_doc), arr(seg_s), arr(seg_e), dropped, dropped_tok)


class PackedStream:
    """Batches of packed sequences from one split, addressed by a (epoch, sequence) state.

    `batches(state)` yields dicts of tensors: x, y (B, T) int64 compact ids; mask (B, T) bool
    (target carries loss); kind (B, T) int8 (trainer.shardset.KINDS code of the target's span);
    nbytes (B, T) float32 (text bytes of the target); state (2,) int64, the position after this
    batch. With `loop=False` the stream ends after one epoch (the last batch may be short).
    """

    def __init__(
        self,
        index: ShardIndex,
        remap: np.ndarray | None,
        split: str,
        block_size: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        loop: bool = True,
        whole_docs: bool = False,
    ):
        self.index, self.remap, self.split = index, remap, split
        self.seq_len, self.batch_size = block_size + 1, batch_size
        self.seed, self.shuffle, self.loop, self.whole_docs = seed, shuffle, loop, whole_docs
        self.docs = index.docs(split)
        pad = index.manifest.pad
        self.pad = int(remap[pad]) if remap is not None else pad
        eos = index.manifest.eos
        self.eos = int(remap[eos]) if remap is not None else eos
        self._plans: OrderedDict[int, Plan] = OrderedDict()
        self._groups: OrderedDict[int, GroupData] = OrderedDict()

    def plan(self, epoch: int) -> Plan:
        if epoch not in self._plans:
            order = epoch_order(self.index, self.docs, self.seed, epoch, self.shuffle)
            self._plans[epoch] = pack(self.index, order, self.seq_len, self.whole_docs)
            while len(self._plans) > 2:
                self._plans.popitem(last=False)
        return self._plans[epoch]

    def _slots(self, state: tuple[int, int]) -> Iterator[tuple[list[tuple[int, int, int]], tuple[int, int]]]:
        """Each batch as (epoch, first seq, end seq) parts, with the state after it."""
        epoch, seq = state
        if self.plan(epoch).n_seq == 0:
            if len(self.docs):
                raise ValueError(f"the {self.split} split has no usable tokens (all media spans too long?)")
            return
        while True:
            parts, need = [], self.batch_size
            while need:
                n_seq = self.plan(epoch).n_seq
                if seq >= n_seq:
                    if not self.loop:
                        break
                    epoch, seq = epoch + 1, 0
                    continue
                take = min(need, n_seq - seq)
                parts.append((epoch, seq, seq + take))
                seq, need = seq + take, need - take
            if not parts:
                return
            yield parts, (epoch, seq)
            if need:  # loop=False and the epoch ran out
                return

    def batches(self, state: tuple[int, int] = (0, 0), worker: int = 0, n_workers: int = 1) -> Iterator[dict]:
        """Yield this worker's share (every n_workers-th batch) of the stream from `state`."""
        for i, (parts, after) in enumerate(self._slots(state)):
            if i % n_workers == worker:
                yield self._materialize(parts, after)

    def _group(self, g: int) -> GroupData:
        if g not in self._groups:
            self._groups[g] = load_group(self.index, g, self.remap)
            while len(self._groups) > GROUP_CACHE:
                self._groups.popitem(last=False)
        return self._groups[g]

    def _materialize(self, parts: list[tuple[int, int, int]], after: tuple[int, int]) -> dict:
        n = sum(e - s for _, s, e in parts)
        L = self.seq_len
        tok = np.full((n, L), self.pad, dtype=np.int64)
        loss = np.zeros((n, L), dtype=bool)
        kind = np.zeros((n, L), dtype=np.int8)
        nbytes = np.zeros((n, L), dtype=np.float32)
        row = 0
        for epoch, s0, s1 in parts:
            p = self.plan(epoch)
            for k in range(s0, s1):
                col = 0
                for j in range(p.seq_ptr[k], p.seq_ptr[k + 1]):
                    d, a, b = int(p.seg_doc[j]), int(p.seg_start[j]), int(p.seg_end[j])
                    g = int(self.index.doc_group[d])
                    gd = self._group(g)
                    o = int(gd.offsets[d - self.index.group_first[g]])
                    ln = int(self.index.length[d])
                    m = min(b, ln) - a  # tokens from the row itself
                    sl = slice(o + a, o + a + m)
                    tok[row, col : col + m] = gd.tokens[sl]
                    loss[row, col : col + m] = gd.loss[sl]
                    kind[row, col : col + m] = gd.kind[sl]
                    nbytes[row, col : col + m] = gd.nbytes[sl]
                    col += m
                    if b > ln:  # the appended <|eos|>: it ends the row's last span
                        tok[row, col] = self.eos
                        loss[row, col] = gd.loss[o + ln - 1]
                        kind[row, col] = gd.kind[o + ln - 1]
                        col += 1
                row += 1
        return {
            "x": torch.from_numpy(tok[:, :-1].copy()),
            "y": torch.from_numpy(tok[:, 1:].copy()),
            "mask": torch.from_numpy(loss[:, 1:].copy()),
            "kind": torch.from_numpy(kind[:, 1:].copy()),
            "nbytes": torch.from_numpy(nbytes[:, 1:].copy()),
            "state": torch.tensor(after, dtype=torch.int64),
        }


class _WorkerStream(IterableDataset):
    """Adapter to torch's DataLoader: each worker takes every n-th batch of the same stream."""

    def __init__(self, stream: PackedStream, state: tuple[int, int]):
        self.stream, self.state = stream, state

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        w, n = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.stream.batches(self.state, w, n)


def batch_iterator(
    stream: PackedStream, state: tuple[int, int] = (0, 0), num_workers: int = 0, pin_memory: bool = False
) -> Iterator[dict]:
    """Iterate the stream's batches from `state`, in loader worker processes when num_workers > 0."""
    if num_workers == 0:
        return stream.batches(state)
    loader = DataLoader(
        _WorkerStream(stream, state),
        batch_size=None,  # the stream already yields whole batches
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4,
        persistent_workers=False,
        # its own generator: the loader draws worker seeds from it, not from torch's global
        # RNG, which dropout uses (otherwise the worker count would change the training run)
        generator=torch.Generator().manual_seed(0),
    )
    return iter(loader)
