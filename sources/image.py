"""The `images` kind: one record per image file Pillow can read (PNG, JPEG, GIF, WebP, TIFF, ...).

The CAS gets a metadata-free copy of the image (the id is the content_id of those bytes, so
two files that differ only in metadata are one item): a JPEG or still WebP whose pixels need
no change (no EXIF rotation, no ICC profile or an sRGB one) keeps its compressed data with
every metadata segment or chunk removed (jpeg_strip.clean_jpeg, webp_strip.clean_webp, both
checked to decode to the same pixels); any other image becomes a PNG of the decoded pixels
with the EXIF orientation applied (media_strip.clean_image). meta records what a viewer
sees: width and height AFTER the EXIF orientation is applied (orientations 5-8 swap the
axes, exactly as ImageOps.exif_transpose would rotate them), plus the source file's format, mode, n_frames,
bytes and orientation tag, stored_format/stored_bytes, and what metadata was stripped
(metadata_stripped, metadata_redactions: see media_metadata; icc_to_srgb when the file had
an ICC profile).

Refusals (quarantine reasons): zero_byte, wrong_extension (magic number of another kind,
or Pillow's format disagrees with the extension), decompression_bomb (header says more
than `max_image_pixels` pixels; checked before decoding, per call, without Pillow's global
limit), truncated (pixel data ends early), unreadable
(Pillow cannot identify or decode it).
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from sources.config import ImagesSource
from sources.image_open import open_within
from sources.item import SourceItem
from sources.jpeg_strip import clean_jpeg
from sources.media_checks import open_checks
from sources.media_metadata import image_metadata
from sources.media_store import put_bytes
from sources.media_strip import clean_image
from sources.record import RowSink, content_id
from sources.sniff import IMAGE_KINDS
from sources.webp_strip import clean_webp

_SWAPS_AXES = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112
# Pillow format -> (the lossless rewrite that keeps its compressed data, stored_format)
_KEEP_DATA = {"JPEG": (clean_jpeg, "JPEG"), "MPO": (clean_jpeg, "JPEG"), "WEBP": (clean_webp, "WEBP")}


def _format_for_extension(path: str) -> str | None:
    return Image.registered_extensions().get(os.path.splitext(path)[1].lower())


def _same_family(a: str, b: str) -> bool:
    # Pillow names e.g. .jpg -> JPEG but opens MPO (multi-picture JPEG) files as MPO.
    families = [{"JPEG", "MPO"}, {"TIFF"}, {"PNG", "APNG"}]
    return a == b or any(a in f and b in f for f in families)


def _kept_facts(im: Image.Image, n_frames: int) -> dict:
    """clean_image's facts for an image stored by clean_jpeg/clean_webp: only an sRGB profile
    is dropped there (the pixels already are sRGB) and only the first frame of an MPO is kept."""
    facts: dict = {"icc_to_srgb": True} if im.info.get("icc_profile") else {}
    if n_frames > 1:
        facts["frames_dropped"] = n_frames - 1
    return facts


def read_image(sink: RowSink, source: ImagesSource, item: SourceItem, media_root: Path) -> None:
    """Append exactly one outcome row for the image `item`."""
    uri = item.uri
    if not open_checks(sink, uri, item.path, IMAGE_KINDS | {None}):
        return
    try:
        # Opened from the path with this source's limit (sources/image_open.py: no global
        # is read or set, so threads with different limits decide independently): the
        # header is read lazily, so a bomb is refused before its pixels are in memory.
        with open_within(item.path, source.max_image_pixels) as im:
            width, height = im.size
            expected = _format_for_extension(item.path)
            if expected and im.format and not _same_family(expected, im.format):
                sink.quarantine(
                    uri=uri, reason="wrong_extension", error=f"extension says {expected}, content is {im.format}"
                )
                return
            fmt, mode = im.format, im.mode
            n_frames = getattr(im, "n_frames", 1)
            orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
            im.load()  # decode the pixels: a cut-off file fails here, not downstream
            stripped = image_metadata(item.path, im)
            stored, keep = None, _KEEP_DATA.get(fmt)
            if keep:  # JPEG and WebP keep their compressed data when no pixel must change
                stored = keep[0](Path(item.path).read_bytes(), im, orientation)
            if stored is not None:
                stored_format, facts = keep[1], _kept_facts(im, n_frames)
            else:
                stored_format = "PNG"
                stored, facts = clean_image(im, orientation)
    except Image.DecompressionBombError as exc:  # ours, or Pillow's own check of a later frame or tile
        sink.quarantine(uri=uri, reason="decompression_bomb", error=str(exc))
        return
    except UnidentifiedImageError as exc:
        sink.quarantine(uri=uri, reason="unreadable", error=f"not an image Pillow can identify: {exc}")
        return
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc)
        reason = "truncated" if "truncated" in msg or isinstance(exc, EOFError) else "unreadable"
        sink.quarantine(uri=uri, reason=reason, error=f"{type(exc).__name__}: {msg}")
        return
    if orientation in _SWAPS_AXES:
        width, height = height, width
    meta = {
        "width": width,
        "height": height,
        "format": fmt,
        "mode": mode,
        "n_frames": n_frames,
        "bytes": os.path.getsize(item.path),
        "exif_orientation": orientation,
        "stored_format": stored_format,
        "stored_bytes": len(stored),
        **facts,
        **stripped.meta(),
    }
    ref = put_bytes(media_root, stored)
    sink.document(
        id=content_id("image", stored), modality="image", uri=uri, license=source.license, meta=meta, media=ref
    )
