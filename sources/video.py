"""The `video` kind: one record per video file PyAV (FFmpeg) decodes.

One demux pass over the first video stream (and the first audio stream when
`extract_audio`): every video frame is decoded (so a cut or corrupt file is caught),
frames are sampled at `frame_rate` per second of presentation time (the first frame at or
after each 1/frame_rate tick, at most `max_frames`), and the audio track is resampled to
16-bit PCM and written as WAV.

Everything goes to the CAS (media_store), none of it with the file's metadata: the first
video and audio streams remuxed, in the same pass, into a tag-free Matroska file
(media_strip.VideoRemux; DOCUMENT.media, and the id is the content_id of those bytes),
each sampled frame as PNG (meta.frames = [{"t": seconds, "media": "media/.."}]), the
audio track as WAV (meta.audio = {"media", "sample_rate", "channels", "frames"}). Sampled
frames are held in memory (<= max_frames PNGs) and written only once the whole file
decoded, so a quarantined video leaves nothing behind. meta also has container (of the
source), codec, width, height, fps, duration (s), frames_decoded, bytes (of the source),
stored_format ("matroska"), stored_bytes, metadata_stripped and metadata_redactions
(media_metadata: tags and dropped streams).

Quarantine reasons: zero_byte, wrong_extension, unreadable (FFmpeg cannot open it),
no_video_stream, no_decodable_frames, truncated (decoding fails part-way, or the frames
stop well before the declared duration: see TRUNCATION_COVERAGE), remux_failed (the
streams decode but cannot be copied into Matroska, e.g. packets without timestamps).
"""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import av

from sources.config import VideoSource
from sources.item import SourceItem
from sources.media_checks import open_checks
from sources.media_metadata import video_metadata
from sources.media_store import adopt_file, is_disk_full, put_bytes, temp_file
from sources.media_strip import RemuxError, VideoRemux
from sources.record import RowSink, file_hashes
from sources.sniff import VIDEO_KINDS

# Share of the declared duration the decoded frames must cover (less two frame intervals);
# 0.9 leaves room for streams whose header duration is rounded or includes a trailing gap.
TRUNCATION_COVERAGE = 0.9

_AV_ERRORS = (av.error.FFmpegError, ValueError, OSError, EOFError)


