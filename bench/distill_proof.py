"""Does distillation with reasoning traces help a small student? Teacher -> shards -> student.

The whole pipeline, at toy scale, on the CPU:
  1. problems: 2-digit additions from teacher.reference.problems.arithmetic_problems (deduplicated),
     split into disjoint train and held-out sets;
  2. teacher: the bundled reference teacher (teacher.reference.server.start_server, on loopback) answers
     the train problems through teacher.distill_partition, step by step (reasoning_content),
     verified by the math verifier;
  3. shards: the accepted traces go through shards.tokenize_partition / write_shards twice:
     as they are (prompt | reasoning | answer), and with the reasoning removed (answers alone);
  4. student: the same small transformer is trained from scratch on each, for the same number
     of steps x batch x block tokens (the same compute);
  5. exact match: each student answers the held-out problems greedily; the number after the
     last "Answer:" must equal the true sum.

Why it can work: cl100k writes "57" and "38" as single tokens, so from answers alone the
student must learn a 100 x 100 addition table from a few thousand examples; the teacher's
column-by-column steps turn that into small digit tables that every example exercises.

    python bench/distill_proof.py [--train 5000] [--test 200] [--steps 1000] [--layers 3 --embd 96 ...]
The two students train at the same time in two processes of one torch thread each (on a
busy CPU, 2 OpenMP threads per process ran ~10x slower than 1). Measured on the 2-core dev
box with the defaults: 764 s in all while other jobs kept its load average at 7-9, 517 s at
load ~4 (each student ~180-190 CPU s); both runs gave the same figures (training is
deterministic): exact match 36.5 % with reasoning traces vs 23.5 % on answers alone.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import re
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distillery.encoding import get_encoding  # noqa: E402
from shards import ShardConfig, decode_text, fit_codebooks, tokenize_partition, write_shards  # noqa: E402
from teacher import DistillConfig, TaskConfig, distill_partition  # noqa: E402
from teacher.reference.problems import arithmetic_problems, problems_frame  # noqa: E402
from teacher.reference.server import start_server  # noqa: E402
from trainer import TrainConfig, train  # noqa: E402
from trainer.train import load_model  # noqa: E402
from trainer.vocab import remap_table  # noqa: E402

ANSWER = re.compile(r"Answer:\s*(-?\d+)")


def problems(n_train: int, n_test: int, digits: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Disjoint train / held-out additions (each question appears once)."""
    unique, n = {}, 10 * (n_train + n_test)
    for p in arithmetic_problems(n, seed, digits):
        if " + " in p["question"]:
            unique.setdefault(p["question"], p)
    pool = list(unique.values())
    random.Random(seed).shuffle(pool)
    if len(pool) < n_train + n_test:
        raise SystemExit(f"only {len(pool)} distinct problems; ask for fewer")
    return pool[n_test : n_test + n_train], pool[:n_test]


def teacher_traces(train_problems: list[dict], work: Path) -> pl.DataFrame:
    server = start_server()
    try:
        cfg = DistillConfig(
            base_url=server.url,
            tasks=[TaskConfig(name="arithmetic", template="{text}", verify="math")],
            concurrency=16,
        )
        result = distill_partition(problems_frame(train_problems), cfg, work / "cache", work)
    finally:
        server.stop()
    traces = result.tables["traces"]
    return traces.filter(pl.col("verdict") == "pass")


def shard(traces: pl.DataFrame, work: Path, name: str) -> tuple[Path, dict]:
    """traces -> SHARD_ROW samples -> shards, with the shards stage's own functions."""
    cfg = ShardConfig(threads=2)
    spec = fit_codebooks([], cfg, work, work / "codebooks")  # text only: no media to fit
    traces.write_parquet(work / f"{name}-traces.parquet")
    result = tokenize_partition(work / f"{name}-traces.parquet", "traces", spec, cfg, work)
    result.tables["samples"].write_parquet(work / f"{name}-samples.parquet")
    manifest = write_shards([work / f"{name}-samples.parquet"], spec, cfg, work / f"{name}-shards")
    return work / f"{name}-shards", {"spec": spec, "manifest": manifest, "samples": result.tables["samples"]}


@torch.no_grad()
def exact_match(
    checkpoint: Path, spec: dict, test: list[dict], max_new_tokens: int, batch: int = 100
) -> tuple[float, list[str]]:
    """Greedy answers to `test` in the trace layout <|user|> q <|assistant|> <|think|> ...; share correct."""
    model, ckpt = load_model(checkpoint, "cpu")
    vocab = ckpt["vocab"].numpy()
    remap = remap_table(vocab, spec["vocab"]["size"])
    sp = spec["vocab"]["special"]
    enc = get_encoding(spec["encoding"])
    prompts = [[sp["<|user|>"], *enc.encode(p["question"]), sp["<|assistant|>"], sp["<|think|>"]] for p in test]
    outputs: list[str] = [""] * len(test)
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    eos = int(remap[sp["<|eos|>"]])
    for idx in by_len.values():  # prompts of one length batch together (no padding needed)
        for lo in range(0, len(idx), batch):
            part = idx[lo : lo + batch]
            x = torch.from_numpy(remap[np.array([prompts[i] for i in part])])
            y = model.generate(x, max_new_tokens, temperature=0, stop=eos)
            for i, row in zip(part, y[:, x.size(1) :].numpy()):
                ids = vocab[row].tolist()
                if sp["<|eos|>"] in ids:
                    ids = ids[: ids.index(sp["<|eos|>"])]
                outputs[i] = decode_text(ids, spec)
    correct = 0
    for p, out in zip(test, outputs):
        found = ANSWER.findall(out)
        correct += bool(found) and found[-1] == p["answer"]
    return correct / len(test), outputs


