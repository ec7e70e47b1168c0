"""Audio as units: decode, mono, resample, log-mel frames, nearest codebook entry.

Units are NOT decodable back to sound: a unit stands for a cluster of log-mel frames, and
the phase (and most spectral detail) is gone. They serve as a discrete audio vocabulary
for the language model, as HuBERT-style units do; `show` renders them as counts only.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

from shards.media_refs import MediaError


def _decode_soundfile(data: bytes) -> tuple[np.ndarray, int]:
    import soundfile as sf

    wave, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return wave.mean(axis=1), int(sr)


def _decode_av(data: bytes) -> tuple[np.ndarray, int]:
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = next(s for s in container.streams if s.type == "audio")
        chunks = [f.to_ndarray().astype(np.float32) for f in container.decode(stream)]
        sr = int(stream.codec_context.sample_rate or stream.rate)
    if not chunks:
        return np.zeros(0, np.float32), sr
    # planar frames are (channels, n); packed ones are (1, n*channels): average channels either way
    channels = stream.codec_context.channels or 1
    if chunks[0].shape[0] == 1 and channels > 1:
        chunks = [c.reshape(-1, channels).T for c in chunks]
    return np.concatenate(chunks, axis=1).mean(axis=0), sr


def load_audio(data: bytes, sample_rate: int, max_seconds: float) -> tuple[np.ndarray, bool]:
    """Return (mono float32 wave at `sample_rate`, whether it was cut at `max_seconds`).

    soundfile reads WAV/FLAC/OGG/MP3; other containers (e.g. a video's AAC track) go
    through PyAV. Raises MediaError("audio_decode_error") when neither can read it.
    """
    try:
        wave, sr = _decode_soundfile(data)
    except Exception:
        try:
            wave, sr = _decode_av(data)
        except Exception as exc:
            raise MediaError("audio_decode_error", f"audio cannot be decoded: {type(exc).__name__}: {exc}") from None
    if not np.all(np.isfinite(wave)):
        raise MediaError("audio_decode_error", "audio contains NaN or infinite samples")
    wave = resample(wave, sr, sample_rate)
    limit = int(max_seconds * sample_rate)
    return wave[:limit], len(wave) > limit


def resample(wave: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Linear-interpolation resampling (enough for 40-band log-mel features; no anti-alias filter
    beyond a moving average when downsampling by more than 2x)."""
    if sr_in == sr_out or len(wave) == 0:
        return wave.astype(np.float32)
    ratio = sr_in / sr_out
    if ratio > 2:  # crude low-pass so that energy above the new Nyquist does not fold back
        k = int(ratio)
        wave = np.convolve(wave, np.ones(k, np.float32) / k, mode="same")
    n_out = int(round(len(wave) / ratio))
    t = np.arange(n_out, dtype=np.float64) * ratio
    return np.interp(t, np.arange(len(wave)), wave).astype(np.float32)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular filters (n_mels, n_fft//2+1) evenly spaced on the HTK mel scale, 0..Nyquist."""

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(0.0), mel(sample_rate / 2), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs[None]) / np.maximum(hi - mid, 1e-9)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def log_mel(wave: np.ndarray, sample_rate: int, n_mels: int, frame_ms: float, hop_ms: float) -> np.ndarray:
    """Return (T, n_mels) float32 natural-log mel energies, T = ceil(samples / hop) >= 1 (zero-padded end)."""
    frame = int(round(sample_rate * frame_ms / 1000))
    hop = int(round(sample_rate * hop_ms / 1000))
    n_fft = 1 << (frame - 1).bit_length()
    n = max(1, -(-len(wave) // hop))  # one unit per started hop: duration * units/s, for time alignment
    wave = np.pad(wave, (0, max(0, (n - 1) * hop + frame - len(wave))))
    frames = np.lib.stride_tricks.sliding_window_view(wave, frame)[::hop][:n]
    spec = np.abs(np.fft.rfft(frames * np.hanning(frame).astype(np.float32), n=n_fft, axis=1)) ** 2
    mel = spec.astype(np.float32) @ mel_filterbank(sample_rate, n_fft, n_mels).T
    return np.log(mel + 1e-10).astype(np.float32)