def mp4_truncation(path: str) -> str | None:
    """For an ISO-BMFF (MP4/MOV) file: a message if a top-level box runs past the end, else None."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if head[4:8] != b"ftyp":
            return None
        fh.seek(0, 2)
        size = fh.tell()
        pos = 0
        while pos + 8 <= size:
            fh.seek(pos)
            box_size, box_type = struct.unpack(">I4s", fh.read(8))
            if box_size == 1:
                box_size = struct.unpack(">Q", fh.read(8))[0]
            elif box_size == 0:  # runs to the end of the file by definition
                return None
            if box_size < 8 or pos + box_size > size:
                return f"MP4 box {box_type.decode('latin-1')!r} at {pos} claims {box_size} bytes, file has {size - pos} left"
            pos += box_size
        return None


class _AudioTrack:
    """Streams a decoded audio track into a temporary WAV inside the media store."""

    def __init__(self, stream, media_root: Path) -> None:
        self.channels = min(stream.codec_context.channels or 1, 2)
        self.rate = stream.codec_context.sample_rate or stream.rate
        self.resampler = av.AudioResampler(
            format="s16", layout="mono" if self.channels == 1 else "stereo", rate=self.rate
        )
        self.path = temp_file(media_root, ".wav")
        self.wav = wave.open(str(self.path), "wb")
        self.wav.setnchannels(self.channels)
        self.wav.setsampwidth(2)
        self.wav.setframerate(self.rate)
        self.frames = 0

    def add(self, frame) -> None:
        for out in self.resampler.resample(frame):
            self._write(out)

    def _write(self, out) -> None:
        data = bytes(out.to_ndarray().tobytes())
        self.wav.writeframes(data)
        self.frames += out.samples

    def finish(self, media_root: Path) -> dict | None:
        for out in self.resampler.resample(None):
            self._write(out)
        self.wav.close()
        if self.frames == 0:
            self.discard()
            return None
        return {
            "media": adopt_file(media_root, self.path),
            "sample_rate": self.rate,
            "channels": self.channels,
            "frames": self.frames,
        }

    def discard(self) -> None:
        try:
            self.wav.close()
        except Exception:  # already closed
            pass
        self.path.unlink(missing_ok=True)


def read_video(sink: RowSink, source: VideoSource, item: SourceItem, media_root: Path) -> None:
    """Append exactly one outcome row for the video `item`."""
    uri = item.uri
    if not open_checks(sink, uri, item.path, VIDEO_KINDS | {None}):
        return
    try:
        container = av.open(item.path, mode="r")
    except _AV_ERRORS as exc:
        cut = mp4_truncation(item.path)
        sink.quarantine(
            uri=uri,
            reason="truncated" if cut else "unreadable",
            error=f"{cut + '; ' if cut else ''}{type(exc).__name__}: {exc}",
        )
        return
    audio = remux = None
    ok = False  # set once the whole file decoded; otherwise the temporary audio and remux are removed
    try:
        with container:
            if not container.streams.video:
                sink.quarantine(uri=uri, reason="no_video_stream", error="container has no video stream")
                return
            vs = container.streams.video[0]
            streams = [vs]
            if container.streams.audio:
                streams.append(container.streams.audio[0])
                if source.extract_audio:
                    audio = _AudioTrack(container.streams.audio[0], media_root)
            stripped = video_metadata(container, {s.index for s in streams})
            remux = VideoRemux(temp_file(media_root, ".mkv"), streams)
            fps = float(vs.average_rate or vs.guessed_rate or 0) or None
            interval = 1.0 / source.frame_rate
            next_t, decoded, sampled, last_t = 0.0, 0, [], 0.0
            try:
                for packet in container.demux(*streams):
                    if packet.stream.type == "audio":
                        if audio is not None:
                            for frame in packet.decode():
                                audio.add(frame)
                        remux.mux(packet)
                        continue
                    for frame in packet.decode():
                        t = float(frame.time) if frame.time is not None else decoded / (fps or 1.0)
                        decoded += 1
                        last_t = max(last_t, t)
                        if t + 1e-9 >= next_t and len(sampled) < source.max_frames:
                            buf = io.BytesIO()
                            frame.to_image().save(buf, "PNG")
                            sampled.append((round(t, 6), buf.getvalue()))
                            while next_t <= t + 1e-9:
                                next_t += interval
                    remux.mux(packet)
            except RemuxError:
                raise
            except _AV_ERRORS as exc:
                if is_disk_full(exc):  # writing the audio track or the remux: the lake's problem
                    raise
                if decoded:
                    raise _Truncated(f"decoding failed after {decoded} frames: {type(exc).__name__}: {exc}") from exc
                raise
            if decoded == 0:
                sink.quarantine(uri=uri, reason="no_decodable_frames", error="no video frame decoded")
                return
            stream_duration = float(vs.duration * vs.time_base) if vs.duration else None
            duration = stream_duration or (container.duration / av.time_base if container.duration else None)
            # FFmpeg decodes a cut Matroska/WebM quietly up to the cut: frames must reach
            # (nearly) the duration the header declares, else the file is truncated.
            if duration and last_t < duration * TRUNCATION_COVERAGE - 2.0 / (fps or 1.0):
                sink.quarantine(
                    uri=uri, reason="truncated", error=f"frames end at {last_t:.3f}s of a declared {duration:.3f}s"
                )
                return
            meta = {
                "container": container.format.name,
                "codec": vs.codec_context.name,
                "width": vs.codec_context.width,
                "height": vs.codec_context.height,
                "fps": round(fps, 6) if fps else None,
                "duration": round(duration, 6) if duration else None,
                "frames_decoded": decoded,
            }
            ok = True
    except _Truncated as exc:
        sink.quarantine(uri=uri, reason="truncated", error=str(exc))
        return
    except RemuxError as exc:
        sink.quarantine(uri=uri, reason="remux_failed", error=str(exc))
        return
    except _AV_ERRORS as exc:
        if is_disk_full(exc):
            raise
        sink.quarantine(uri=uri, reason="unreadable", error=f"{type(exc).__name__}: {exc}")
        return
    finally:
        if audio is not None and not ok:
            audio.discard()
        if remux is not None and not ok:
            remux.discard()
    try:
        remux.close()
    except _AV_ERRORS as exc:
        remux.discard()
        if audio is not None:
            audio.discard()
        if is_disk_full(exc):
            raise
        sink.quarantine(uri=uri, reason="remux_failed", error=f"{type(exc).__name__}: {exc}")
        return
    meta["frames"] = [{"t": t, "media": put_bytes(media_root, png)} for t, png in sampled]
    meta["audio"] = audio.finish(media_root) if audio is not None else None
    rid, sha, size = file_hashes("video", remux.path)
    meta.update(
        {"bytes": Path(item.path).stat().st_size, "stored_format": "matroska", "stored_bytes": size, **stripped.meta()}
    )
    ref = adopt_file(media_root, remux.path, sha)
    sink.document(id=rid, modality="video", uri=uri, license=source.license, meta=meta, media=ref)


class _Truncated(Exception):
    pass
