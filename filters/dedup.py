"""Deduplication: keys per row (`dedup_keys`) and duplicates among new rows (`find_duplicates`).

Keys (one row per curated row):
  exact          text/code: hex MD5 of the normalized text (lowercase, punctuation stripped,
                 whitespace folded); image/video: the CAS sha256 of the raw bytes (from the
                 media reference); audio: sha256 of the decoded samples (+ rate, channels),
                 so one recording stored as WAV and as FLAC has one key.
  signature      list[u64] MinHash signature (text/code), bands list[u64] its LSH band hashes,
  sketch         list[u32] bottom-k sketch of the shingles (verifies LSH candidates).
  phash          u64 pHash (images); frame_phashes list[u64] (videos, sampled frames).

Survivor rule: within every cluster of duplicates the row with the smallest `order` survives.
Callers give existing lake rows smaller orders than new rows, so existing rows always win,
then earlier partitions, then earlier rows. Only rows of `new` are reported.
Exact duplicates are found first; near-duplicates are looked for among the rest:
  minhash  rows sharing a band bucket are candidate pairs (bucketed in Polars); a pair is kept
           when its Jaccard estimated from the bottom-k sketches (or, without sketches,
           the signatures' agreement) is >= `minhash.threshold`; kept pairs are joined into clusters with a numpy union-find.
  phash    image pairs whose pHash Hamming distance (DuckDB bit_count(a xor b)) <= bound.
  video    video pairs whose sampled frames are all within the bound, position by position.
  audio    identical decoded samples (the audio rows' exact key).
The similarity is the estimated Jaccard (minhash), 1 - hamming/64 (phash; video: mean), 1.0
for exact and audio.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from filters import minhash, phash, phash_index
from filters.config import CurateConfig
from filters.media import media_path

KEY_SCHEMA = {
    "id": pl.Utf8,
    "modality": pl.Utf8,
    "exact": pl.Utf8,
    "signature": pl.List(pl.UInt64),
    "bands": pl.List(pl.UInt64),
    "sketch": pl.List(pl.UInt32),
    "phash": pl.UInt64,
    "frame_phashes": pl.List(pl.UInt64),
}
DUP_SCHEMA = {"order": pl.Int64, "id": pl.Utf8, "duplicate_of": pl.Utf8, "method": pl.Utf8, "similarity": pl.Float64}


def _sql(query: str, **frames: pl.DataFrame) -> pl.DataFrame:
    """Run `query` in a fresh in-memory DuckDB with `frames` registered as tables."""
    con = duckdb.connect()
    try:
        for name, frame in frames.items():
            con.register(name, frame.to_arrow())
        return con.sql(query).pl()
    finally:
        con.close()


def _audio_key(path: Path) -> str:
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="int32", always_2d=True)
    h = hashlib.sha256(f"{rate}:{data.shape[1]}:".encode())
    h.update(np.ascontiguousarray(data).tobytes())
    return h.hexdigest()


def dedup_keys(curated: pl.DataFrame, cfg: CurateConfig, lake_root: Path) -> pl.DataFrame:
    """One key row per curated row (columns of KEY_SCHEMA); undecodable media get null keys
    besides `exact` (filter_partition has already quarantined unreadable bytes)."""
    n = curated.height
    mod = curated["modality"].fill_null("")
    textual = mod.is_in(["text", "code"]).to_numpy()
    t_idx = np.flatnonzero(textual)
    norm = minhash.normalize(curated["text"].gather(t_idx))
    exact = np.full(n, None, dtype=object)
    if len(t_idx):
        norm_df = pl.DataFrame({"v": norm}).with_row_index("i")
        exact[t_idx] = _sql("select md5(v) as h from norm_df order by i", norm_df=norm_df)["h"].to_numpy()
    mh = cfg.dedup.minhash
    num_perm = mh.num_bands * mh.rows_per_band
    sig_col = pl.Series("signature", [None] * n, dtype=pl.List(pl.UInt64))
    band_col = pl.Series("bands", [None] * n, dtype=pl.List(pl.UInt64))
    sketch_col = pl.Series("sketch", [None] * n, dtype=pl.List(pl.UInt32))
    if mh.enabled and len(t_idx):
        doc, sh = minhash.shingles(norm, mh.ngram)
        sig, has = minhash.signatures(doc, sh, len(t_idx), num_perm, mh.seed)
        bands = minhash.band_hashes(sig, mh.num_bands, mh.rows_per_band)
        rows = t_idx[has]
        sub = pl.DataFrame(
            {
                "_row": rows,
                "signature": pl.Series(sig[has]).cast(pl.List(pl.UInt64)),
                "bands": pl.Series(bands[has]).cast(pl.List(pl.UInt64)),
            }
        )
        if mh.sketch_size:
            offsets, values = minhash.bottom_k(doc, sh, len(t_idx), mh.sketch_size)
            lists = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.uint32()))
            sub = sub.with_columns(pl.Series("sketch", pl.from_arrow(lists)).gather(np.flatnonzero(has)))
        placed = pl.DataFrame({"_row": np.arange(n)}).join(sub, on="_row", how="left").sort("_row")
        sig_col, band_col = placed["signature"], placed["bands"]
        if mh.sketch_size:
            sketch_col = placed["sketch"]
    refs = curated["media"].to_list()
    phashes = [None] * n
    frames = [None] * n
    img_rows, img_px = [], []
    for i, m in enumerate(mod.to_list()):
        if m not in ("image", "audio", "video"):
            continue
        ref = refs[i]
        path = media_path(lake_root, ref)
        exact[i] = ref.rsplit("/", 1)[-1] if path is not None else None
        if path is None or not path.is_file():
            continue
        try:
            if m == "image":
                img_px.append(phash.image_pixels(path))
                img_rows.append(i)
            elif m == "audio" and cfg.dedup.audio:
                exact[i] = "audio:" + _audio_key(path)
            elif m == "video":
                frames[i] = phash.phash_batch(phash.video_pixels(path, cfg.dedup.video_frames))
        except Exception:  # undecodable bytes: no perceptual key; exact bytes key still applies
            continue
    if img_rows:
        for i, h in zip(img_rows, phash.phash_batch(np.stack(img_px)), strict=True):
            phashes[i] = int(h)
    return pl.DataFrame(
        {
            "id": curated["id"],
            "modality": curated["modality"],
            "exact": pl.Series(exact, dtype=pl.Utf8),
            "signature": sig_col,
            "bands": band_col,
            "sketch": sketch_col,
            "phash": pl.Series(phashes, dtype=pl.UInt64),
            "frame_phashes": pl.Series([None if f is None else f.tolist() for f in frames], dtype=pl.List(pl.UInt64)),
        },
        schema=KEY_SCHEMA,
    )


def components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Union-find over edges (u, v): each node's label is the smallest node index in its
    component (min-label propagation with pointer jumping; numpy only)."""
    label = np.arange(n)
    if len(u) == 0:
        return label
    while True:
        m = np.minimum(label[u], label[v])
        new = label.copy()
        np.minimum.at(new, label[u], m)
        np.minimum.at(new, label[v], m)
        np.minimum.at(new, u, m)
        np.minimum.at(new, v, m)
        while True:  # pointer jumping: follow labels to their roots
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, label):
            return label
        label = new


