"""Import structure: reading a config stays light, and the shard modules form no import circle."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("PIL", "duckdb", "polars", "pyarrow", "numpy", "torch")


def _modules_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_config_loads_no_data_library():
    loaded = _modules_after("import distillery.config")
    assert [m for m in HEAVY if m in loaded] == []


def test_package_names_still_resolve_to_the_functions_after_their_submodules_load():
    code = (
        "from shards.show import decode_text\nimport shards.verify\nimport shards, filters, sources\n"
        "assert callable(shards.decode_text) and callable(shards.verify.verify)\n"
        "from shards import image_psnr, load_codebook, fit_codebooks, write_shards\n"
        "from filters import dedup_keys, filter_partition\nfrom sources import content_id, read_items\n"
        "assert image_psnr.__name__ == 'psnr' and content_id('text', b'x')"
    )
    _modules_after(code)


def test_codebook_io_does_not_import_the_media_tokenizers():
    loaded = _modules_after("import shards.codebook_io")
    assert [m for m in ("shards.media_rows", "shards.video", "shards.codebooks") if m in loaded] == []


def test_each_shard_media_module_imports_first_in_a_fresh_interpreter():
    for mod in ("shards.video", "shards.media_rows", "shards.codebooks", "shards.traces"):
        assert mod in _modules_after(f"import {mod}")


def test_core_modules_never_import_the_application_package():
    # distillery/app (CLI, UI launcher, demo samples, Prefect environment, local server,
    # console filter) sits on top of the core; distillery/cli is its compatibility entry.
    import ast
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    app = ("distillery.app", "distillery.cli")
    offenders = []
    for package in ("distillery", "flows", "sources", "filters", "teacher", "shards", "trainer"):
        for path in (repo / package).rglob("*.py"):
            rel = path.relative_to(repo).as_posix()
            if rel.startswith(("distillery/app/", "distillery/cli/")):
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module] + (
                        [f"{node.module}.{a.name}" for a in node.names] if node.module == "distillery" else []
                    )
                offenders += [f"{rel}:{node.lineno} imports {n}" for n in names if n.startswith(app)]
    assert offenders == []
