"""Secrets planted in a text file, a code file, a repository file and the metadata of a PNG, a
JPEG and a WAV never reach the teacher, nor the curated, traces or shards Parquet, nor the
lake's media store (issue 14's acceptance test); gather keeps the text plants in `documents`
unless `gather.redact`, and never keeps media metadata.

The user's path: ONE `distillery run CONFIG --stages gather,curate,distill,shard` as a
subprocess for the module, no PREFECT_API_URL (Prefect's temporary local server), from the
run's own folder, against a reference teacher on loopback that records every request body.
Bodies are scanned as JSON text and with their base64 image/audio payloads decoded; Parquet
is scanned as decoded rows (shard tokens decoded back to text), never as raw bytes, since
Parquet pages are compressed.

Plants come from planter fixtures listed in PLANTERS: each writes its files under the run's
folder and returns a `Plants` (tests/secret_plants.py: the source entries to add to the config,
the values that must never leave curate, and a marker that proves its documents reached the
teacher). A new kind of plant is one more fixture and one more name in PLANTERS.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from distillery.lake import Lake
from distillery.sql import query
from shards.show import decode_text
from tests.media_builders import AWS_KEY, PLANTED, make_jpeg, make_png, make_wav
from tests.recording_teacher import RecordingTeacher
from tests.secret_plants import PROSE, Plants, make_secrets, secret_block

REPO = Path(__file__).resolve().parents[1]
PLANTERS = ["text_plants", "code_plants", "repo_file_plants", "media_plants"]


@pytest.fixture(scope="module")
def e2e_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("secrets_e2e")


@pytest.fixture(scope="module")
def text_plants(e2e_root) -> Plants:
    rng = random.Random(1)
    block, values = secret_block(rng, make_secrets(rng), "text")
    marker = "The garden notes were typed up by the volunteers"
    folder = e2e_root / "notes"
    folder.mkdir()
    (folder / "ops-notes.txt").write_text(f"{marker}.\n\n{PROSE}\n\nThe settings we use:\n{block}")
    return Plants(
        sources=[{"name": "notes", "kind": "files", "paths": ["notes/*.txt"]}],
        values=values,
        marker=marker,
        exempt_sources=["notes"],
        tasks=[{"name": "qa", "template": "qa_from_passage", "verify": "none", "selector": {"sources": ["notes"]}}],
    )


@pytest.fixture(scope="module")
def _repo(e2e_root) -> Path:
    repo = e2e_root / "service"
    (repo / "app").mkdir(parents=True)
    (repo / "deploy").mkdir()
    return repo


@pytest.fixture(scope="module")
def code_plants(_repo) -> Plants:
    rng = random.Random(2)
    block, values = secret_block(rng, make_secrets(rng), "code")
    marker = "def build_client(timeout):"
    body = "\n".join(f"# {line}" for line in block.split("\n"))  # the secrets as comments in a module
    (_repo / "app" / "settings.py").write_text(
        f'"""Settings of the billing service."""\n\nimport os\n\n\n{marker}\n    return {{"timeout": timeout}}\n\n\n{body}\n'
    )
    return Plants(
        sources=[{"name": "service", "kind": "repo", "url_or_path": "service", "repo_record": False}],
        values=values,
        marker=marker,
        tasks=[
            {"name": "code", "template": "explain_improve_code", "verify": "none", "selector": {"modalities": ["code"]}}
        ],
    )


@pytest.fixture(scope="module")
def repo_file_plants(_repo) -> Plants:
    rng = random.Random(3)
    block, values = secret_block(rng, make_secrets(rng), "repo")
    marker = "Deployment notes for the billing service"
    (_repo / "deploy" / "NOTES.md").write_text(f"# {marker}\n\n{block}\n")
    return Plants(sources=[], values=values, marker=marker)  # gathered with the repository above


@pytest.fixture(scope="module")
def media_plants(e2e_root) -> Plants:
    """A PNG (tEXt, zTXt, iTXt: e-mails, an AWS key), a JPEG (EXIF Artist and UserComment, XMP:
    e-mails) and a WAV (LIST/INFO comment: an e-mail and the AWS key; an id3 chunk: an e-mail),
    built by tests/media_builders.py's builders, and tasks that send them to the teacher.
    The custom templates name the file's uri, so the folder's name marks these requests."""
    folder = e2e_root / "media-plants"
    (folder / "img").mkdir(parents=True)
    (folder / "au").mkdir()
    make_png(folder / "img" / "tagged.png")
    make_jpeg(folder / "img" / "tagged.jpg")
    make_wav(folder / "au" / "tagged.wav")
    kinds = ("png_text", "png_ztxt", "jpeg_artist", "jpeg_comment", "jpeg_xmp", "wav_info", "wav_id3")
    values = {f"media/{k}": PLANTED[k] for k in kinds} | {"media/aws_key": AWS_KEY}
    return Plants(
        sources=[
            {"name": "pictures", "kind": "images", "paths": ["media-plants/img/*"]},
            {"name": "recordings", "kind": "audio", "paths": ["media-plants/au/*"]},
        ],
        values=values,
        marker="media-plants",
        in_documents=False,
        tasks=[
            {
                "name": "describe",
                "template": "Describe the picture {uri} in detail.",
                "verify": "none",
                "selector": {"modalities": ["image"]},
            },
            {
                "name": "listen",
                "template": "Transcribe the recording {uri}, then summarize it.",
                "verify": "none",
                "selector": {"modalities": ["audio"]},
            },
        ],
    )


def run_cli(root: Path, cfg: dict, stages: str, name: str) -> subprocess.CompletedProcess:
    """`distillery run` as a user runs it: no PREFECT_API_URL, a fresh PREFECT_HOME, from `root`."""
    cfg_path = root / f"{name}.yaml"
    cfg_path.write_text(json.dumps(cfg))  # JSON is YAML
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        PYTHONPATH=str(REPO),
        DISTILLERY_RUN_DIR=str(root / f"run-{name}"),
        PREFECT_HOME=str(root / f"prefect-{name}"),
        DISTILLERY_TEACHER_API_KEY="sk-test-not-a-real-key",
    )
    out = subprocess.run(
        [sys.executable, "-m", "distillery.cli", "run", str(cfg_path), "--stages", stages],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out


def _all_plants(request) -> list[Plants]:
    return [request.getfixturevalue(name) for name in PLANTERS]


def _config(root: Path, plants: list[Plants], lake: str, teacher_url: str = "http://127.0.0.1:9/v1", **extra) -> dict:
    return {
        "lake": str(root / lake),
        "base_dir": str(root),
        "sources": [s for p in plants for s in p.sources],
        "curate": {"web_rules_exempt_sources": [s for p in plants for s in p.exempt_sources]},
        "distill": {
            "base_url": teacher_url,
            "timeout_s": 10,
            "max_retries": 1,
            "backoff_base_s": 0,
            "tasks": [t for p in plants for t in p.tasks],
        },
        "run": {"partition_rows": 8, "workers": 2},
        **extra,
    }


def _decoded_rows(folder: Path, table: str) -> list[str]:
    """Every row of every `table-*.parquet` file under `folder`, decoded to JSON text."""
    rows = []
    for f in sorted(folder.rglob(f"{table}-*.parquet")):
        rows += [json.dumps(r, default=str) for r in pq.read_table(f).to_pylist()]
    return rows


def _payloads(body: dict) -> dict[str, list[bytes]]:
    """The image and audio bytes of one chat request, decoded from their base64 (data URI) form."""
    out: dict[str, list[bytes]] = {"image": [], "audio": []}
    for message in body.get("messages", []):
        for part in message["content"] if isinstance(message["content"], list) else []:
            if part["type"] == "image_url":
                out["image"].append(base64.b64decode(part["image_url"]["url"].split("base64,", 1)[1]))
            elif part["type"] == "input_audio":
                out["audio"].append(base64.b64decode(part["input_audio"]["data"]))
    return out


def _found_in_bytes(values: dict[str, str], data: bytes) -> list[str]:
    """Keys of the values in `data` as UTF-8 or UTF-16 of either byte order (EXIF UserComment is UTF-16)."""
    return sorted(
        k for k, v in values.items() if any(v.encode(enc) in data for enc in ("utf-8", "utf-16-le", "utf-16-be"))
    )


def _found_in_media(values: dict[str, str], data: bytes) -> list[str]:
    """Keys of the values in a media file: its bytes, and for an image also the text chunks and
    EXIF Pillow reads back (zTXt and compressed iTXt hide their text from a byte scan)."""
    found = set(_found_in_bytes(values, data))
    if not data.startswith(b"RIFF"):
        with Image.open(io.BytesIO(data)) as im:
            meta = json.dumps({str(k): str(v) for k, v in im.info.items()}) + str(dict(im.getexif()))
        found |= {k for k, v in values.items() if v in meta}
    return sorted(found)


@pytest.fixture(scope="module")
def e2e_run(request, e2e_root):
    """The module's one default-path run of gather, curate, distill and shard."""
    plants = _all_plants(request)
    teacher = RecordingTeacher()
    try:
        run_cli(e2e_root, _config(e2e_root, plants, "lake", teacher.url), "gather,curate,distill,shard", "e2e")
    finally:
        teacher.stop()
    values = {k: v for p in plants for k, v in p.values.items()}
    bodies = [b.decode("utf-8", "replace") for b in teacher.bodies]
    payloads: dict[str, list[bytes]] = {"image": [], "audio": []}
    for b in bodies:
        for kind, data in _payloads(json.loads(b)).items():
            payloads[kind] += data
    return {"plants": plants, "values": values, "bodies": bodies, "payloads": payloads, "lake": e2e_root / "lake"}


