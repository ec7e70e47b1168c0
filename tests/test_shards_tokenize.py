"""Shard stage: tokenizing curated rows and traces (real files in tmp_path, real codebooks).

The builders here (write_curated, put_media, smooth_png, tone_wav, write_traces, build_lake)
are also used by test_shards_write.py.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from PIL import Image

from distillery.encoding import get_encoding
from distillery.result import conform
from distillery.tables import DOCUMENT, QUARANTINE, REJECT, SHARD_ROW, TRACE
from shards import ShardConfig, decode_text, fit_codebooks, tokenize_partition
from shards.codebooks import load_codebook
from shards.image import decode_codes, encode_images, load_image, psnr
from shards.vocab import layout_problems, range_of


def put_media(lake: Path, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    path = lake / "media" / sha[:2] / sha
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"media/{sha[:2]}/{sha}"


def smooth_array(seed: int, size: int = 32) -> np.ndarray:
    """A smooth synthetic picture: low-frequency colour waves (what a codebook reconstructs well)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    chans = []
    for _ in range(3):
        a, b, p = rng.uniform(0.5, 2.0, 3)
        chans.append(127.5 + 100 * np.sin(2 * np.pi * (a * x + b * y) / 2 + p * 6))
    return np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)


def smooth_png(seed: int, size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(smooth_array(seed, size)).save(buf, format="PNG")
    return buf.getvalue()


def tone_wav(freq: float, seconds: float, sr: int = 8000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def doc(i: int, modality: str, text=None, media=None, meta=None) -> dict:
    return {
        "id": f"{modality}{i:04d}",
        "modality": modality,
        "source": "test",
        "uri": f"mem://{modality}/{i}",
        "license": "CC0-1.0",
        "text": text,
        "media": media,
        "meta": json.dumps(meta or {}),
        "parents": [],
    }


def write_curated(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(conform(pl.DataFrame(rows, schema_overrides={"parents": pl.List(pl.String)}), DOCUMENT), path)
    return path


def write_traces(path: Path, rows: list[dict]) -> Path:
    base = {
        "source": "teacher",
        "task": "qa",
        "sample_index": 0,
        "model": "m",
        "reference": None,
        "verdict_detail": None,
        "finish_reason": "stop",
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "cost": 0.0,
        "cache_key": "k",
    }
    full = [{**base, **r} for r in rows]
    df = pl.DataFrame(full, schema_overrides={"source_ids": pl.List(pl.String), "sample_index": pl.Int32})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(conform(df, TRACE), path)
    return path


TEXTS = ["Hello, world!", "def f(x):\n    return x * 2\n", "naïve café — 東京 ✓", "literal <|endoftext|> stays text"]


def build_lake(tmp: Path, n_images: int = 12, with_audio: bool = True, with_video: bool = True) -> dict:
    """A tiny lake: text + code + smooth images + tones + one video; returns paths and cfg."""
    lake = tmp / "lake"
    rows = [doc(i, "code" if i == 1 else "text", text=t) for i, t in enumerate(TEXTS)]
    rows += [doc(i, "image", media=put_media(lake, smooth_png(i))) for i in range(n_images)]
    if with_audio:
        rows += [doc(i, "audio", media=put_media(lake, tone_wav(220 * (i + 1), 0.5))) for i in range(3)]
    if with_video:
        frames = [{"media": put_media(lake, smooth_png(100 + k)), "t": k * 0.25} for k in range(4)]
        rows.append(
            doc(
                0,
                "video",
                meta={
                    "frames": frames,
                    "audio": {
                        "media": put_media(lake, tone_wav(330, 1.0)),
                        "sample_rate": 8000,
                        "channels": 1,
                        "frames": 8000,
                    }
                    if with_audio
                    else None,
                },
            )
        )
    curated = write_curated(tmp / "curated" / "part-0.parquet", rows)
    cfg = ShardConfig(
        image={"codebook_size": 256, "kmeans_iters": 10},
        audio={"codebook_size": 16, "kmeans_iters": 5},
        val_fraction=0.25,
        threads=2,
    )
    return {"lake": lake, "curated": curated, "rows": rows, "cfg": cfg}


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """One lake + codebooks for the module (tests only add files to it, under new names)."""
    tmp = tmp_path_factory.mktemp("shards-lake")
    built = build_lake(tmp)
    built["spec"] = fit_codebooks([built["curated"]], built["cfg"], built["lake"], tmp / "codebooks")
    return built


def test_vocab_layout_has_no_overlaps_and_media_ranges_follow_text(lake):
    vocab = lake["spec"]["vocab"]
    assert layout_problems(vocab) == []
    assert [r["name"] for r in vocab["ranges"]] == ["text", "special", "image", "audio"]
    assert range_of(vocab, "text") == (0, get_encoding("cl100k_base").max_token_value + 1)
    assert range_of(vocab, "image")[1] == 256 and range_of(vocab, "audio")[1] == 16
    bad = {**vocab, "ranges": vocab["ranges"] + [{"name": "extra", "start": 5, "length": 3}]}
    assert any("inside the previous range" in p for p in layout_problems(bad))


def test_text_round_trip_and_spans(lake):
    res = tokenize_partition(lake["curated"], "curated", lake["spec"], lake["cfg"], lake["lake"])
    s = res.tables["samples"].filter(pl.col("modality").is_in(["text", "code"]))
    assert s.height == len(TEXTS)
    eos = lake["spec"]["vocab"]["special"]["<|eos|>"]
    by_id = {r["id"]: r for r in s.iter_rows(named=True)}
    for i, text in enumerate(TEXTS):
        r = by_id[lake["rows"][i]["id"]]
        assert r["tokens"][-1] == eos
        assert decode_text(r["tokens"][:-1], lake["spec"]) == text
        assert decode_text(r["tokens"], lake["spec"]) == text + "<|eos|>"
        assert r["spans"] == [{"kind": "text", "start": 0, "length": len(r["tokens"]), "loss": True}]
        assert r["n_tokens"] == r["n_text_tokens"] == len(r["tokens"])
        assert r["text_bytes"] == len(text.encode())
        assert r["parents"] == [r["id"]]
    assert 100257 not in by_id[lake["rows"][3]["id"]]["tokens"]  # "<|endoftext|>" in data is not the special id


def test_partition_accounts_for_every_row(lake, tmp_path):
    rows = lake["rows"] + [
        doc(90, "text", text=""),
        doc(91, "image", media="media/00/" + "0" * 64),
        doc(92, "image", media=put_media(lake["lake"], b"not an image")),
        doc(93, "hologram", text="x"),
        doc(94, "audio", media=put_media(lake["lake"], b"RIFF not a wav")),
        doc(95, "video", meta={"duration": 3}),
    ]
    path = write_curated(tmp_path / "curated" / "part-1.parquet", rows)
    res = tokenize_partition(path, "curated", lake["spec"], lake["cfg"], lake["lake"])
    t = res.tables
    assert res.rows_in == len(rows) == t["samples"].height + t["rejects"].height + t["quarantine"].height
    assert t["rejects"]["rule"].to_list() == ["empty_text"]
    assert dict(zip(t["quarantine"]["id"], t["quarantine"]["reason"])) == {
        "image0091": "media_missing",
        "image0092": "image_decode_error",
        "hologram0093": "unknown_modality",
        "audio0094": "audio_decode_error",
        "video0095": "video_no_frames",
    }
    assert set(t["quarantine"]["stage"]) == {"shard"} and set(t["rejects"]["stage"]) == {"shard"}
    assert conform(t["samples"], SHARD_ROW).schema.equals(SHARD_ROW)
    assert conform(t["quarantine"], QUARANTINE).num_rows == 5 and conform(t["rejects"], REJECT).num_rows == 1


def test_image_tokens_reconstruct_above_25_db(lake):
    spec = lake["spec"]
    cb = load_codebook(spec, "image")
    img = load_image(smooth_png(3), 32)
    codes = encode_images(img[None], cb, 4)[0]
    assert psnr(img, decode_codes(codes, cb, 4)) > 25.0
    res = tokenize_partition(lake["curated"], "curated", spec, lake["cfg"], lake["lake"])
    r = res.tables["samples"].filter(pl.col("id") == "image0003").row(0, named=True)
    sp, (start, _) = spec["vocab"]["special"], range_of(spec["vocab"], "image")
    toks = np.array(r["tokens"])
    assert toks[0] == sp["<|boi|>"] and toks[-2] == sp["<|eoi|>"] and toks[-1] == sp["<|eos|>"]
    grid = toks[1:-2].reshape(8, 9)
    assert (grid[:, 8] == sp["<|eor|>"]).all()
    assert (grid[:, :8] - start == codes).all()
    assert r["n_image_tokens"] == r["n_tokens"] == 75


def test_audio_and_video_layout(lake):
    spec = lake["spec"]
    res = tokenize_partition(lake["curated"], "curated", spec, lake["cfg"], lake["lake"])
    sp = spec["vocab"]["special"]
    a = res.tables["samples"].filter(pl.col("id") == "audio0000").row(0, named=True)
    assert a["tokens"][0] == sp["<|boa|>"] and a["tokens"][-2:] == [sp["<|eoa|>"], sp["<|eos|>"]]
    assert len(a["tokens"]) - 3 == 25  # 0.5 s at 50 units/s (hop 20 ms)
    astart, alen = range_of(spec["vocab"], "audio")
    assert all(astart <= t < astart + alen for t in a["tokens"][1:-2])
    v = res.tables["samples"].filter(pl.col("id") == "video0000").row(0, named=True)
    toks = v["tokens"]
    assert toks[0] == sp["<|bov|>"] and toks[-2:] == [sp["<|eov|>"], sp["<|eos|>"]]
    assert toks.count(sp["<|boi|>"]) == 4 and toks.count(sp["<|eof|>"]) == 4
    # 1 s of audio, frames every 0.25 s: each frame is followed by ~12.5 units of its own quarter second
    assert toks.count(sp["<|boa|>"]) == 4
    units = sum(1 for t in toks if astart <= t < astart + alen)
    assert units == 50
    order = [t for t in toks if t in (sp["<|boi|>"], sp["<|boa|>"], sp["<|eof|>"])]
    assert order == [sp["<|boi|>"], sp["<|boa|>"], sp["<|eof|>"]] * 4
    assert v["n_video_tokens"] == v["n_tokens"] == len(toks)


def test_text_only_spec_quarantines_media(tmp_path):
    built = build_lake(tmp_path, n_images=0, with_audio=False, with_video=False)
    spec = fit_codebooks([built["curated"]], built["cfg"], built["lake"], tmp_path / "cb")
    assert spec["codebooks"] == [] and spec["image"] is None
    assert [r["name"] for r in spec["vocab"]["ranges"]] == ["text", "special"]
    path = write_curated(
        tmp_path / "p.parquet", built["rows"] + [doc(0, "image", media=put_media(built["lake"], smooth_png(0)))]
    )
    res = tokenize_partition(path, "curated", spec, built["cfg"], built["lake"])
    assert res.tables["quarantine"]["reason"].to_list() == ["no_image_codebook"]


def test_fit_is_deterministic(tmp_path, lake):
    again = fit_codebooks([lake["curated"]], lake["cfg"], lake["lake"], tmp_path / "again")
    assert [c["sha256"] for c in again["codebooks"]] == [c["sha256"] for c in lake["spec"]["codebooks"]]
    other = fit_codebooks(
        [lake["curated"]], lake["cfg"].model_copy(update={"seed": 7}), lake["lake"], tmp_path / "other"
    )
    assert other["codebooks"][0]["sha256"] != lake["spec"]["codebooks"][0]["sha256"]


def test_trace_layout_puts_loss_on_reasoning_and_answer(lake, tmp_path):
    msgs = json.dumps([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}])
    rows = [
        {
            "id": "t1",
            "source_ids": ["text0000"],
            "sample_index": 0,
            "messages": msgs,
            "reasoning": "2 plus 2 is 4.",
            "answer": "4",
            "verdict": "pass",
        },
        {
            "id": "t2",
            "source_ids": ["text0001"],
            "messages": msgs,
            "reasoning": "guess",
            "answer": "5",
            "verdict": "fail",
        },
        {
            "id": "t3",
            "source_ids": ["text0002"],
            "messages": msgs,
            "reasoning": "r",
            "answer": "4",
            "verdict": "unverified",
        },
        {
            "id": "t4",
            "source_ids": ["text0003"],
            "messages": "{not json",
            "reasoning": "r",
            "answer": "4",
            "verdict": "pass",
        },
    ]
    path = write_traces(tmp_path / "traces.parquet", rows)
    spec, cfg = lake["spec"], lake["cfg"]
    res = tokenize_partition(path, "traces", spec, cfg, lake["lake"])
    t = res.tables
    assert res.rows_in == 4 == t["samples"].height + t["rejects"].height + t["quarantine"].height
    assert t["samples"]["id"].to_list() == ["t1"]
    assert sorted(t["rejects"]["rule"].to_list()) == ["verdict_fail", "verdict_unverified"]
    assert t["quarantine"]["reason"].to_list() == ["bad_messages"]
    r = t["samples"].row(0, named=True)
    toks = r["tokens"]
    assert [(s["kind"], s["loss"]) for s in r["spans"]] == [("prompt", False), ("reasoning", True), ("answer", True)]
    prompt, reasoning, answer = (toks[s["start"] : s["start"] + s["length"]] for s in r["spans"])
    assert decode_text(prompt, spec) == "<|user|>Be brief.\n\nWhat is 2+2?<|assistant|>"
    assert decode_text(reasoning, spec) == "<|think|>2 plus 2 is 4.<|/think|>"
    assert decode_text(answer, spec) == "4<|eos|>"
    assert sum(s["length"] for s in r["spans"]) == len(toks) and r["n_text_tokens"] == len(toks)
    assert r["parents"] == ["text0000", "t1"]
    loose = tokenize_partition(path, "traces", spec, cfg, lake["lake"], verdicts=("pass", "unverified"))
    assert sorted(loose.tables["samples"]["id"].to_list()) == ["t1", "t3"]


def test_split_is_per_id_and_follows_the_source_document(lake, tmp_path):
    cfg = lake["cfg"].model_copy(update={"val_fraction": 0.5})
    res = tokenize_partition(lake["curated"], "curated", lake["spec"], cfg, lake["lake"])
    split = dict(zip(res.tables["samples"]["id"], res.tables["samples"]["split"]))
    assert set(split.values()) == {"train", "val"}
    again = tokenize_partition(lake["curated"], "curated", lake["spec"], cfg, lake["lake"])
    assert dict(zip(again.tables["samples"]["id"], again.tables["samples"]["split"])) == split
    msgs = json.dumps([{"role": "user", "content": "q"}])
    traces = [
        {"id": f"t{i}", "source_ids": [doc_id], "messages": msgs, "reasoning": "r", "answer": "a", "verdict": "pass"}
        for i, doc_id in enumerate(split)
    ]
    res_t = tokenize_partition(write_traces(tmp_path / "t.parquet", traces), "traces", lake["spec"], cfg, lake["lake"])
    for r in res_t.tables["samples"].iter_rows(named=True):
        assert r["split"] == split[r["parents"][0]]


def test_trace_with_an_image_prompt_tokenizes_the_image_without_loss(lake, tmp_path):
    spec = lake["spec"]
    ref = next(r["media"] for r in lake["rows"] if r["id"] == "image0004")
    content = [
        {"type": "text", "text": "Describe the picture."},
        {"type": "image_url", "image_url": {"url": ref}},
        {"type": "text", "text": "One line."},
    ]
    missing = [
        {"type": "text", "text": "And this?"},
        {"type": "image_url", "image_url": {"url": "media/00/" + "0" * 64}},
    ]
    rows = [
        {
            "id": "m1",
            "source_ids": ["image0004"],
            "messages": json.dumps([{"role": "user", "content": content}]),
            "reasoning": "Waves of colour.",
            "answer": "Smooth colour bands.",
            "verdict": "pass",
        },
        {
            "id": "m2",
            "source_ids": ["image0005"],
            "messages": json.dumps([{"role": "user", "content": missing}]),
            "reasoning": "r",
            "answer": "a",
            "verdict": "pass",
        },
    ]
    res = tokenize_partition(write_traces(tmp_path / "mt.parquet", rows), "traces", spec, lake["cfg"], lake["lake"])
    assert res.tables["quarantine"]["reason"].to_list() == ["media_missing"]
    r = res.tables["samples"].row(0, named=True)
    kinds = [(s["kind"], s["loss"]) for s in r["spans"]]
    assert kinds == [("prompt", False), ("image", False), ("prompt", False), ("reasoning", True), ("answer", True)]
    toks = r["tokens"]
    pieces = [toks[s["start"] : s["start"] + s["length"]] for s in r["spans"]]
    assert decode_text(pieces[0], spec) == "<|user|>Describe the picture."
    assert len(pieces[1]) == 74 and pieces[1][0] == spec["vocab"]["special"]["<|boi|>"]
    assert decode_text(pieces[2], spec) == "One line.<|assistant|>"
    assert decode_text(pieces[4], spec) == "Smooth colour bands.<|eos|>"
    assert r["n_image_tokens"] == 74 and r["n_text_tokens"] == len(toks) - 74
    assert sum(s["length"] for s in r["spans"]) == len(toks)