def _agreement(sig: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (sig[a] == sig[b]).mean(axis=1) if len(a) else np.zeros(0)


def sketch_jaccard(sketches: pl.Series, a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Jaccard estimate per pair (a[i], b[i]) from bottom-k sketches: among the k smallest
    values of the union of the two sketches, the share present in both. Exact when both
    documents have at most k distinct shingles (k = the sketch size the keys were made with).
    One Polars group-by over all pairs."""
    if len(a) == 0:
        return np.zeros(0)
    pair = np.arange(len(a))
    sk = pl.DataFrame({"sketch": sketches}).with_row_index("_pos")
    sides = [
        pl.DataFrame({"pair": pair, "_pos": idx.astype(np.uint32)}).join(sk, on="_pos").select("pair", "sketch")
        for idx in (a, b)
    ]
    long = pl.concat(sides).explode("sketch")
    agg = (
        long.group_by("pair", "sketch")
        .agg(pl.len().alias("n"))
        .sort("pair", "sketch")
        .with_columns(pl.int_range(pl.len()).over("pair").alias("rank"))
        .filter(pl.col("rank") < k)
        .group_by("pair")
        .agg((pl.col("n") == 2).mean().alias("j"))
    )
    out = np.zeros(len(a))
    out[agg["pair"].to_numpy()] = agg["j"].to_numpy()
    return out


def _hamming(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    z = np.bitwise_xor(x, y)
    return np.unpackbits(z.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1) if len(z) else np.zeros(0, int)


def _cluster_dups(keys: pl.DataFrame, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(duplicate row positions, their survivor positions) from edges over keys' positions."""
    label = components(keys.height, u, v)
    dup = np.flatnonzero((label != np.arange(keys.height)) & keys["is_new"].to_numpy())
    return dup, label[dup]


def num_perm_of(keys: pl.DataFrame) -> int:
    lens = keys["signature"].list.len().unique()
    if len(lens) != 1:
        raise ValueError(f"signatures of different lengths {lens.to_list()}: keys made with different minhash settings")
    return int(lens[0])


def survivor_order(existing: pl.DataFrame | None, new: pl.DataFrame) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    """Number key rows with the int64 `order` find_duplicates uses (smallest survives):
    the kept rows of earlier batches first (in the order given), then the new rows (in the
    order given: earlier partitions, then earlier rows). `existing` gets `order` as its first
    column, `new` as its last."""
    if existing is not None:
        existing = existing.with_row_index("order").with_columns(pl.col("order").cast(pl.Int64))
    offset = 0 if existing is None else existing.height
    return existing, new.with_columns(order=pl.int_range(pl.len(), dtype=pl.Int64) + offset)


def kept_keys(keys: pl.DataFrame, curated: pl.DataFrame) -> pl.DataFrame:
    """The key rows of the rows that stay curated (dedup survivors): what later batches
    deduplicate against."""
    return keys.join(curated.select("id").unique(), on="id", how="semi") if keys.height else keys


def _prepared(keys: pl.DataFrame, is_new: bool) -> pl.DataFrame:
    """keys in KEY_SCHEMA's columns plus order and is_new; key columns a caller did not
    compute (e.g. no sketches) read as null."""
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in KEY_SCHEMA.items() if c not in keys.columns]
    return (
        keys.with_columns(missing)
        .select([pl.col(c).cast(t) for c, t in KEY_SCHEMA.items()] + [pl.col("order").cast(pl.Int64)])
        .with_columns(pl.lit(is_new).alias("is_new"))
    )


def _dup_frame(k: pl.DataFrame, dup: np.ndarray, surv: np.ndarray, method: str, similarity) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "order": k["order"].gather(dup),
            "id": k["id"].gather(dup),
            "duplicate_of": k["id"].gather(surv),
            "method": [method] * len(dup),
            "similarity": similarity,
        }
    )


