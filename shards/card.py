"""The dataset card: `README.md` in each shard build, read by people and by Hugging Face.

Its YAML header (configs with one split per shard prefix, license list) makes
`datasets.load_dataset(build_dir)` load the build's shards as splits `train` and `val`, and
only this build's (two builds' token ids do not mean the same patches). The body says what
the build holds and where it came from: sources and licenses, the filters and how many rows
each took out, the teacher model and its verification rates, tokens per modality, the
vocabulary ranges and what each span kind means. The card is written into the build's
hidden folder before the rename that commits it, from the lake's current generations, and
depends on nothing but them and the manifest (a re-build writes the same bytes).
"""

from __future__ import annotations

import glob
from pathlib import Path

import duckdb
import yaml

from distillery import atomic
from distillery.catalog import view_patterns
from distillery.config import PipelineConfig
from distillery.lake import Lake

SPAN_KINDS = {  # what each span kind of a shard row means, and whether the trainer's loss covers it
    "text": "a curated text or code document's tokens (loss on)",
    "image": "an image block: <|boi|>, rows of patch codes each ended by <|eor|>, <|eoi|> (loss on)",
    "audio": "an audio block: <|boa|>, one unit per 20 ms log-mel frame, <|eoa|> (loss on)",
    "video": "a video block: <|bov|>, per sampled frame its image codes and the audio units playing meanwhile, "
    "each frame ended by <|eof|>, then <|eov|> (loss on)",
    "prompt": "a teacher trace's question (<|user|> turn); conditioning only (loss off)",
    "reasoning": "the teacher's reasoning between <|think|> and <|/think|> (loss on)",
    "answer": "the teacher's answer (<|assistant|> turn, ends with <|eos|>) (loss on)",
}


def _hf_license(value: str | None) -> str:
    return (value or "unknown").strip().lower()


def _table(columns: list[str], rows: list[tuple]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in rows]
    return out + [""]


def lake_facts(cfg: PipelineConfig, lake: Lake, build_tmp: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    """The card's tables from the current generations (the shard stage's own rejects from `build_tmp`)."""
    patterns = view_patterns(cfg, lake)
    con = duckdb.connect()

    def src(view: str, extra: list[str] = ()) -> str | None:
        later = (
            str(lake.stage_dir("shard")),
            str(lake.stage_dir("train")),
        )  # the build being written is not in them yet
        files = [p for p in patterns[view] if not p.startswith(later)] + list(extra)
        found = [f for p in files for f in sorted(glob.glob(p))]
        return None if not found else "read_parquet([" + ", ".join(f"'{f}'" for f in found) + "], union_by_name=true)"

    def q(sql: str, view: str, cols: list[str], extra: list[str] = ()) -> tuple[list[str], list[tuple]]:
        s = src(view, extra)
        return cols, ([] if s is None else con.execute(sql.format(src=s)).fetchall())

    facts = {
        "sources": q(
            "SELECT source, modality, count(*) FROM {src} GROUP BY ALL ORDER BY ALL",
            "documents",
            ["source", "modality", "documents"],
        ),
        "licenses": q(
            "SELECT coalesce(license, 'unknown'), count(*) FROM {src} GROUP BY ALL ORDER BY ALL",
            "curated",
            ["license", "curated rows"],
        ),
        "filters": q(
            "SELECT stage, rule, count(*), round(avg(value), 4) FROM {src} GROUP BY ALL ORDER BY ALL",
            "rejects",
            ["stage", "rule", "rows rejected", "mean measured value"],
            [str(build_tmp / "samples" / "rejects-*.parquet")],
        ),
        "duplicates": q(
            "SELECT method, count(*) FROM {src} GROUP BY ALL ORDER BY ALL",
            "duplicates",
            ["method", "rows dropped as duplicates"],
        ),
        "teacher": q(
            "SELECT model, count(*), round(avg((verdict = 'pass')::int), 4), round(avg((verdict = 'fail')::int), 4), "
            "round(avg((verdict = 'unverified')::int), 4), count(*) FILTER (WHERE accepted) "
            "FROM {src} GROUP BY ALL ORDER BY ALL",
            "traces",
            ["model", "traces", "pass rate", "fail rate", "unverified rate", "accepted"],
        ),
    }
    con.close()
    return facts


def render_card(manifest: dict, facts: dict[str, tuple[list[str], list[tuple]]]) -> str:
    """The card's text: YAML header for `datasets`, then the tables."""
    splits = [s for s in ("train", "val") if manifest["totals"]["splits"][s]["shards"]]
    licenses = sorted({_hf_license(r[0]) for r in facts["licenses"][1]}) or ["unknown"]
    header = {
        "license": licenses,
        "configs": [{"config_name": "default", "data_files": [{"split": s, "path": f"{s}-*.parquet"} for s in splits]}],
        "tags": ["distillery", "tokenized"],
    }
    t = manifest["totals"]
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).rstrip(),
        "---",
        "",
        "# Distillery shard build",
        "",
        f"{t['rows']} samples, {t['tokens']} tokens in {t['shards']} shard files ({manifest['format']}). "
        "Token ids are only meaningful with this build's manifest.json and codebooks: never mix builds.",
        "",
    ]
    if (manifest.get("inputs") or {}).get("warning"):
        lines += [f"**Warning:** {manifest['inputs']['warning']}", ""]
    titles = {
        "sources": "Sources",
        "licenses": "Licenses",
        "filters": "Filters (rows rejected per rule)",
        "duplicates": "Deduplication",
        "teacher": "Teacher and verification",
    }
    for key, title in titles.items():
        lines += [f"## {title}", ""] + _table(*facts[key])
    lines += ["## Tokens per modality", ""] + _table(["modality", "tokens"], list(t["tokens_by_modality"].items()))
    lines += ["## Splits", ""] + _table(
        ["split", "rows", "tokens", "shards"],
        [(s, v["rows"], v["tokens"], v["shards"]) for s, v in t["splits"].items()],
    )
    lines += [
        "## Vocabulary",
        "",
        f"{manifest['vocab']['size']} ids; encoding {manifest['tokenizer'].get('encoding')}.",
        "",
    ]
    lines += _table(
        ["range", "first id", "count"], [(r["name"], r["start"], r["length"]) for r in manifest["vocab"]["ranges"]]
    )
    lines += _table(["special token", "id"], list(manifest["vocab"]["special"].items()))
    lines += [
        "## Span kinds",
        "",
        "Each row's `spans` tile its `tokens`; `loss` says whether training counts them.",
        "",
    ]
    lines += _table(["kind", "meaning"], list(SPAN_KINDS.items()))
    lines += [
        "## Lineage",
        "",
        "`id`, `uri`, `license`, `parents` (curated document ids, then the trace id for a trace row) "
        "lead back to the source: `distillery explain ID`.",
        "",
    ]
    return "\n".join(lines)


def write_card(cfg: PipelineConfig, lake: Lake, build_dir: Path, manifest: dict) -> Path:
    """Write `build_dir/README.md` (atomically) for the build described by `manifest`; return its path."""
    text = render_card(manifest, lake_facts(cfg, lake, Path(build_dir)))
    return atomic.write_bytes(Path(build_dir) / "README.md", text.encode())
