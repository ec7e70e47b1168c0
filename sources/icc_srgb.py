"""Whether an ICC profile is sRGB: decides if an image's pixels can be kept as they are.

A JPEG or WebP tagged with an sRGB profile already holds sRGB pixels, so gather can keep its
compressed data and drop the profile (jpeg_strip, webp_strip); any other profile means the
pixels must be converted (media_strip's PNG path). The decision reads the profile's
colorants and tone curves, not its name: a profile called "sRGB" with other primaries or a
linear curve is not sRGB.
"""

from __future__ import annotations

import struct

# sRGB's primaries adapted to D50 as an ICC profile stores them (rXYZ, gXYZ, bXYZ; IEC 61966-2-1
# via the Bradford transform, the values of the ICC's sRGB profiles), and its tone curve.
_SRGB_COLORANTS = {
    b"rXYZ": (0.4361, 0.2225, 0.0139),
    b"gXYZ": (0.3851, 0.7169, 0.0971),
    b"bXYZ": (0.1431, 0.0606, 0.7141),
}
_COLORANT_TOLERANCE = 0.003  # s15Fixed16 rounding and the 4-decimal values of published profiles
# Largest gap to sRGB's curve at the probes: 16-bit table rounding and published profiles'
# parametric fits are within 0.001; gamma 2.2 is 0.0084 off at 0.75 (0.5309 vs 0.5225): refused.
_TRC_TOLERANCE = 0.004
_TRC_PROBES = (0.25, 0.5, 0.75)


def _srgb_curve(x: float) -> float:
    return x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4


def _para(kind: int, p: list[float], x: float) -> float:
    g, a, b, c, d, e, f = p
    if kind == 0:
        return x**g
    if kind in (1, 2):
        offset = c if kind == 2 else 0.0
        return (a * x + b) ** g + offset if a and x >= -b / a else offset
    return (a * x + b) ** g + e if x >= d else c * x + f


def _trc_is_srgb(tag: bytes) -> bool:
    """True for a 'curv' table or 'para' function that follows sRGB's curve at the probes."""
    points: list[tuple[float, float]] = []
    if tag[:4] == b"curv" and len(tag) >= 12:
        count = struct.unpack_from(">I", tag, 8)[0]
        if count < 2 or len(tag) < 12 + 2 * count:
            return False  # identity or a pure gamma: not sRGB's curve
        for x in _TRC_PROBES:
            i = round(x * (count - 1))
            points.append((i / (count - 1), struct.unpack_from(">H", tag, 12 + 2 * i)[0] / 65535))
    elif tag[:4] == b"para" and len(tag) >= 12:
        kind = struct.unpack_from(">H", tag, 8)[0]
        n = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(kind)
        if n is None or len(tag) < 12 + 4 * n:
            return False
        p = [v / 65536 for v in struct.unpack_from(f">{n}i", tag, 12)] + [0.0] * (7 - n)
        points = [(x, _para(kind, p, x)) for x in _TRC_PROBES]
    else:
        return False
    return all(abs(y - _srgb_curve(x)) <= _TRC_TOLERANCE for x, y in points)


def icc_is_srgb(icc: bytes) -> bool:
    """True for an RGB profile with sRGB's primaries and tone curves (its name is not trusted)."""
    try:
        if len(icc) < 132 or icc[16:20] != b"RGB " or icc[20:24] != b"XYZ ":
            return False
        count = struct.unpack_from(">I", icc, 128)[0]
        tags = {}
        for i in range(min(count, 256)):
            sig, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
            tags[sig] = icc[offset : offset + size]
        for sig, want in _SRGB_COLORANTS.items():
            tag = tags.get(sig, b"")
            if tag[:4] != b"XYZ " or len(tag) < 20:
                return False
            got = [v / 65536 for v in struct.unpack_from(">3i", tag, 8)]
            if any(abs(g - w) > _COLORANT_TOLERANCE for g, w in zip(got, want)):
                return False
        return all(_trc_is_srgb(tags.get(sig, b"")) for sig in (b"rTRC", b"gTRC", b"bTRC"))
    except (struct.error, ValueError, ZeroDivisionError, OverflowError):
        return False
