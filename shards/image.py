"""Images as patch codes: center-crop, resize, cut into patches, nearest codebook entry.

The decoder is the inverse lookup: each code becomes its centroid patch, so a picture's
reconstruction quality is the codebook's quantization error, reported as PSNR.
All array work is for the whole partition at once (reshapes, one chunked k-means assign).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from shards.media_refs import MediaError


def load_image(data: bytes, side: int) -> np.ndarray:
    """Return `data` decoded as RGB, center-cropped square and resized to (side, side, 3) uint8."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (side, side))  # JPEG decodes at a reduced scale still >= side (no-op for others)
            im = im.convert("RGB")
            w, h = im.size
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            # box= crops inside the resize (no copy); reducing_gap first shrinks by whole factors
            im = im.resize((side, side), Image.Resampling.BICUBIC, box=(left, top, left + s, top + s), reducing_gap=3.0)
            return np.asarray(im, dtype=np.uint8)
    except Exception as exc:  # Pillow raises many types (UnidentifiedImageError, OSError, DecompressionBombError)
        raise MediaError("image_decode_error", f"image cannot be decoded: {type(exc).__name__}: {exc}") from None


def patchify(images: np.ndarray, patch: int) -> np.ndarray:
    """Return (N, g, g, patch*patch*3) float32 patches of (N, S, S, 3) images, g = S // patch."""
    n, s = images.shape[0], images.shape[1]
    g = s // patch
    x = images.reshape(n, g, patch, g, patch, 3).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, g, g, patch * patch * 3).astype(np.float32)


def unpatchify(patches: np.ndarray, patch: int) -> np.ndarray:
    """Inverse of `patchify`: (N, g, g, p*p*3) -> (N, g*p, g*p, 3) uint8 (clipped)."""
    n, g = patches.shape[0], patches.shape[1]
    x = patches.reshape(n, g, g, patch, patch, 3).transpose(0, 1, 3, 2, 4, 5)
    return np.clip(np.rint(x.reshape(n, g * patch, g * patch, 3)), 0, 255).astype(np.uint8)


def encode_images(images: np.ndarray, centroids: np.ndarray, patch: int) -> np.ndarray:
    """Return (N, g, g) int codes (0-based within the codebook) of (N, S, S, 3) images."""
    from shards.kmeans import assign

    p = patchify(images, patch)
    labels, _ = assign(p.reshape(-1, p.shape[-1]), centroids)
    return labels.reshape(p.shape[:3])


def decode_codes(codes: np.ndarray, centroids: np.ndarray, patch: int) -> np.ndarray:
    """Return the picture(s) that codes (g, g) or (N, g, g) stand for, uint8 RGB."""
    codes = np.asarray(codes)
    single = codes.ndim == 2
    batch = codes[None] if single else codes
    out = unpatchify(np.asarray(centroids)[batch], patch)
    return out[0] if single else out


def psnr(original: np.ndarray, reconstructed: np.ndarray) -> float:
    """Return the peak signal-to-noise ratio in dB of two uint8 pictures (inf when identical)."""
    err = np.mean((original.astype(np.float64) - reconstructed.astype(np.float64)) ** 2)
    return float("inf") if err == 0 else float(10.0 * np.log10(255.0**2 / err))


def reconstruction_psnr(images: np.ndarray, centroids: np.ndarray, patch: int) -> float:
    """Return the PSNR (dB) of `images` (N, S, S, 3) after encode + decode with `centroids`."""
    return psnr(images, decode_codes(encode_images(images, centroids, patch), centroids, patch))
