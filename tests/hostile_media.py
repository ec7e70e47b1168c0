"""Broken and malicious media, synthesised in memory: the hostile images, audio and video
that real crawls contain (a decompression bomb, a WAV whose header lies, a WAV of NaN
samples, a video with no video stream), and the valid files the broken ones are cut from.

Every builder returns the file's bytes; nothing needs the network or a shipped binary:
images come from numpy and Pillow, audio from soundfile, video from PyAV.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np


def png_bytes(w: int = 64, h: int = 48, seed: int = 0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(seed: int = 1) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side: int = 30_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels (900 M pixels) that compresses to ~100 KB.

    The rows are streamed through one compressor, so building it never holds the pixels.
    """
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    parts = [comp.compress(row) for _ in range(side)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def wav_bytes(seconds: float = 0.5, rate: int = 16_000) -> bytes:
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def lying_wav(claimed_seconds: float = 10.0, actual_seconds: float = 0.1, rate: int = 16_000) -> bytes:
    """A PCM WAV whose RIFF and data chunk sizes claim far more audio than the file holds."""
    real = wav_bytes(actual_seconds, rate)
    data_at = real.index(b"data")
    claimed = int(claimed_seconds * rate) * 2
    return (
        b"RIFF"
        + struct.pack("<I", data_at + 8 + claimed - 8)
        + real[8:data_at]
        + b"data"
        + struct.pack("<I", claimed)
        + real[data_at + 8 :]
    )


def flac_bytes(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    import soundfile as sf

    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    sf.write(buf, rng.uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32), rate, format="FLAC")
    return buf.getvalue()


def mp4_bytes(frames: int) -> bytes:
    """An H.264/MP4 (or MPEG-4 part 2 when no H.264 encoder is built in) with `frames` frames."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        try:
            stream = out.add_stream("libx264", rate=8)
        except Exception:  # an FFmpeg build without x264
            stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()  # the header is written even when no frame follows
        rng = np.random.default_rng(4)
        for _ in range(frames):
            img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def audio_only_mp4() -> bytes:
    """An MP4 whose only stream is audio: a "video" without a single video frame."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16_000)
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16_000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def nan_wav(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    """A 32-bit float WAV whose every sample is NaN (a valid file: IEEE floats may be NaN)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.full(int(seconds * rate), np.nan, dtype=np.float32), rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()
