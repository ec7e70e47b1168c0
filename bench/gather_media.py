"""Benchmark: what storing metadata-free re-encodings costs gather on images and audio.

Builds JPEG photos (smooth gradients plus noise, so they compress like photos, with a
camera-like EXIF block and an sRGB ICC profile) and 16-bit WAV files, then times in one process:
  1. reference: the work gather did before it stripped metadata, per file: decode
     (Pillow load / soundfile full decode), sha256 of the file, a copy into a store;
  2. gather: sources.read_items on the same files (decode, metadata scan, strip or
     re-encode, hash, store): photos keep their JPEG data (sources.jpeg_strip);
  3. images only, gather with the lossless JPEG path switched off: every photo re-encoded
     to PNG (what gather did before jpeg_strip).
Prints files/s for each, gather's time as a ratio of the reference, and the stored bytes
as a ratio of the source bytes.

Usage: python bench/gather_media.py [--images 40] [--size 1024x768] [--wavs 40] [--seconds 10]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageCms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build(root: Path, n_images: int, size: tuple[int, int], n_wavs: int, seconds: float) -> None:
    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    (root / "au").mkdir()
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for i in range(n_images):
        base = np.stack([(xx * (i + 1) % 256), (yy * 2 % 256), ((xx + yy) // 3 % 256)], axis=2).astype(np.int16)
        px = np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)
        exif = Image.Exif()
        exif.update({0x010F: "BenchCam", 0x0110: "Model 1", 0x0112: 1, 0x0132: "2026:01:01 12:00:00"})
        Image.fromarray(px).save(
            root / "img" / f"p{i:04d}.jpg", "JPEG", quality=90, exif=exif.tobytes(), icc_profile=srgb
        )
    rate = 16000
    t = np.arange(int(rate * seconds)) / rate
    for i in range(n_wavs):
        x = 0.3 * np.sin(2 * np.pi * (200 + 10 * i) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(root / "au" / f"s{i:04d}.wav", x.astype(np.float32), rate, subtype="PCM_16")


def reference(paths: list[Path], store: Path, kind: str) -> float:
    store.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for p in paths:
        if kind == "images":
            with Image.open(p) as im:
                im.load()
        else:
            with sf.SoundFile(p) as f:
                while len(f.read(65536, dtype="float32")):
                    pass
        sha = hashlib.sha256(p.read_bytes()).hexdigest()
        shutil.copyfile(p, store / sha)
    return time.perf_counter() - t0


def gather(root: Path, kind: str, store: Path, lossless: bool = True, limit: int | None = None) -> tuple[float, int]:
    """(seconds, stored bytes) of sources.read_items over the `kind` files (the first `limit`);
    lossless=False switches off the JPEG/WebP rewrite, so every image is re-encoded to PNG."""
    from pydantic import TypeAdapter

    import sources.audio  # noqa: F401,E401 - import cost is not gather cost
    import sources.image
    from sources import discover, read_items
    from sources.config import AnySource

    sub = "img" if kind == "images" else "au"
    source = TypeAdapter(AnySource).validate_python({"name": kind, "kind": kind, "paths": [f"{sub}/*"]})
    items = list(discover(source, root))[:limit]
    keep = sources.image._KEEP_DATA  # format -> (rewrite, stored_format), read per image
    saved = dict(keep)
    if not lossless:
        keep.update({fmt: ((lambda *_: None), stored_format) for fmt, (_, stored_format) in saved.items()})
    try:
        t0 = time.perf_counter()
        result = read_items(source, items, store)
        elapsed = time.perf_counter() - t0
    finally:
        keep.update(saved)
    assert result.tables["documents"].height == len(items), result.tables["quarantine"].to_dicts()
    stored = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    return elapsed, stored


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--size", default="1024x768")
    ap.add_argument("--wavs", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="bench_gather_media_") as tmp:
        root = Path(tmp)
        build(root, args.images, size, args.wavs, args.seconds)
        for kind, sub in (("images", "img"), ("audio", "au")):
            paths = sorted((root / sub).iterdir())
            src_bytes = sum(p.stat().st_size for p in paths)
            t_ref = reference(paths, root / f"ref_{kind}", kind)
            gather(root, kind, root / f"warm_{kind}" / "media", limit=2)  # first-call costs (regex compiles, ...)
            t_gather, stored = gather(root, kind, root / f"lake_{kind}" / "media")
            n = len(paths)
            print(f"{kind}: {n} files, {src_bytes / 2**20:.1f} MB")
            print(f"   reference (decode+hash+copy): {n / t_ref:8.1f} files/s")
            print(
                f"   gather (decode+strip+store) : {n / t_gather:8.1f} files/s   "
                f"({t_gather / t_ref:.2f}x the reference's time)"
            )
            print(f"   stored bytes / source bytes : {stored / src_bytes:.3f}")
            if kind == "images":
                t_png, stored_png = gather(root, kind, root / "lake_png" / "media", lossless=False)
                print(
                    f"   gather, all PNG (before)    : {n / t_png:8.1f} files/s   "
                    f"({t_png / t_ref:.2f}x the reference's time)"
                )
                print(f"   stored bytes / source bytes : {stored_png / src_bytes:.3f}")


if __name__ == "__main__":
    main()
