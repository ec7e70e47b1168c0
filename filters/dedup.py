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
  minhash  in each LSH band bucket a row meets the bucket's first rows and the row before it
           (filters/lsh_candidates.py); a pair is kept when its Jaccard estimated from the
           bottom-k sketches (or, without sketches, the signatures' agreement) is >=
           `minhash.threshold`; a row is a duplicate only of an earlier row it verifies
           against, and points to that row's survivor (`earlier_roots`).
  phash    image pairs whose pHash Hamming distance <= bound, found by multi-index hashing
           (filters/phash_index.py): every pair within the bound, no all-pairs join.
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
from filters.lsh_candidates import band_pairs
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
# Candidates whose signature agreement is this far below the threshold skip the sketch check:
# 0.2 is over 5 standard deviations of a 112-permutation estimate (sd <= 0.5/sqrt(112) = 0.047).
PREFILTER_MARGIN = 0.2
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


def earlier_roots(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Each node's survivor when edges point from an earlier node u to a later node v
    (u < v): a node with no edge from an earlier one is its own survivor; any other node
    follows its smallest earlier neighbour to that neighbour's survivor (pointer jumping).
    Unlike `components`, a node is never dropped for a node it is not similar to: in the
    chain z ~ y ~ x (z earlier than x, x not similar to z) x stays when it precedes y."""
    parent = np.arange(n)
    if len(u):
        np.minimum.at(parent, v, u)
    while True:
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            return parent
        parent = jumped


def _agreement(sig: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (sig[a] == sig[b]).mean(axis=1) if len(a) else np.zeros(0)


_PAIR_CHUNK = 4096  # pairs per numpy block: 4096 x 2k uint64 values = 32 MiB at k = 512


def sketch_jaccard(sketches: pl.Series, a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Jaccard estimate per pair (a[i], b[i]) from bottom-k sketches: among the k smallest
    values of the union of the two sketches, the share present in both. Exact when both
    documents have at most k distinct shingles (k = the sketch size the keys were made with).
    Sketches are padded into a matrix; each block of pairs is one numpy sort along rows."""
    if len(a) == 0:
        return np.zeros(0)
    arr = sketches.cast(pl.List(pl.UInt32)).rechunk().to_arrow()
    offsets = np.asarray(arr.offsets, dtype=np.int64)
    values = np.asarray(arr.values, dtype=np.uint64)[offsets[0] : offsets[-1]]
    offsets = offsets - offsets[0]
    lens = np.diff(offsets)
    width = int(max(lens.max(initial=0), 1))
    pad = np.uint64(1 << 32)  # above every 32-bit sketch value
    mat = np.full((len(lens), width), pad, dtype=np.uint64)
    mat[np.repeat(np.arange(len(lens)), lens), np.arange(len(values)) - np.repeat(offsets[:-1], lens)] = values
    out = np.empty(len(a))
    for lo in range(0, len(a), _PAIR_CHUNK):
        x, y = a[lo : lo + _PAIR_CHUNK], b[lo : lo + _PAIR_CHUNK]
        r = np.sort(np.concatenate([mat[x], mat[y]], axis=1), axis=1)
        first = np.ones(r.shape, dtype=bool)
        first[:, 1:] = r[:, 1:] != r[:, :-1]  # the first copy of each distinct value
        distinct = first & (r != pad)
        in_k = distinct & (np.cumsum(distinct, axis=1) <= k)
        shared = np.zeros(r.shape, dtype=bool)
        shared[:, :-1] = r[:, :-1] == r[:, 1:]  # sketches hold distinct values: equal neighbours are one per side
        out[lo : lo + len(x)] = (in_k & shared).sum(axis=1) / np.maximum(in_k.sum(axis=1), 1)
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
    """Text/code near-duplicates: candidate pairs from the LSH band buckets
    (filters.lsh_candidates), kept when their estimated Jaccard >= minhash.threshold, then
    clustered (`cluster_verified`)."""
    mh = cfg.dedup.minhash
    tk = keys.filter(pl.col("bands").is_not_null())
    if not mh.enabled or tk.height <= 1:
        return None
    # All bands in one query: the band index joins the bucket key (m = modality:band).
    long = (
        tk.select(pl.col("order").alias("o"), "modality", "bands", "is_new")
        .explode("bands")
        .with_columns(pl.int_range(pl.len()).over("o").alias("_band"))
        .select(
            "o",
            (pl.col("modality").fill_null("") + ":" + pl.col("_band").cast(pl.Utf8)).alias("m"),
            pl.col("bands").alias("h"),
            "is_new",
        )
    )
    con = duckdb.connect()
    try:
        con.register("long_keys", long.to_arrow())
        pairs = band_pairs(
            con,
            "select o, m, h from long_keys where is_new",
            "select o, m, h from long_keys where not is_new",
            mh.candidate_reps,
        )
    finally:
        con.close()
    return cluster_verified(tk, pairs["u"].to_numpy(), pairs["v"].to_numpy(), cfg)


def cluster_verified(rows: pl.DataFrame, u: np.ndarray, v: np.ndarray, cfg: CurateConfig) -> pl.DataFrame:
    """Verify candidate pairs (u, v: orders) and cluster the verified edges.

    `rows` holds at least every row a pair names (order, id, is_new, signature, sketch),
    sorted by order. A pair is kept when its Jaccard estimated from the bottom-k sketches
    (or, when a row lacks one, the signatures' agreement) is >= minhash.threshold; the
    survivor of each cluster is its smallest order. Returns the new rows that are not
    survivors (order, id, duplicate_of, method, similarity)."""
    mh = cfg.dedup.minhash
    order = rows["order"].to_numpy()
    a, b = np.searchsorted(order, u), np.searchsorted(order, v)
    sig = rows["signature"].cast(pl.Array(pl.UInt64, num_perm_of(rows))).to_numpy()
    use_sketch = bool(mh.sketch_size) and rows["sketch"].null_count() == 0
    if use_sketch:
        estimate = lambda x, y: sketch_jaccard(rows["sketch"], x, y, mh.sketch_size)  # noqa: E731
    else:
        estimate = lambda x, y: _agreement(sig, x, y)  # noqa: E731
    if mh.threshold is not None and len(a):
        if use_sketch:  # the signatures' agreement first: cheap, and far below the threshold it is decisive
            near = _agreement(sig, a, b) >= mh.threshold - PREFILTER_MARGIN
            a, b = a[near], b[near]
        keep = estimate(a, b) >= mh.threshold
        a, b = a[keep], b[keep]
    label = earlier_roots(rows.height, a, b)
    dup = np.flatnonzero((label != np.arange(rows.height)) & rows["is_new"].to_numpy())
    surv = label[dup]
    return _dup_frame(rows, dup, surv, "minhash", estimate(dup, surv))


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
