"""The dashboard's charts as inline SVG, drawn on the server from the numbers the page shows.

No script and no network: the page (and `nudge report --html`) carries each chart whole. Every
data point is one element of class `mark` with its numbers in a <title> (the browser's tooltip)
and `data-*` attributes, so a test counts marks against the data and reads their values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

# Colour-blind-safe (Okabe-Ito), in a fixed order so a series keeps its colour across pages.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
STATUS_COLOURS = {
    "sent": "#009E73",
    "pending": "#56B4E9",
    "sending": "#0072B2",
    "unknown": "#E69F00",
    "failed": "#D55E00",
    "held_out": "#999999",
    "skipped": "#CC79A7",
}
WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 22, 28


def _n(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _coord(value: float) -> str:
    return f"{value:.1f}"


def _nice_step(value: float, whole: bool = True) -> float:
    """The smallest round step at or above `value` (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of
    ten); `whole`: never a fraction, for counts."""
    exponent = math.floor(math.log10(value)) if value > 0 else 0
    for power in (exponent - 1, exponent, exponent + 1):
        for factor in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8):
            step = round(factor * 10.0**power, 9)
            if step >= value and (not whole or step.is_integer()):
                return step
    return 10.0 ** (exponent + 1)


def _nice_max(value: float) -> float:
    """The top of a count axis with four whole steps: 46 → 60 (0, 15, 30, 45, 60)."""
    return 4 * _nice_step(max(value, 1) / 4)


def _y_axis(top: float, height: float, label: str) -> list[str]:
    parts = []
    for i in range(5):
        value = top * i / 4
        y = TOP + height - height * i / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_coord(y)}" y2="{_coord(y)}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{_coord(y + 4)}" text-anchor="end">{_n(value)}</text>')
    parts.append(f'<text class="axis-label" x="4" y="10">{escape(label)}</text>')  # above the top tick
    return parts


def _x_labels(labels: Sequence[str], xs: Sequence[float]) -> list[str]:
    if not labels:
        return []
    picks = sorted({0, len(labels) - 1, *range(0, len(labels), max(1, len(labels) // 6))})
    anchors = {0: "start", len(labels) - 1: "end"}  # the first and last stay inside the chart
    return [
        f'<text class="tick" x="{_coord(xs[i])}" y="{HEIGHT - 8}" text-anchor="{anchors.get(i, "middle")}">'
        f"{escape(labels[i])}</text>"
        for i in picks
        if i == len(labels) - 1 or (xs[-1] - xs[i] > 110 and (i == 0 or xs[i] - xs[0] > 80))  # no overlap
    ]


def _svg(kind: str, points: int, label: str, body: list[str], height: int = HEIGHT) -> Markup:
    return Markup(
        f'<svg class="chart" data-chart="{kind}" data-points="{points}" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def line_chart(kind: str, label: str, x: Sequence[str], series: Sequence[Series], unit: str) -> Markup:
    """Lines over time, one per series; a column per x (the mark) names every series' value there."""
    height = HEIGHT - TOP - BOTTOM
    top = _nice_max(max((v for s in series for v in s.values), default=0))
    step = (WIDTH - LEFT - RIGHT) / max(len(x) - 1, 1)
    xs = [LEFT + i * step for i in range(len(x))] if len(x) > 1 else [LEFT + (WIDTH - LEFT - RIGHT) / 2]
    body = _y_axis(top, height, unit)

    def y(value: float) -> str:
        return _coord(TOP + height - height * value / top)

    for index, line in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        points = " ".join(f"{_coord(xs[i])},{y(v)}" for i, v in enumerate(line.values))
        body.append(
            f'<polyline class="series" data-series="{escape(line.name)}" fill="none" stroke="{colour}" '
            f'stroke-width="{2 if index < 2 else 1.25}" points="{points}"/>'
        )
    width = max(step, 2.0)
    for i, when in enumerate(x):
        facts = ", ".join(f"{s.name} {_n(s.values[i])}" for s in series)
        data = " ".join(f'data-{escape(s.name.replace(" ", "-"))}="{s.values[i]:g}"' for s in series)
        body.append(
            f'<rect class="mark" x="{_coord(xs[i] - width / 2)}" y="{TOP}" width="{_coord(width)}" '
            f'height="{height}" data-x="{escape(when)}" {data}><title>{escape(when)}: {escape(facts)}</title></rect>'
        )
    body += _x_labels(x, xs)
    return _svg(kind, len(x), label, body)


def legend(names: Sequence[str], colours: Sequence[str] | None = None) -> Markup:
    """The key of a chart, as HTML beside it."""
    colours = colours or [PALETTE[i % len(PALETTE)] for i in range(len(names))]
    items = "".join(
        f'<span class="key"><i style="background:{c}"></i>{escape(n)}</span>'
        for n, c in zip(names, colours, strict=False)
    )
    return Markup(f'<div class="legend">{items}</div>')


def sparkline(values: Sequence[float], label: str, width: int = 140, height: int = 28) -> Markup:
    """A small line of the last values (a polyline vertex per value, a dot on the last)."""
    top = max(values, default=0) or 1
    step = (width - 4) / max(len(values) - 1, 1)
    points = [(2 + i * step, height - 3 - (height - 6) * v / top) for i, v in enumerate(values)]
    shown = " ".join(f"{_coord(px)},{_coord(py)}" for px, py in points)
    dot = f'<circle cx="{_coord(points[-1][0])}" cy="{_coord(points[-1][1])}" r="2.5"/>' if points else ""
    return Markup(
        f'<svg class="spark" data-chart="sparkline" data-points="{len(values)}" role="img" '
        f'aria-label="{escape(label)}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f'<polyline class="mark-line" fill="none" points="{shown}"/>{dot}<title>{escape(label)}</title></svg>'
    )


