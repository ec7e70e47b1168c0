"""distillery.atomic: a target is the old file or the whole new one; no temp file survives."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillery import atomic


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("durable", [True, False])
def test_write_bytes_replaces_the_target_whole_and_leaves_no_temp(tmp_path, durable):
    target = tmp_path / "deep" / "er" / "x.bin"
    atomic.write_bytes(target, b"old")
    atomic.write_bytes(target, b"new" * 1000, durable=durable)
    assert target.read_bytes() == b"new" * 1000
    assert _leftovers(target.parent) == []


def test_write_bytes_without_make_dirs_raises_for_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic.write_bytes(tmp_path / "absent" / "x", b"1", make_dirs=False)
    assert not (tmp_path / "absent").exists()


def test_write_bytes_that_fails_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "x.json"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic.write_bytes(target, "not bytes")  # type: ignore[arg-type]  # fails after the temp exists
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_write_with_a_writer_that_fails_midway_keeps_the_old_file(tmp_path):
    target = tmp_path / "t.parquet"
    atomic.write_with(target, lambda tmp: pq.write_table(pa.table({"a": [1, 2]}), tmp))

    def half_then_fail(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        atomic.write_with(target, half_then_fail)
    assert pq.read_table(target).column("a").to_pylist() == [1, 2]
    assert _leftovers(tmp_path) == []


def test_open_write_appears_only_when_the_block_ends_without_error(tmp_path):
    target = tmp_path / "m.json"
    with atomic.open_write(target, "w") as fh:
        json.dump({"v": 1}, fh)
        assert not target.exists()  # nothing visible while writing
    assert json.loads(target.read_text()) == {"v": 1}
    with pytest.raises(KeyError):
        with atomic.open_write(target, "w") as fh:
            fh.write('{"v": 2')
            raise KeyError("stop")
    assert json.loads(target.read_text()) == {"v": 1} and _leftovers(tmp_path) == []


def test_open_write_refuses_a_read_mode(tmp_path):
    with pytest.raises(ValueError, match="write mode"):
        with atomic.open_write(tmp_path / "x", "rb"):
            pass


def test_temp_file_is_named_after_its_content_on_commit_and_removed_otherwise(tmp_path):
    with atomic.TempFile(tmp_path, "shard") as tmp:
        with open(tmp.path, "wb") as fh:
            fh.write(b"abc")
        final = tmp.commit("shard-abc.parquet")
    assert final.read_bytes() == b"abc"
    with atomic.TempFile(tmp_path, "shard") as tmp:
        with open(tmp.path, "wb") as fh:
            fh.write(b"never committed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-abc.parquet"]


def test_temp_names_are_hidden_and_matched_by_the_stray_sweeps(tmp_path):
    # flows/shard.py and distillery/batch.py sweep ".*.tmp": every temp name must match it
    name = atomic.temp_name(tmp_path, "x.parquet")
    assert name.startswith(f"{tmp_path}/.") and name.endswith(".tmp")
    open(name, "wb").close()
    assert [p.name for p in tmp_path.glob(".*.tmp")] == [name.rsplit("/", 1)[1]]
