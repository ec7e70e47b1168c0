"""The `hf` kind: rows of a Hugging Face `datasets` dataset, one text record per row.

`path` is resolved against base_dir first:
  * a `save_to_disk` folder (state.json / dataset_dict.json inside) -> datasets.load_from_disk
  * any other local folder (jsonl/csv/parquet/... files)            -> datasets.load_dataset(folder)
  * otherwise a hub name -> load_dataset(name, streaming=True) (needs network; the project runs
    offline, so this path is only taken when configured and is not covered by tests).
Discovery yields one item per dataset split: uri = `<path>:<split>`, fingerprint =
"tree:<hash>" of the local folder's files (path, size, mtime_ns) or "hub:<name>:<split>"
(a hub dataset's revision is not resolved offline, so it is always re-read).
Rows are read in Arrow batches of `batch_rows` and go through the same batch emitter as
JSONL/CSV/Parquet (uri `<uri>#row<N>`, missing/null text -> quarantine missing_field).
A dataset that cannot be loaded or lacks the split is one quarantined row; one whose rows
all lack the text column raises MissingTextField (a config mistake that stops the run).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import polars as pl

from sources.config import HfSource
from sources.item import SourceItem
from sources.record import RowSink
from sources.repo_fetch import tree_hash
from sources.tabular import _emit_batch, missing_text_field


def _local(source: HfSource, base_dir: Path) -> Path | None:
    p = Path(os.path.expanduser(source.path))
    p = p if p.is_absolute() else base_dir / p
    return p.absolute() if p.is_dir() else None


def _is_saved(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def discover_hf(source: HfSource, base_dir: Path) -> Iterator[SourceItem]:
    local = _local(source, base_dir)
    uri = f"{source.path}:{source.split}"
    if local is None:
        yield SourceItem(source=source.name, uri=uri, path=source.path, fingerprint=f"hub:{source.path}:{source.split}")
        return
    files = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    yield SourceItem(source=source.name, uri=uri, path=str(local), fingerprint="tree:" + tree_hash(local, files))


def _load(source: HfSource, item: SourceItem):
    import datasets

    if item.fingerprint.startswith("hub:"):
        return datasets.load_dataset(item.path, split=source.split, streaming=source.streaming)
    folder = Path(item.path)
    if _is_saved(folder):
        ds = datasets.load_from_disk(str(folder))
        if isinstance(ds, datasets.DatasetDict):
            if source.split not in ds:
                raise KeyError(f"split {source.split!r} not in {sorted(ds)}")
            ds = ds[source.split]
        return ds
    return datasets.load_dataset(str(folder), split=source.split)


def read_hf(sink: RowSink, source: HfSource, item: SourceItem) -> None:
    """Append the rows of one dataset split."""
    try:
        ds = _load(source, item)
    except KeyError as exc:
        sink.quarantine(uri=item.uri, reason="missing_split", error=str(exc))
        return
    except Exception as exc:  # datasets raises many types (FileNotFoundError, DatasetNotFoundError, ValueError...)
        sink.quarantine(uri=item.uri, reason="unreadable", error=f"{type(exc).__name__}: {exc}")
        return
    columns = list(ds.column_names or [])
    rows = getattr(ds, "num_rows", None)  # None: a stream, whose length is not known
    if source.text_field not in columns and ds.column_names is not None and rows != 0:
        raise missing_text_field(source, item.uri, columns)
    if source.text_field not in columns:
        sink.quarantine(
            uri=item.uri, reason="missing_field", error=f"no column {source.text_field!r} in {columns[:20]}"
        )
        return
    feature = ds.features[source.text_field] if ds.features else None
    dtype = getattr(feature, "dtype", None)
    if feature is not None and dtype not in ("string", "large_string"):
        sink.quarantine(uri=item.uri, reason="bad_field_type", error=f"{source.text_field!r} is {feature}")
        return
    wanted = [
        c for c in dict.fromkeys((source.text_field, source.id_field, source.license_field)) if c and c in columns
    ]
    ds = ds.select_columns(wanted)
    row = 0
    import datasets

    if isinstance(ds, datasets.Dataset):  # map-style: Arrow batches straight from the cache files
        batches = (pl.from_arrow(t) for t in ds.with_format("arrow").iter(batch_size=source.batch_rows))
    else:  # IterableDataset (hub streaming): dict-of-lists batches
        batches = (pl.DataFrame(b) for b in ds.iter(batch_size=source.batch_rows))
    try:
        for df in batches:
            _emit_batch(sink, source, "hf", item.uri, df, row)
            row += df.height
    except Exception as exc:  # a damaged arrow file or a dropped stream: the rest is one row
        sink.quarantine(uri=f"{item.uri}#row{row}-", reason="unreadable", error=f"{type(exc).__name__}: {exc}")