@dataclass(frozen=True)
class Stack:
    day: str
    status: str
    count: int


def stacked_days(kind: str, label: str, days: Sequence[str], stacks: Sequence[Stack], height: int = 150) -> Markup:
    """Bars per day, stacked by status (one chart per channel: the caller facets)."""
    inner = height - TOP - BOTTOM
    totals: dict[str, int] = {}
    for s in stacks:
        totals[s.day] = totals.get(s.day, 0) + s.count
    top = _nice_max(max(totals.values(), default=0))
    slot = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    place = {day: LEFT + i * slot for i, day in enumerate(days)}
    body = _y_axis(top, inner, "messages")[:-1]
    filled: dict[str, float] = {}
    order = {status: i for i, status in enumerate(STATUS_COLOURS)}
    for s in sorted(stacks, key=lambda s: (s.day, order.get(s.status, 99))):
        size = inner * s.count / top
        base = filled.get(s.day, 0.0)
        filled[s.day] = base + size
        y = TOP + inner - base - size
        colour = STATUS_COLOURS.get(s.status, "#666666")
        body.append(
            f'<rect class="mark" x="{_coord(place[s.day] + slot * 0.1)}" y="{_coord(y)}" '
            f'width="{_coord(max(slot * 0.8, 1.0))}" height="{_coord(max(size, 0.5))}" fill="{colour}" '
            f'data-day="{s.day}" data-status="{escape(s.status)}" data-count="{s.count}">'
            f"<title>{s.day}: {s.count:,} {escape(s.status)}</title></rect>"
        )
    centres = [place[d] + slot / 2 for d in days]
    body += [t.replace(f'y="{HEIGHT - 8}"', f'y="{height - 8}"') for t in _x_labels(days, centres)]
    return _svg(kind, len(stacks), label, body, height)


@dataclass(frozen=True)
class Interval:
    label: str
    value: float
    low: float
    high: float
    note: str = ""


def error_bars(kind: str, label: str, rows: Sequence[Interval], unit: str, zero_line: bool = False) -> Markup:
    """A dot per row at its value with a whisker over its 95% interval, on one shared axis
    (percent); `zero_line` for differences, where the question is whether the whisker crosses 0."""
    row_height, label_width = 30, 150
    height = TOP + BOTTOM + row_height * len(rows)
    # Round ticks that take in every whisker and zero: -60, -40, … +20.
    step = _nice_step((max([0.0, *(r.high for r in rows)]) - min([0.0, *(r.low for r in rows)])) / 4 or 1, False)
    left = step * math.floor(min([0.0, *(r.low for r in rows)]) / step)
    right = step * math.ceil(max([0.0, *(r.high for r in rows)]) / step) or step
    scale = (WIDTH - label_width - RIGHT - 24) / (right - left)

    def x(value: float) -> str:
        return _coord(label_width + (value - left) * scale)

    body = []
    for i in range(round((right - left) / step) + 1):
        value = left + step * i
        shown = f"{value:+g}" if zero_line else f"{value:g}"
        body.append(f'<line class="grid" x1="{x(value)}" x2="{x(value)}" y1="{TOP}" y2="{height - BOTTOM}"/>')
        body.append(f'<text class="tick" x="{x(value)}" y="{height - 8}" text-anchor="middle">{shown}</text>')
    body.append(f'<text class="axis-label" x="{WIDTH - RIGHT}" y="{height - 8}" text-anchor="end">{unit}</text>')
    if zero_line:
        body.append(f'<line class="zero" x1="{x(0)}" x2="{x(0)}" y1="{TOP}" y2="{height - BOTTOM}"/>')
    for i, r in enumerate(rows):
        y = _coord(TOP + row_height * i + row_height / 2)
        title = f"{r.label}: {r.value:.1f} {unit} (95% interval {r.low:.1f} … {r.high:.1f}){r.note}"
        body.append(
            f'<g class="mark" data-label="{escape(r.label)}" data-value="{r.value:.4f}" data-low="{r.low:.4f}" '
            f'data-high="{r.high:.4f}"><title>{escape(title)}</title>'
            f'<text x="0" y="{y}" dominant-baseline="middle">{escape(r.label)}</text>'
            f'<line class="whisker" x1="{x(r.low)}" x2="{x(r.high)}" y1="{y}" y2="{y}"/>'
            f'<line class="whisker" x1="{x(r.low)}" x2="{x(r.low)}" y1="{float(y) - 6}" y2="{float(y) + 6}"/>'
            f'<line class="whisker" x1="{x(r.high)}" x2="{x(r.high)}" y1="{float(y) - 6}" y2="{float(y) + 6}"/>'
            f'<circle cx="{x(r.value)}" cy="{y}" r="5"/></g>'
        )
    return _svg(kind, len(rows), label, body, height)


def bars(kind: str, label: str, rows: Sequence[tuple[str, int]], row_height: int = 26) -> Markup:
    """Horizontal bars scaled to the largest (a funnel), the count at the end of each."""
    label_width, room = 170, WIDTH - 170 - 90
    top = max((n for _, n in rows), default=0) or 1
    body = []
    for i, (name, count) in enumerate(rows):
        y = i * row_height
        size = max(2, round(room * count / top)) if count else 0
        body.append(
            f'<g transform="translate(0,{y})"><text x="0" y="17">{escape(name)}</text>'
            f'<rect class="mark" x="{label_width}" y="4" width="{size}" height="18" rx="3" '
            f'data-label="{escape(name)}" data-count="{count}"><title>{escape(name)}: {count:,}</title></rect>'
            f'<text x="{label_width + size + 8}" y="17">{count:,}</text></g>'
        )
    return _svg(kind, len(rows), label, body, row_height * len(rows) + 4)
