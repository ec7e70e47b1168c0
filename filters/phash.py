"""Perceptual hashes (pHash) for images and sampled video frames.

pHash as in imagehash / Zauner 2010: grayscale, resize to 32x32, 2-D DCT, keep the 8x8
lowest frequencies, one bit per coefficient above their median -> 64 bits. Decoding and
resizing are one Pillow call per image; the DCT, medians and bit packing run for the
whole batch at once as numpy matrix products.
Videos: `frames` evenly spaced frames (by time) are decoded with PyAV and hashed the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 32
LOW = 8


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_D = _dct_matrix(SIZE)


def gray32(image) -> np.ndarray:
    """A PIL image -> float32[32, 32] grayscale."""
    from PIL import Image

    return np.asarray(image.convert("L").resize((SIZE, SIZE), Image.Resampling.LANCZOS), dtype=np.float32)


def phash_batch(pixels: np.ndarray) -> np.ndarray:
    """float[N, 32, 32] -> uint64[N] pHashes."""
    if len(pixels) == 0:
        return np.zeros(0, dtype=np.uint64)
    coeffs = (_D @ pixels.astype(np.float64) @ _D.T)[:, :LOW, :LOW].reshape(len(pixels), LOW * LOW)
    bits = coeffs > np.median(coeffs, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)


def image_pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return gray32(im)


def video_pixels(path: Path, frames: int) -> np.ndarray:
    """float32[frames, 32, 32]: frames at times (k + 0.5) / frames of the duration.

    Decodes sequentially and keeps the first frame at or after each target time (seeking
    lands on keyframes, which would make every sample of a short clip the same frame).
    A clip with fewer frames than `frames` repeats its last sampled frame.
    """
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        dur = float(c.duration) / 1e6 if c.duration else None
        decoded = []
        if dur:
            targets = [(k + 0.5) / frames * dur for k in range(frames)]
            nxt = 0
            for fr in c.decode(vs):
                t = fr.time if fr.time is not None else 0.0
                while nxt < frames and t + 1e-6 >= targets[nxt]:
                    decoded.append(gray32(fr.to_image()))
                    nxt += 1
                last = fr
                if nxt >= frames:
                    break
            while len(decoded) < frames and decoded:
                decoded.append(decoded[-1])
            if not decoded:
                decoded = [gray32(last.to_image())] * frames
        else:
            all_frames = [gray32(fr.to_image()) for fr in c.decode(vs)]
            idx = np.linspace(0, len(all_frames) - 1, frames).round().astype(int)
            decoded = [all_frames[i] for i in idx]
    return np.stack(decoded)
