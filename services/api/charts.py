"""Line charts drawn on the server as inline SVG (pure: data in, markup out; no JavaScript).

Each chart carries a `<title>` and a `<desc>` (read by screen readers through
`aria-labelledby`); every point has its own `<title>` (a tooltip); the pages also give the
figures as a table. Missing values break the line rather than inventing a point. A chart of
several lines (`multi_line_chart`) tells them apart by colour, dash pattern and marker shape,
and `chart_legend` names them.
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


@dataclass(frozen=True, slots=True)
class _Scale:
    """A chart's value range and ticks, and where values and x positions fall in pixels."""

    low: float
    high: float
    ticks: list[float]
    count: int  # x positions
    inverted: bool

    @classmethod
    def of(
        cls,
        values: Sequence[float],
        count: int,
        inverted: bool,
        integer_ticks: bool,
        floor: float | None,
    ) -> _Scale:
        low, high = min(values), max(values)
        if floor is not None:
            low = min(low, floor)
        if low == high:
            low, high = (low - 1, high + 1) if not integer_ticks else (max(1, low - 1), high + 1)
        ticks = nice_ticks(low, high)
        if integer_ticks:
            ticks = sorted({max(1, round(t)) for t in ticks} | {round(low), round(high)})
        return cls(min(ticks[0], low), max(ticks[-1], high), ticks, count, inverted)

    def y_of(self, value: float) -> float:
        fraction = (value - self.low) / (self.high - self.low)
        plot_h = HEIGHT - TOP - BOTTOM
        if self.inverted:
            return TOP + fraction * plot_h
        return TOP + (1 - fraction) * plot_h

    def x_of(self, index: int) -> float:
        plot_w = WIDTH - LEFT - RIGHT
        if self.count == 1:
            return LEFT + plot_w / 2
        return LEFT + index * plot_w / (self.count - 1)

    def axes(self, labels: Sequence[str], tick_text: Callable[[float], str]) -> list[str]:
        """The horizontal grid with its tick values, and at most six x labels."""
        parts = ['<g class="chart-grid">']
        for tick in self.ticks:
            y = self.y_of(tick)
            parts.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">'
                f"{escape(tick_text(tick))}</text>"
            )
        parts.append('</g><g class="chart-x">')
        every = max(1, math.ceil(len(labels) / 6))
        for index, label in enumerate(labels):
            if index % every == 0 or index == len(labels) - 1:
                parts.append(
                    f'<text x="{self.x_of(index):.1f}" y="{HEIGHT - BOTTOM + 20}" '
                    f'text-anchor="middle">{escape(label)}</text>'
                )
        parts.append("</g>")
        return parts


_EMPTY: Final = (
    f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
    'class="chart-empty">Pas encore de données</text></svg>'
)


def _head(chart_id: str, title: str, description: str, *, element_id: bool = False) -> str:
    """The opening `<svg>` with its title and description (`element_id`: `id="{chart_id}"`)."""
    own_id = f'id="{chart_id}" ' if element_id else ""
    return (
        f'<svg {own_id}class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>'
    )


def _polylines(scale: _Scale, values: Sequence[float | None]) -> list[str]:
    """The line through the values, broken where one is missing."""
    lines: list[list[str]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            lines.append([])
        else:
            lines[-1].append(f"{scale.x_of(index):.1f},{scale.y_of(value):.1f}")
    return [f'<polyline class="chart-line" points="{" ".join(line)}"/>' for line in lines if line]


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
    head = _head(chart_id, title, description)
    if not values:
        return head + _EMPTY
    scale = _Scale.of(values, len(points), inverted, integer_ticks, floor)
    y_of, x_of = scale.y_of, scale.x_of
    parts = [head, *scale.axes([p.label for p in points], tick_text)]
    parts += _polylines(scale, [p.value for p in points])
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


# --- Several lines on one chart (the comparison page) ---------------------------------------
# Each series differs by colour, dash pattern (style.css `.series-N`) and marker shape, so
# that no series is told apart by colour alone.
SERIES_STYLES: Final = 6


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart with several: its name and a value per x position (None: none)."""

    name: str
    values: tuple[float | None, ...]


# Marker outlines of styles 2 to 5 around (0, 0), as `x,y` pairs: triangle, diamond, triangle
# pointing down, plus; styles 0 and 1 are a circle and a square.
_OUTLINES: Final = {
    style: [tuple(float(c) for c in pair.split(",")) for pair in outline.split()]
    for style, outline in {
        2: "0,-5.5 5,4 -5,4",
        3: "0,-5.5 5.5,0 0,5.5 -5.5,0",
        4: "0,5.5 5,-4 -5,-4",
        5: "-2,-5 2,-5 2,-2 5,-2 5,2 2,2 2,5 -2,5 -2,2 -5,2 -5,-2 -2,-2",
    }.items()
}


def _marker(style: int, x: float, y: float, tooltip: str) -> str:
    """The marker of series style `style` centred on (x, y), with its tooltip if any."""
    title = f"<title>{escape(tooltip)}</title>" if tooltip else ""
    shape = style % SERIES_STYLES
    if shape == 0:
        return f'<circle class="chart-marker" cx="{x:.1f}" cy="{y:.1f}" r="4.5">{title}</circle>'
    if shape == 1:
        return (
            f'<rect class="chart-marker" x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8">'
            f"{title}</rect>"
        )
    points = " ".join(f"{x + dx:.1f},{y + dy:.1f}" for dx, dy in _OUTLINES[shape])
    return f'<polygon class="chart-marker" points="{points}">{title}</polygon>'


def multi_line_chart(
    labels: Sequence[tuple[str, str]],
    series: Sequence[Series],
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
    """An SVG chart of several lines over the same x positions (`labels`: the axis label and
    the spoken label of each), `id="{chart_id}"`; `chart_legend` names the lines."""
    if any(len(line.values) != len(labels) for line in series):
        raise ValueError("every series needs one value (or None) per label")
    values = [value for line in series for value in line.values if value is not None]
    head = _head(chart_id, title, description, element_id=True)
    if not values:
        return head + _EMPTY
    scale = _Scale.of(values, len(labels), inverted, integer_ticks, floor)
    parts = [head, *scale.axes([short for short, _ in labels], tick_text)]
    for index, line in enumerate(series):
        parts.append(f'<g class="chart-series series-{index % SERIES_STYLES}">')
        parts += _polylines(scale, line.values)
        for position, value in enumerate(line.values):
            if value is not None:
                tooltip = f"{line.name}, {labels[position][1]} : {value_text(value)}"
                parts.append(_marker(index, scale.x_of(position), scale.y_of(value), tooltip))
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def chart_legend(series: Sequence[Series], *, chart_id: str) -> str:
    """The legend of a `multi_line_chart` (`id="{chart_id}-legend"`): each line's sample (its
    colour, dashes and marker, hidden from screen readers) and its name."""
    items = [
        f'<li><svg class="chart-swatch" viewBox="0 0 36 14" aria-hidden="true" '
        f'focusable="false" xmlns="http://www.w3.org/2000/svg">'
        f'<g class="chart-series series-{index % SERIES_STYLES}">'
        f'<line class="chart-line" x1="1" y1="7" x2="35" y2="7"/>'
        f"{_marker(index, 18, 7, '')}</g></svg> {escape(line.name)}"
        f"{'' if any(v is not None for v in line.values) else ' (aucune donnée)'}</li>"
        for index, line in enumerate(series)
    ]
    return f'<ul class="chart-legend" id="{chart_id}-legend">{"".join(items)}</ul>'
