"""The training loss as a picture a person reads at a glance: an SVG line chart in markdown.

The Prefect UI renders a markdown artifact through a sanitizer that strips inline `<svg>`
drawing elements but keeps an image whose source is a `data:` URI (checked with headless
Chromium: tests/test_operate_server.py), so the chart travels as
`![...](data:image/svg+xml;base64,...)`. It draws on a white background of its own, so it
reads on the UI's dark and light themes alike.
"""

from __future__ import annotations

import base64
import math

MAX_POINTS = 512  # points kept of a long run's curve: about one per pixel of the chart's width
WIDTH, HEIGHT = 720, 260
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 16, 16, 36


def thin(losses: list[float], first_step: int = 0, max_points: int = MAX_POINTS) -> list[list[float]]:
    """[[step, loss], ...] for per-step `losses` starting after `first_step`, averaged over
    equal runs of steps when there are more than `max_points` (each point: its run's last step)."""
    n = len(losses)
    size = max(1, math.ceil(n / max_points))
    out = []
    for i in range(0, n, size):
        chunk = losses[i : i + size]
        out.append([first_step + i + len(chunk), sum(chunk) / len(chunk)])
    return out


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def loss_svg(points: list[list[float]]) -> str:
    """An SVG line chart of [[step, loss], ...]: loss on the y axis, step on the x axis."""
    pts = [(float(s), float(v)) for s, v in points if math.isfinite(v)]
    if not pts:
        pts = [(0.0, 0.0)]
    x0, x1 = pts[0][0], pts[-1][0]
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    if x1 - x0 < 1e-12:
        x0, x1 = x0 - 1, x1 + 1
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def xy(s: float, v: float) -> str:
        return f"{PAD_LEFT + (s - x0) / (x1 - x0) * plot_w:.1f},{PAD_TOP + (hi - v) / (hi - lo) * plot_h:.1f}"

    line = " ".join(xy(s, v) for s, v in pts)
    bottom, right = PAD_TOP + plot_h, PAD_LEFT + plot_w
    text = 'font-family="sans-serif" font-size="12" fill="#333"'
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<path d="M{PAD_LEFT},{PAD_TOP} V{bottom} H{right}" fill="none" stroke="#888" stroke-width="1"/>',
        f'<polyline points="{line}" fill="none" stroke="#1f6feb" stroke-width="2" stroke-linejoin="round"/>',
        f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + 10}" text-anchor="end" {text}>{_fmt(hi)}</text>',
        f'<text x="{PAD_LEFT - 6}" y="{bottom}" text-anchor="end" {text}>{_fmt(lo)}</text>',
        f'<text x="{PAD_LEFT}" y="{bottom + 16}" text-anchor="middle" {text}>{int(x0)}</text>',
        f'<text x="{right}" y="{bottom + 16}" text-anchor="end" {text}>{int(x1)}</text>',
        f'<text x="{PAD_LEFT + plot_w / 2}" y="{bottom + 30}" text-anchor="middle" {text}>step</text>',
        f'<text x="14" y="{PAD_TOP + plot_h / 2}" text-anchor="middle" {text} '
        f'transform="rotate(-90 14 {PAD_TOP + plot_h / 2})">loss</text>',
        "</svg>",
    ]
    return "".join(parts)


def loss_markdown(points: list[list[float]], title: str = "train loss per step") -> str:
    """Markdown with the chart as an image, and the first, lowest and last loss in words."""
    svg = base64.b64encode(loss_svg(points).encode()).decode()
    lines = [f"![{title}](data:image/svg+xml;base64,{svg})", ""]
    if points:
        first, last = points[0], points[-1]
        low = min(points, key=lambda p: p[1])
        lines.append(
            f"Loss {_fmt(first[1])} at step {int(first[0])} → {_fmt(last[1])} at step {int(last[0])} "
            f"(lowest {_fmt(low[1])} at step {int(low[0])}); the table is the `train-loss` artifact."
        )
    return "\n".join(lines)
