"""Shard stage: packing, manifest, verify, show, readers (DuckDB, datasets), determinism."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillery.result import conform
from distillery.tables import SHARD_ROW
from shards import ShardConfig, fit_codebooks, tokenize_partition, write_shards
from shards.codebooks import sha256_file
from shards.show import SampleNotFound, show
from shards.verify import verify
from tests.test_shards_tokenize import build_lake, write_traces


def build_shards(tmp: Path, cfg_update: dict | None = None) -> dict:
    """lake -> codebooks -> samples (curated + traces) -> shards, all under `tmp`."""
    built = build_lake(tmp)
    cfg: ShardConfig = built["cfg"].model_copy(update=cfg_update or {})
    spec = fit_codebooks([built["curated"]], cfg, built["lake"], tmp / "codebooks")
    msgs = json.dumps([{"role": "user", "content": "Why is the sky blue?"}])
    traces = write_traces(
        tmp / "traces" / "part-0.parquet",
        [
            {
                "id": f"tr{i}",
                "source_ids": [f"text000{i}"],
                "messages": msgs,
                "reasoning": "Rayleigh scattering " * (i + 1),
                "answer": "Short wavelengths scatter more.",
                "verdict": "pass",
            }
            for i in range(4)
        ],
    )
    sample_files = []
    for name, path, kind in (("s-curated", built["curated"], "curated"), ("s-traces", traces, "traces")):
        res = tokenize_partition(path, kind, spec, cfg, built["lake"])
        out = tmp / "samples" / f"{name}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(conform(res.tables["samples"], SHARD_ROW), out)
        sample_files.append(out)
    manifest = write_shards(sample_files, spec, cfg, tmp / "shards")
    return {**built, "cfg": cfg, "spec": spec, "samples": sample_files, "manifest": manifest, "dir": tmp / "shards"}


@pytest.fixture(scope="module")
def built_once(tmp_path_factory):
    return build_shards(tmp_path_factory.mktemp("shards-build"))


@pytest.fixture
def built(built_once, tmp_path):
    """A private copy of the module's shard build (tests corrupt it)."""
    shutil.copytree(built_once["dir"], tmp_path / "shards")
    return {**built_once, "manifest": copy.deepcopy(built_once["manifest"]), "dir": tmp_path / "shards"}


def test_manifest_lists_every_file_and_verify_passes(built):
    m, d = built["manifest"], built["dir"]
    assert m == json.loads((d / "manifest.json").read_text())
    assert m["format"] == "distillery-shards/1"
    assert m["vocab"] == built["spec"]["vocab"] and "codebook_dir" not in m["tokenizer"]
    assert {c["name"] for c in m["codebooks"]} == {"image", "audio"}
    assert all((d / c["file"]).is_file() and sha256_file(d / c["file"]) == c["sha256"] for c in m["codebooks"])
    n_samples = sum(pq.ParquetFile(p).metadata.num_rows for p in built["samples"])
    assert m["totals"]["rows"] == n_samples == sum(s["rows"] for s in m["shards"])
    for s in m["shards"]:
        assert s["file"].startswith(s["split"] + "-") and s["sha256"][:16] in s["file"]
        assert s["tokens"] == sum(s["tokens_by_modality"].values())
    assert {s["split"] for s in m["shards"]} == {"train", "val"}
    assert verify(d) == []
    assert not list(d.glob("*.tmp")) and not list(d.glob(".*"))