def test_planted_documents_reached_the_teacher(e2e_run):
    """Precondition: every plant's documents were sent, so not finding a value means something."""
    assert e2e_run["bodies"], "no request reached the teacher"
    for p in e2e_run["plants"]:
        assert any(p.marker in b for b in e2e_run["bodies"]), f"no request carried {p.marker!r}"
    sent = "\n".join(e2e_run["bodies"])
    assert "<API_KEY>" in sent and "<PRIVATE_KEY>" in sent and "<TOKEN>" in sent
    # The PNG, the JPEG and the WAV went out as bytes, not only their prompts.
    assert len(e2e_run["payloads"]["image"]) >= 2 and len(e2e_run["payloads"]["audio"]) >= 1


def test_no_planted_secret_reaches_the_teacher(e2e_run):
    """Neither in a request's JSON text nor inside its decoded image or audio payloads."""
    sent = "\n".join(e2e_run["bodies"])
    leaked = sorted(k for k, v in e2e_run["values"].items() if v in sent)
    assert leaked == []
    assert "BEGIN RSA PRIVATE KEY" not in sent and "BEGIN PGP PRIVATE KEY BLOCK" not in sent
    in_payloads = {
        f"{kind} payload {i}": found
        for kind, payloads in e2e_run["payloads"].items()
        for i, data in enumerate(payloads)
        if (found := _found_in_media(e2e_run["values"], data))
    }
    assert in_payloads == {}


