"""Open an image with a pixel limit that belongs to the call, not to the process.

Pillow's `Image.open` checks the header's size against the module global
`Image.MAX_IMAGE_PIXELS` (a warning above it, an error above twice it). A per-source limit
set through that global races when gather reads several sources on threads: one call's
limit becomes another's, and a restore can leave a stranger's value behind. Turning the
warning into an error with `warnings.catch_warnings` races the same way (the filter list is
process-wide too). So `open_within` identifies the file the way `Image.open` does (each
registered format's `accept` on the first bytes, then its factory, which reads the header
only) and compares width * height with the limit it is given, before any pixel is decoded.
Nothing process-wide is read for the decision or written.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, ImageFile, UnidentifiedImageError


class TooManyPixels(Image.DecompressionBombError):
    """The header declares more pixels than the caller's limit (a decompression bomb)."""


def _identify(fp, filename: str) -> ImageFile.ImageFile:
    """The lazily opened image (header read, no pixels): Image.open's format loop without
    its global size check. UnidentifiedImageError when no registered format accepts it."""
    Image.init()  # every plugin registered once per process; Pillow's own open does the same on a miss
    prefix = fp.read(16)
    for fmt in list(Image.ID):
        factory, accept = Image.OPEN[fmt]
        if accept is not None and (not (result := accept(prefix)) or isinstance(result, str)):
            continue  # a str is Pillow's "looks like FMT, but unsupported" note
        fp.seek(0)
        try:
            return factory(fp, filename)
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue  # not this format (what Image.open does too)
    raise UnidentifiedImageError(f"cannot identify image file {filename!r}")


@contextmanager
def open_within(path: str, max_pixels: int) -> Iterator[ImageFile.ImageFile]:
    """Yield the image at `path`, opened lazily, if its header says at most `max_pixels`
    pixels; raise TooManyPixels (naming both numbers) before decoding otherwise. The file is
    closed when the block ends. Errors of a bad file are Pillow's (UnidentifiedImageError,
    OSError, SyntaxError, ...), as from Image.open."""
    with open(path, "rb") as fp:
        im = _identify(fp, path)
        try:
            width, height = im.size
            if width * height > max_pixels:
                raise TooManyPixels(f"{width}x{height} = {width * height} pixels > max_image_pixels {max_pixels}")
            yield im
        finally:
            im.close()
