"""The `audio` kind: one record per audio file libsndfile decodes (WAV, FLAC, OGG/Vorbis, Opus, AIFF, MP3 where built in).

The whole file is decoded in blocks of `block_frames` (memory stays one block) so that a
file whose header promises more than its body holds is caught: libsndfile quietly shrinks
the frame count of a cut WAV, so RIFF/WAVE chunk sizes are also checked against the file
size. meta: sample_rate, channels, frames (decoded), duration (s), format, subtype, bytes
(of the source file). The CAS gets the decoded samples re-encoded with no metadata
(media_strip.clean_audio: WAV or FLAC, stored_format/stored_subtype/stored_bytes in meta;
the id is the content_id of those bytes); what metadata the file had is in
metadata_stripped and metadata_redactions (media_metadata).

Quarantine reasons: zero_byte, wrong_extension (magic of a non-audio kind), truncated
(header sizes beyond the end of file, or fewer frames decoded than declared), unreadable
(libsndfile cannot open or decode it).
"""

from __future__ import annotations

import struct
from pathlib import Path

import soundfile as sf

from sources.config import AudioSource
from sources.item import SourceItem
from sources.media_checks import open_checks
from sources.media_metadata import audio_metadata
from sources.media_store import adopt_file, temp_file
from sources.media_strip import clean_audio
from sources.record import RowSink, file_hashes
from sources.sniff import AUDIO_KINDS

_UNKNOWN_SIZES = {0, 0xFFFFFFFF}  # streaming writers leave these placeholders


def riff_truncation(path: str) -> str | None:
    """For a RIFF/WAVE file: a message if a chunk claims more bytes than the file has, else None."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        fh.seek(0, 2)
        size = fh.tell()
        riff_size = struct.unpack("<I", head[4:8])[0]
        if riff_size not in _UNKNOWN_SIZES and riff_size + 8 > size:
            return f"RIFF header says {riff_size + 8} bytes, file has {size}"
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"data":
                if chunk_size not in _UNKNOWN_SIZES and pos + 8 + chunk_size > size:
                    return f"data chunk says {chunk_size} bytes, {size - pos - 8} present"
                return None
            pos += 8 + chunk_size + (chunk_size & 1)
        return "no complete data chunk"


def read_audio(sink: RowSink, source: AudioSource, item: SourceItem, media_root: Path) -> None:
    """Append exactly one outcome row for the audio `item`."""
    uri = item.uri
    if not open_checks(sink, uri, item.path, AUDIO_KINDS | {None}):
        return
    cut = riff_truncation(item.path)
    if cut:
        sink.quarantine(uri=uri, reason="truncated", error=cut)
        return
    try:
        with sf.SoundFile(item.path) as f:
            declared = f.frames
            info = {"sample_rate": f.samplerate, "channels": f.channels, "format": f.format, "subtype": f.subtype}
            stripped = audio_metadata(item.path, f)
            decoded = 0
            while True:
                block = f.read(source.block_frames, dtype="float32", always_2d=True)
                if not len(block):
                    break
                decoded += len(block)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        sink.quarantine(uri=uri, reason="unreadable", error=f"{type(exc).__name__}: {exc}")
        return
    if decoded < declared or decoded == 0:
        sink.quarantine(uri=uri, reason="truncated", error=f"decoded {decoded} of {declared} declared frames")
        return
    tmp = temp_file(media_root, ".audio")
    try:
        stored = clean_audio(item.path, tmp, source.block_frames)
        rid, sha, size = file_hashes("audio", tmp)
        ref = adopt_file(media_root, tmp, sha)
    finally:
        tmp.unlink(missing_ok=True)
    meta = {
        **info,
        "frames": decoded,
        "duration": round(decoded / info["sample_rate"], 6),
        "bytes": Path(item.path).stat().st_size,
        "stored_format": stored["format"],
        "stored_subtype": stored["subtype"],
        "stored_bytes": size,
        **stripped.meta(),
    }
    sink.document(id=rid, modality="audio", uri=uri, license=source.license, meta=meta, media=ref)