def test_no_planted_secret_in_curated_or_traces_parquet(e2e_run):
    lake = e2e_run["lake"]
    for table in ("curated", "rejects", "duplicates", "traces"):
        rows = _decoded_rows(lake, table)
        if table in ("curated", "traces"):
            assert rows, f"no {table} rows: the test would prove nothing"
        text = "\n".join(rows)
        leaked = sorted(k for k, v in e2e_run["values"].items() if v in text)
        assert leaked == [], f"{table}: {leaked}"


def _shard_rows(lake: Path) -> list[tuple[dict, str]]:
    """(row without its tokens, its tokens decoded to text) for every row of every shard of
    every build, decoded through the build's manifest as `distillery shards show` does."""
    out = []
    manifests = sorted((lake / "shard").glob("build-*/manifest.json"))
    assert manifests, "no shard build: the test would prove nothing"
    for path in manifests:
        manifest = json.loads(path.read_text())
        for entry in manifest["shards"]:
            for row in pq.read_table(path.parent / entry["file"]).to_pylist():
                tokens = np.asarray(row.pop("tokens"), dtype=np.int64)
                out.append((row, decode_text(tokens, manifest["tokenizer"])))
    return out


def test_no_planted_secret_in_shards(e2e_run):
    rows = _shard_rows(e2e_run["lake"])
    text = "\n".join(decoded for _, decoded in rows)
    # Decoding works and every plant's rows are there: the text markers read back, the media rows exist.
    assert all(p.marker in text for p in e2e_run["plants"] if p.in_documents)
    assert {"image", "audio"} <= {row["modality"] for row, _ in rows}
    text += "\n" + "\n".join(json.dumps(row, default=str) for row, _ in rows)
    leaked = sorted(k for k, v in e2e_run["values"].items() if v in text)
    assert leaked == []