def test_duckdb_and_datasets_read_the_shards(built, tmp_path):
    files = [str(built["dir"] / s["file"]) for s in built["manifest"]["shards"]]
    con = duckdb.connect()
    rows, tokens, spans = con.execute(
        "select count(*), sum(len(tokens)), sum(len(spans)) from read_parquet(?)", [files]
    ).fetchone()
    assert rows == built["manifest"]["totals"]["rows"] and tokens == built["manifest"]["totals"]["tokens"]
    assert spans == rows + 2 * 4  # one span per curated row, three per trace
    import datasets

    ds = datasets.load_dataset("parquet", data_files={"train": files}, split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == rows
    assert sum(len(t) for t in ds["tokens"]) == tokens
    assert set(ds[0]["spans"][0]) == {"kind", "start", "length", "loss"}


def test_two_builds_are_byte_identical(tmp_path):
    a = build_shards(tmp_path / "a")
    b = build_shards(tmp_path / "b")
    files_a = sorted(p.name for p in a["dir"].iterdir())
    assert files_a == sorted(p.name for p in b["dir"].iterdir())
    for name in files_a:
        assert (a["dir"] / name).read_bytes() == (b["dir"] / name).read_bytes(), name


def test_small_limits_give_many_shards_and_row_groups(built, tmp_path):
    b = build_shards(tmp_path / "small", {"row_group_bytes": 1024, "target_shard_bytes": 4096})
    m = b["manifest"]
    train = [s for s in m["shards"] if s["split"] == "train"]
    assert len(train) >= 2
    assert max(pq.ParquetFile(b["dir"] / s["file"]).metadata.num_row_groups for s in train) >= 2
    assert verify(b["dir"]) == []
    one = built["manifest"]["totals"]
    assert (m["totals"]["rows"], m["totals"]["tokens"]) == (one["rows"], one["tokens"])
    small_ids = duckdb.sql(
        f"select id from read_parquet({[str(b['dir'] / s['file']) for s in m['shards']]}) order by id"
    ).fetchall()
    one_ids = duckdb.sql(
        f"select id from read_parquet({[str(built['dir'] / s['file']) for s in built['manifest']['shards']]}) order by id"
    ).fetchall()
    assert small_ids == one_ids


def _rewrite(built: dict, change) -> str:
    """Rewrite the first train shard with change(rows) and re-sign it in the manifest; return its name."""
    d, m = built["dir"], built["manifest"]
    entry = next(s for s in m["shards"] if s["split"] == "train")
    rows = pq.read_table(d / entry["file"]).to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=SHARD_ROW), d / entry["file"])
    entry["sha256"], entry["bytes"] = sha256_file(d / entry["file"]), (d / entry["file"]).stat().st_size
    (d / "manifest.json").write_text(json.dumps(m))
    return entry["file"]


def test_verify_names_a_flipped_byte(built):
    entry = built["manifest"]["shards"][0]
    path = built["dir"] / entry["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = verify(built["dir"])
    assert any(p.startswith(entry["file"]) and "sha256" in p and "corrupted" in p for p in problems)
    other = built["manifest"]["shards"][1]["file"]
    (built["dir"] / other).unlink()
    (built["dir"] / built["manifest"]["codebooks"][0]["file"]).write_bytes(b"PAR1")
    problems = verify(built["dir"])
    assert f"{other}: listed in the manifest but missing from {built['dir']}" in problems
    assert any("codebook 'image' sha256 differs" in p for p in problems)


def test_verify_names_an_out_of_vocabulary_token(built):
    size = built["manifest"]["vocab"]["size"]

    def change(rows):
        rows[1]["tokens"][2] = size + 5

    file = _rewrite(built, change)
    problems = verify(built["dir"])
    assert problems == [
        f"{file}: row 1 (id {pq.read_table(built['dir'] / file)['id'][1]}): token {size + 5} at position 2 "
        f"is outside the vocabulary [0, {size})"
    ]


def test_verify_names_bad_spans_and_counts(built):
    def change(rows):
        rows[0]["spans"] = [
            {"kind": "text", "start": 0, "length": 3, "loss": True},
            {"kind": "text", "start": 2, "length": rows[0]["n_tokens"], "loss": True},
        ]
        rows[1]["n_tokens"] += 1

    file = _rewrite(built, change)
    problems = verify(built["dir"])
    text = "\n".join(problems)
    assert f"{file}: row 0" in text and "overlap" in text and "is outside the sequence" in text
    assert f"{file}: row 1" in text and "n_tokens is" in text
    assert any("the manifest says" in p and "tokens" in p for p in problems)


def test_show_renders_text_spans_and_images(built, tmp_path):
    out = tmp_path / "show"
    text = show(built["dir"], "tr1", out)
    assert "--- prompt [0," in text and "loss=no" in text and "--- reasoning" in text and "loss=yes" in text
    assert "Why is the sky blue?" in text and "Rayleigh scattering Rayleigh scattering" in text
    img = show(built["dir"], "image0002", out)
    assert "[image 32x32 px ->" in img and len(list(out.glob("image0002-*.png"))) == 1
    vid = show(built["dir"], "video0000", out)
    assert vid.count("[image 32x32 px") == 4 and "[audio:" in vid and "not decodable" in vid
    with pytest.raises(SampleNotFound, match="is not in"):
        show(built["dir"], "nope", out)
