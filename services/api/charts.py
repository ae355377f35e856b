"""Line charts drawn on the server as inline SVG (pure: data in, markup out; no JavaScript).

Each chart carries a `<title>` and a `<desc>` (read by screen readers through
`aria-labelledby`); every point has its own `<title>` (a tooltip); the pages also give the
figures as a table. Missing values break the line rather than inventing a point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

WIDTH: Final = 480
HEIGHT: Final = 220
LEFT, RIGHT, TOP, BOTTOM = 72, 20, 16, 40


@dataclass(frozen=True, slots=True)
class Point:
    """One x position: its axis label, its spoken label and its value (None: no value)."""

    label: str
    long_label: str
    value: float | None


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten)."""
    if high <= low:
        return [low]
    raw = (high - low) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step / 2:
        ticks.append(round(value, 10))
        value += step
    return ticks


def line_chart(
    points: Sequence[Point],
    *,
    chart_id: str,
    title: str,
    description: str,
    value_text: Callable[[float], str],
    tick_text: Callable[[float], str],
    inverted: bool = False,
    integer_ticks: bool = False,
    floor: float | None = None,
) -> str:
    """An SVG line chart; `inverted` puts small values on top (ranks: 1st at the top)."""
    values = [p.value for p in points if p.value is not None]
    head = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>'
    )
    if not values:
        return (
            head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
            f'class="chart-empty">Pas encore de données</text></svg>'
        )
    low, high = min(values), max(values)
    if floor is not None:
        low = min(low, floor)
    if low == high:
        low, high = (low - 1, high + 1) if not integer_ticks else (max(1, low - 1), high + 1)
    ticks = nice_ticks(low, high)
    if integer_ticks:
        ticks = sorted({max(1, round(t)) for t in ticks} | {round(low), round(high)})
    low, high = min(ticks[0], low), max(ticks[-1], high)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y_of(value: float) -> float:
        fraction = (value - low) / (high - low)
        if inverted:
            return TOP + fraction * plot_h
        return TOP + (1 - fraction) * plot_h

    def x_of(index: int) -> float:
        if len(points) == 1:
            return LEFT + plot_w / 2
        return LEFT + index * plot_w / (len(points) - 1)

    parts = [head, '<g class="chart-grid">']
    for tick in ticks:
        y = y_of(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(tick_text(tick))}</text>"
        )
    parts.append('</g><g class="chart-x">')
    every = max(1, math.ceil(len(points) / 6))
    for index, point in enumerate(points):
        if index % every == 0 or index == len(points) - 1:
            parts.append(
                f'<text x="{x_of(index):.1f}" y="{HEIGHT - BOTTOM + 20}" text-anchor="middle">'
                f"{escape(point.label)}</text>"
            )
    parts.append("</g>")
    segment: list[str] = []
    lines: list[list[str]] = []
    for index, point in enumerate(points):
        if point.value is None:
            if segment:
                lines.append(segment)
            segment = []
            continue
        segment.append(f"{x_of(index):.1f},{y_of(point.value):.1f}")
    if segment:
        lines.append(segment)
    for line in lines:
        parts.append(f'<polyline class="chart-line" points="{" ".join(line)}"/>')
    for index, point in enumerate(points):
        if point.value is None:
            continue
        parts.append(
            f'<circle class="chart-dot" cx="{x_of(index):.1f}" cy="{y_of(point.value):.1f}" r="4">'
            f"<title>{escape(point.long_label)} : {escape(value_text(point.value))}</title>"
            "</circle>"
        )
    parts.append("</svg>")
    return "".join(parts)
