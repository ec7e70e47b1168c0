"""Metadata-free re-encodings: the only media bytes the lake stores and a teacher receives.

Contract: an image, audio file or video that gather stores in the media store carries none
of its source file's metadata (EXIF, XMP, PNG text chunks, ICC profile, JPEG comments,
WAV LIST/INFO and id3 chunks, FLAC/Vorbis comments and pictures, container and stream
tags). What was there is recorded in meta by media_metadata (kinds and PII finding counts,
never values). The original bytes are not kept: nothing downstream needs them (curate,
dedup, shards and the teacher all work from decoded pixels, samples or frames).

- Images: PNG of the decoded pixels with the EXIF orientation already applied (so the
  stored pixels are what a viewer shows). An ICC profile is applied, not kept: RGB, RGBA,
  CMYK and palette pixels are converted to sRGB with it (ImageCms), then it is dropped;
  grey images and profiles LittleCMS refuses keep their pixel values and lose the profile
  (meta.icc_to_srgb says which). Animations (GIF, APNG, WebP) become APNG with their frame
  durations; other multi-frame files (TIFF pages, MPO) keep their first frame.
- Audio: the decoded samples, exactly: WAV stays WAV in its PCM/float sample format, FLAC and
  other 8/16/24-bit PCM become FLAC, 32-bit/float non-WAV becomes float WAV; lossy or
  companded codecs (Vorbis, Opus, MP3, ADPCM, u-law, ...) become FLAC 16-bit of their
  decoded samples. libsndfile writes no tag chunk (and no PEAK timestamp: switched off).
- Video: video.py remuxes the first video and audio streams (packets unchanged, except that
  H.264/HEVC SEI and AV1 metadata units, which can carry free text, are filtered out) into
  Matroska with no tags, written bit-exact (no encoder string, no random UIDs).

`png_is_clean` / `wav_is_clean` tell, cheaply (chunk headers only), whether bytes are of
the kind written here; teacher.media re-encodes anything else before it leaves the machine.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PIL import Image, ImageCms

from sources.media_metadata import PNG_SIGNATURE, png_chunks
from sources.media_store import is_disk_full

# -- images ---------------------------------------------------------------------------------
# zlib level of stored PNGs. Measured on a 1024x768 photo-like image (bench/gather_media.py's
# kind): level 1 encodes in 0.11 s and 1.404 MB, Pillow's default 6 in 0.40 s and 1.392 MB;
# PNG encoding is most of gather's time per image, and photos gain <1% from the higher level.
PNG_COMPRESS_LEVEL = 1

_ORIENTATION_TRANSPOSE = {  # EXIF orientation -> the transpose that undoes it (as ImageOps.exif_transpose)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}
_ANIMATED_FORMATS = {"GIF", "PNG", "APNG", "WEBP"}
_ICC_MODES = {"RGB", "RGBA", "CMYK", "P"}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_CLEAN_PNG_CHUNKS = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"acTL", b"fcTL", b"fdAT"}


def _png_mode(im: Image.Image) -> Image.Image:
    if im.mode in _PNG_MODES:
        return im
    if im.mode.startswith("I;16"):
        return im.convert("I")
    return im.convert("RGBA" if "A" in im.mode or "a" in im.mode else "RGB")


def _to_srgb(im: Image.Image, icc: bytes) -> Image.Image | None:
    """`im`'s pixels converted from profile `icc` to sRGB, or None when that cannot be done."""
    if im.mode not in _ICC_MODES:
        return None
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(im, src, _SRGB, outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _clean_frame(frame: Image.Image, orientation: int, icc: bytes | None, facts: dict) -> Image.Image:
    if icc:
        converted = _to_srgb(frame, icc)
        facts["icc_to_srgb"] = converted is not None
        frame = converted if converted is not None else frame
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    if method is not None:
        frame = frame.transpose(method)
    frame = _png_mode(frame)
    # Pillow's PNG writer takes the ICC profile (and more) from .info: keep only transparency.
    frame.info = {k: v for k, v in frame.info.items() if k == "transparency"}
    return frame


def clean_image(im: Image.Image, orientation: int) -> tuple[bytes, dict]:
    """(PNG bytes with no metadata, facts for meta) of a loaded Pillow image."""
    icc = im.info.get("icc_profile") or None
    facts: dict = {}
    buf = io.BytesIO()
    n_frames = getattr(im, "n_frames", 1)
    if n_frames > 1 and im.format in _ANIMATED_FORMATS:
        frames, durations = [], []
        for i in range(n_frames):
            im.seek(i)
            durations.append(int(im.info.get("duration", 100) or 100))
            frames.append(_clean_frame(im.convert("RGBA"), orientation, None, facts))
        im.seek(0)
        frames[0].save(
            buf,
            "PNG",
            save_all=True,
            append_images=frames[1:],
            duration=durations,
            loop=int(im.info.get("loop", 0) or 0),
            compress_level=PNG_COMPRESS_LEVEL,
        )
        if icc:
            facts["icc_to_srgb"] = False
    else:
        if n_frames > 1:
            im.seek(0)
            facts["frames_dropped"] = n_frames - 1
        _clean_frame(im, orientation, icc, facts).save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue(), facts


def png_is_clean(data: bytes) -> bool:
    """True for a PNG made only of image chunks (what clean_image writes); reads chunk headers only."""
    if not data.startswith(PNG_SIGNATURE):
        return False
    fh = io.BytesIO(data)
    fh.seek(len(PNG_SIGNATURE))
    return all(ctype in _CLEAN_PNG_CHUNKS for ctype, _ in png_chunks(fh, skip_data=frozenset(_CLEAN_PNG_CHUNKS)))


def clean_image_bytes(data: bytes) -> bytes:
    """Any image Pillow reads -> clean PNG (EXIF orientation applied). Raises what Pillow raises."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        orientation = int(im.getexif().get(0x0112, 1) or 1)
        return clean_image(im, orientation)[0]


# -- audio ----------------------------------------------------------------------------------
_EXACT_DTYPE = {
    "PCM_U8": "int32",
    "PCM_S8": "int32",
    "PCM_16": "int16",
    "PCM_24": "int32",
    "PCM_32": "int32",
    "FLOAT": "float32",
    "DOUBLE": "float64",
}
_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile: the PEAK chunk of float WAV holds a wall-clock timestamp


def audio_target(fmt: str, subtype: str) -> tuple[str, str, str]:
    """(format, subtype, read dtype) that stores the decoded samples of `fmt`/`subtype` exactly."""
    if fmt == "WAV" and subtype in _EXACT_DTYPE and subtype != "PCM_S8":
        return "WAV", subtype, _EXACT_DTYPE[subtype]
    if subtype in ("PCM_S8", "PCM_16", "PCM_24"):
        return "FLAC", subtype, _EXACT_DTYPE[subtype]
    if subtype == "PCM_U8":
        return "FLAC", "PCM_16", "int32"
    if subtype in ("PCM_32", "FLOAT", "DOUBLE"):
        return "WAV", subtype, _EXACT_DTYPE[subtype]
    return "FLAC", "PCM_16", "float32"


class _KeepWriteError:
    """A file for soundfile's virtual I/O that keeps the OSError of a failed write.

    libsndfile turns a failed write (disk full) into an errno-less error for WAV and into
    nothing at all for FLAC (a silently cut file); through this wrapper the OSError itself
    is raised, so gather treats a full disk as the lake's problem, not the item's.
    """

    def __init__(self, fh) -> None:
        self.fh = fh
        self.error: OSError | None = None

    def write(self, data) -> int:
        if self.error is None:
            try:
                return self.fh.write(data)
            except OSError as exc:
                self.error = exc
        return 0

    def read(self, n: int = -1) -> bytes:
        return self.fh.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self.fh.seek(offset, whence)  # flushes the buffer: a write can fail here too
        except OSError as exc:
            self.error = self.error or exc
            return -1

    def tell(self) -> int:
        return self.fh.tell()


def clean_audio(src: str, dst: Path, block_frames: int) -> dict:
    """Write the samples of audio file `src` to `dst` with no metadata; return {"format", "subtype"}.

    A failed write raises its OSError (errno intact)."""
    with sf.SoundFile(src) as f, open(dst, "w+b") as raw:
        fmt, subtype, dtype = audio_target(f.format, f.subtype)
        guard = _KeepWriteError(raw)
        try:
            with sf.SoundFile(
                guard, "w", samplerate=f.samplerate, channels=f.channels, subtype=subtype, format=fmt
            ) as out:
                if fmt == "WAV":
                    sf._snd.sf_command(out._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
                while True:
                    block = f.read(block_frames, dtype=dtype, always_2d=True)
                    if not len(block):
                        break
                    if dtype == "float32" and subtype.startswith("PCM"):
                        block = np.clip(block, -1.0, 1.0)  # libsndfile wraps, not clips, out-of-range floats
                    out.write(block)
        except Exception:  # libsndfile's error, or soundfile's own assert on a short write
            if guard.error is not None:
                raise guard.error from None
            raise
        if guard.error is not None:
            raise guard.error
    return {"format": fmt, "subtype": subtype}


def wav_is_clean(data: bytes) -> bool:
    """True for a RIFF/WAVE made only of fmt/fact/data chunks (and zero padding); headers only."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        if cid == b"data":
            return len(data) <= pos + 8 + size + (size & 1)  # nothing may follow the samples
        if cid == b"PAD " and any(data[pos + 8 : pos + 8 + size]):
            return False
        if cid not in (b"fmt ", b"fact", b"PAD "):
            return False
        pos += 8 + size + (size & 1)
    return False


def clean_wav_bytes(data: bytes) -> bytes:
    """Any audio libsndfile decodes -> 16-bit PCM WAV with no metadata."""
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    out = io.BytesIO()
    sf.write(out, np.clip(samples, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


# -- video ----------------------------------------------------------------------------------
# Bitstream units that carry free-form data (user-data SEI, metadata OBUs); FFmpeg filter_units.
_BSF = {
    "h264": "filter_units=remove_types=6",
    "hevc": "filter_units=remove_types=39|40",
    "av1": "filter_units=remove_types=5",
}


class RemuxError(Exception):
    """A stream decoded but its packets could not be copied (e.g. no timestamps)."""


class VideoRemux:
    """Copies the packets of chosen input streams into a tag-free Matroska file at `path`.

    Call `mux(packet)` AFTER the packet was decoded (a bitstream filter takes its data).
    """

    def __init__(self, path: Path, streams: list) -> None:
        import av
        from av.bitstream import BitStreamFilterContext

        self.path = Path(path)
        self.out = None
        self.map: dict[int, Any] = {}
        self.bsf: dict[int, Any] = {}
        try:
            self.out = av.open(str(path), "w", format="matroska", options={"fflags": "+bitexact"})
            for s in streams:
                self.map[s.index] = self.out.add_stream_from_template(s)
                name = _BSF.get(s.codec_context.name)
                if name:
                    self.bsf[s.index] = BitStreamFilterContext(name, s)
        except (av.error.FFmpegError, ValueError, TypeError) as exc:
            self.discard()
            if is_disk_full(exc):
                raise
            raise RemuxError(f"cannot set up the remux: {type(exc).__name__}: {exc}") from exc

    def mux(self, packet) -> None:
        index = packet.stream.index
        if index not in self.map:
            return
        bsf = self.bsf.get(index)
        packets = (
            bsf.filter(packet if packet.dts is not None else None)
            if bsf
            else ([packet] if packet.dts is not None else [])
        )
        try:
            for p in packets:
                p.stream = self.map[index]
                self.out.mux(p)
        except (_av_error(), ValueError) as exc:
            if is_disk_full(exc):
                raise
            raise RemuxError(f"cannot copy {packet.stream.type} packets: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self.out.close()

    def discard(self) -> None:
        try:
            if self.out is not None:
                self.out.close()
        except Exception:  # noqa: BLE001 - already closed, or half-written: removed either way
            pass
        self.path.unlink(missing_ok=True)


def _av_error() -> type:
    import av

    return av.error.FFmpegError