def student(
    name: str,
    shard_dir: Path,
    spec: dict,
    cfg: TrainConfig,
    test: list[dict],
    out: Path,
    threads: int,
    data_tokens: int,
) -> dict:
    """Train one student from scratch and measure it; runs in its own process."""
    torch.set_num_threads(threads)
    t0, c0 = time.perf_counter(), time.process_time()
    tag = f"[{name}]"
    report = train(
        shard_dir,
        cfg,
        out,
        on_log=lambda e: print(
            f"  {tag:24s} step {e['step']:5d}  loss {e['loss']:.3f}  {e['tokens_per_s']:,.0f} tok/s", flush=True
        ),
    )
    t_train = time.perf_counter() - t0
    acc, outs = exact_match(
        Path(report["checkpoint"]), spec, test, max_new_tokens=cfg.block_size - 16 if name.startswith("with") else 40
    )
    return {
        "accuracy": acc,
        "val_loss": report["val_loss_mean"],
        "train_loss": report["train_loss_window"],
        "train_s": t_train,
        "eval_s": time.perf_counter() - t0 - t_train,
        "cpu_s": time.process_time() - c0,
        "epochs": cfg.steps * cfg.batch_size * (cfg.block_size + 1) / data_tokens,
        "examples": [(p["question"], o) for p, o in zip(test[:3], outs[:3])],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=5000, help="training problems sent to the teacher")
    ap.add_argument("--test", type=int, default=200, help="held-out problems")
    ap.add_argument("--digits", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--embd", type=int, default=96)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=6e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per student (1 is fastest on a busy CPU)")
    ap.add_argument("--sequential", action="store_true", help="train the two students one after the other")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cfg = TrainConfig(
        n_layer=args.layers,
        n_head=4,
        n_embd=args.embd,
        block_size=args.block,
        batch_size=args.batch,
        steps=args.steps,
        lr=args.lr,
        min_lr=args.lr / 10,
        warmup_steps=50,
        log_every=100,
        device="cpu",
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_p, test_p = problems(args.train, args.test, args.digits, args.seed)
        traces = teacher_traces(train_p, work)
        print(
            f"teacher: {len(traces)} verified traces for {len(train_p)} train problems "
            f"({time.perf_counter() - t0:.0f} s); held-out: {len(test_p)} problems",
            flush=True,
        )
        variants = {
            "with reasoning traces": traces,
            "answers alone": traces.with_columns(pl.lit("").alias("reasoning")),
        }
        jobs = {}
        for name, tr in variants.items():
            shard_dir, info = shard(tr, work, name.split()[0])
            split = info["manifest"]["totals"]["splits"]["train"]
            print(
                f"[{name}] shards: {split['rows']} train samples, {split['tokens']:,} tokens "
                f"({split['tokens'] / split['rows']:.0f}/sample), e.g.\n  "
                f"{decode_text(info['samples']['tokens'][0].to_list(), info['spec'])!r}",
                flush=True,
            )
            jobs[name] = (
                name,
                shard_dir,
                info["spec"],
                cfg,
                test_p,
                work / f"{name.split()[0]}-run",
                args.threads,
                split["tokens"],
            )
        print(
            f"training two students from scratch, {cfg.steps} steps each "
            f"({'one after the other' if args.sequential else 'in two processes'}) ...",
            flush=True,
        )
        if args.sequential:
            results = {name: student(*job) for name, job in jobs.items()}
        else:
            with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {name: pool.submit(student, *job) for name, job in jobs.items()}
                results = {name: f.result() for name, f in futures.items()}
    print(
        f"\nstudent: {cfg.n_layer} layers, n_embd {cfg.n_embd}, block {cfg.block_size}, batch {cfg.batch_size}, "
        f"lr {cfg.lr}, {cfg.steps} steps each = {cfg.steps * cfg.batch_size * (cfg.block_size + 1):,} tokens "
        f"(same compute), {args.threads} thread(s) each"
    )
    for name, r in results.items():
        print(
            f"\n[{name}] {r['epochs']:.1f} epochs, final train loss {r['train_loss']:.3f}, val loss "
            f"{r['val_loss']:.3f}, train {r['train_s']:.0f} s, answering {r['eval_s']:.0f} s, {r['cpu_s']:.0f} CPU s"
        )
        for q, o in r["examples"]:
            print(f"  {q!r} -> {o[-70:]!r}")
    print()
    for name, r in results.items():
        print(f"exact-match accuracy on {len(test_p)} held-out problems, {name:22s} {r['accuracy']:6.1%}")
    print(f"total time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