def test_no_planted_value_in_the_media_store_files_of_curated_rows(e2e_run):
    lake = e2e_run["lake"]
    refs = sorted({r["media"] for r in map(json.loads, _decoded_rows(lake, "curated")) if r.get("media")})
    assert len(refs) >= 3, refs  # the PNG, the JPEG (stored as PNG) and the WAV
    in_store = {ref: found for ref in refs if (found := _found_in_media(e2e_run["values"], (lake / ref).read_bytes()))}
    assert in_store == {}


def test_redaction_counts_per_kind_are_in_meta(e2e_run):
    metas = [json.loads(json.loads(r)["meta"]) for r in _decoded_rows(e2e_run["lake"], "curated")]
    totals: dict[str, int] = {}
    for m in metas:
        for k, n in (m.get("redactions") or {}).items():
            totals[k] = totals.get(k, 0) + n
    # Per planted file: gitlab, stripe, hf, npm, sendgrid, azure -> api_key; basic -> bearer; 2 blocks.
    assert totals.get("private_key", 0) >= 2 * 3 and totals.get("api_key", 0) >= 6 * 3 and totals.get("bearer", 0) >= 3
    # The README's query, through `distillery sql`'s read-only path, gives the same totals.
    sql = (
        "select kind, sum(json_extract(meta, '$.redactions.' || kind)::int) n from "
        "(select unnest(json_keys(meta, '$.redactions')) kind, meta from curated) group by kind"
    )
    assert dict(query(Lake(e2e_run["lake"]), sql)[1]) == totals


def test_documents_keep_the_raw_text_unless_gather_redacts(request, e2e_run, e2e_root):
    """The raw layer holds what was read (README); gather.redact: true redacts it there too."""
    raw = "\n".join(_decoded_rows(e2e_run["lake"], "documents"))
    kept = {k: v for p in e2e_run["plants"] if p.in_documents for k, v in p.values.items()}
    assert sorted(k for k, v in kept.items() if v not in raw) == []
    assert sorted(k for k, v in e2e_run["values"].items() if k not in kept and v in raw) == []  # media metadata
    # Switched on for a lake already gathered raw (a copy of the run's): the documents view then
    # shows the redacted generation, and curate reads it.
    plants = _all_plants(request)
    shutil.copytree(e2e_run["lake"], e2e_root / "lake-redacted")
    run_cli(e2e_root, _config(e2e_root, plants, "lake-redacted", gather={"redact": True}), "gather,curate", "redacted")
    lake = Lake(e2e_root / "lake-redacted")
    docs = "\n".join(json.dumps(r, default=str) for r in query(lake, "select * from documents")[1])
    assert all(p.marker in docs for p in plants)
    leaked = sorted(k for k, v in e2e_run["values"].items() if v in docs)
    assert leaked == []
    assert query(lake, "select count(*) from curated")[1][0][0] > 0


def test_curate_artifact_table_counts_redactions_by_kind(e2e_run):
    """The rows of the `curate-redactions-by-kind` artifact, computed from the run's real lake."""
    from flows.reporting import outcome_tables

    rows = {r["kind"]: r for r in outcome_tables([e2e_run["lake"]])["redactions-by-kind"]}
    assert rows["private_key"]["n"] >= 6 and rows["api_key"]["n"] >= 18 and rows["bearer"]["n"] >= 3
    assert all(r["rows"] >= 1 for r in rows.values())