def exact_duplicates(keys: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(duplicates, the keys left for near-duplicate search): the first row of each
    (modality, exact) group survives; audio keys report method "audio"."""
    keys = keys.with_columns(
        pl.col("id").first().over(["modality", "exact"]).alias("_first"),
        (pl.int_range(pl.len()).over(["modality", "exact"]) > 0).alias("_dup"),
    ).with_columns((pl.col("_dup") & pl.col("exact").is_not_null()).alias("_dup"))
    ex = keys.filter(pl.col("_dup") & pl.col("is_new")).select(
        "order",
        "id",
        pl.col("_first").alias("duplicate_of"),
        pl.when(pl.col("exact").str.starts_with("audio:"))
        .then(pl.lit("audio"))
        .otherwise(pl.lit("exact"))
        .alias("method"),
        pl.lit(1.0).alias("similarity"),
    )
    return ex, keys.filter(~pl.col("_dup")).drop("_first", "_dup")


def minhash_duplicates(keys: pl.DataFrame, cfg: CurateConfig) -> pl.DataFrame | None:
    """Text/code near-duplicates: rows sharing an LSH band bucket are candidate pairs, kept
    when their estimated Jaccard >= minhash.threshold, then clustered."""
    mh = cfg.dedup.minhash
    tk = keys.filter(pl.col("bands").is_not_null())
    if not mh.enabled or tk.height <= 1:
        return None
    tk = tk.with_row_index("_pos")
    cand = (
        tk.select("_pos", "modality", "bands")
        .explode("bands")
        .with_columns(pl.int_range(pl.len()).over("_pos").alias("_band"))
        .with_columns(pl.col("_pos").shift(-1).over(["modality", "_band", "bands"], order_by="_pos").alias("_next"))
        .filter(pl.col("_next").is_not_null())
        .select("_pos", "_next")
        .unique()
    )
    u, v = cand["_pos"].to_numpy().astype(np.int64), cand["_next"].to_numpy().astype(np.int64)
    sig = tk["signature"].cast(pl.Array(pl.UInt64, num_perm_of(tk))).to_numpy()
    use_sketch = bool(mh.sketch_size) and tk["sketch"].null_count() == 0
    estimate = (
        (lambda a, b: sketch_jaccard(tk["sketch"], a, b, mh.sketch_size))
        if use_sketch
        else (lambda a, b: _agreement(sig, a, b))
    )
    if mh.threshold is not None and len(u):
        keep = estimate(u, v) >= mh.threshold
        u, v = u[keep], v[keep]
    dup, surv = _cluster_dups(tk, u, v)
    return _dup_frame(tk, dup, surv, "minhash", estimate(dup, surv))


def image_duplicates(keys: pl.DataFrame, cfg: CurateConfig) -> pl.DataFrame | None:
    """Image pairs whose pHash Hamming distance <= dedup.image_max_hamming (multi-index
    hashing, filters.phash_index: the clusters of the all-pairs join without its cost)."""
    ik = keys.filter(pl.col("phash").is_not_null()).with_row_index("_pos")
    if ik.height <= 1:
        return None
    ph = ik["phash"].to_numpy()
    u, v = phash_index.row_edges(ph, ik["is_new"].to_numpy(), int(cfg.dedup.image_max_hamming))
    dup, surv = _cluster_dups(ik, u, v)
    return _dup_frame(ik, dup, surv, "phash", 1.0 - _hamming(ph[dup], ph[surv]) / 64.0)


def video_duplicates(keys: pl.DataFrame, cfg: CurateConfig) -> pl.DataFrame | None:
    """Video pairs with as many sampled frames, every frame within dedup.video_max_hamming
    of the frame at the same position."""
    vk = keys.filter(pl.col("frame_phashes").is_not_null()).with_row_index("_pos")
    if vk.height <= 1:
        return None
    u, v = phash_index.video_edges(vk["frame_phashes"], vk["is_new"].to_numpy(), int(cfg.dedup.video_max_hamming))
    dup, surv = _cluster_dups(vk, u, v)
    fl = vk["frame_phashes"].to_list()
    sim = [
        1.0 - float(_hamming(np.array(fl[d], np.uint64), np.array(fl[s], np.uint64)).mean()) / 64.0
        for d, s in zip(dup, surv, strict=True)
    ]
    return _dup_frame(vk, dup, surv, "video", sim)


def find_duplicates(new: pl.DataFrame, existing: pl.DataFrame | None, cfg: CurateConfig) -> pl.DataFrame:
    """Duplicates among `new` (dedup_keys frames plus int64 `order`; existing rows precede).

    Returns one row per duplicate: order, id, duplicate_of, method, similarity. Steps:
    exact first, then near-duplicates among the rest (minhash, images, videos).
    """
    frames = [_prepared(new, True)]
    if existing is not None and existing.height:
        frames.insert(0, _prepared(existing, False))
    keys = pl.concat(frames).sort("order")
    if keys.height == 0 or not cfg.dedup.enabled:
        return pl.DataFrame(schema=DUP_SCHEMA)
    out: list[pl.DataFrame | None] = []
    if cfg.dedup.exact:
        ex, keys = exact_duplicates(keys)
        out.append(ex)
    out += [minhash_duplicates(keys, cfg), image_duplicates(keys, cfg), video_duplicates(keys, cfg)]
    found = [o.select([pl.col(c).cast(t) for c, t in DUP_SCHEMA.items()]) for o in out if o is not None and o.height]
    return pl.concat(found).sort("order") if found else pl.DataFrame(schema=DUP_SCHEMA)
