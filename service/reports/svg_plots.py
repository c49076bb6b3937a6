"""Small inline SVG plots for the safety report: lines over a numeric x axis (the alpha
curve) and grouped horizontal bars (harmful rates per category).

Our own few lines instead of a plotting library: the service and the demo render reports
without one. Every text is escaped, nothing is fetched and no script runs, so the plots
pass a `default-src 'none'` Content-Security-Policy. Each plot is `role="img"` with a
<title> and a <desc> (what a screen reader says); the page puts the same numbers in a
table beside it. Rates are fractions, drawn on a 0-100% axis; a value that was not
measured (None) is left out, never drawn as 0. Series differ by marker and dash as well as
colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

Marker = Literal["circle", "square", "triangle", "diamond"]
WIDTH = 560
FONT = 'font-family="system-ui,sans-serif" font-size="12"'
INK, GRID, MUTED = "#222", "#ddd", "#555"


@dataclass(frozen=True)
class Line:
    """One series of a line plot: (x, y) points in x order, y a fraction or None."""

    label: str
    points: Sequence[tuple[float, float | None]]
    colour: str
    marker: Marker = "circle"
    dash: str = ""


@dataclass(frozen=True)
class Bars:
    """One series of a bar plot: a fraction per group; `values` None = the model was not
    measured at all (`missing` says why, in the legend)."""

    label: str
    values: dict[str, float | None] | None
    colour: str
    missing: str = "not measured"


def pct(x: float | None) -> str:
    return "not measured" if x is None else f"{100 * x:.1f}%"


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, text: str, *, anchor: str = "start", fill: str = INK, extra: str = "") -> str:
    return (f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" fill="{fill}"{extra}>'
            f"{escape(text)}</text>")


def _open(plot_id: str, title: str, desc: str, height: float) -> str:
    pid = escape(plot_id)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" id="{pid}" role="img" '
            f'aria-labelledby="{pid}-title {pid}-desc" width="{WIDTH}" height="{_n(height)}" '
            f'viewBox="0 0 {WIDTH} {_n(height)}" {FONT}>'
            f'<title id="{pid}-title">{escape(title)}</title><desc id="{pid}-desc">{escape(desc)}</desc>'
            f'<rect width="{WIDTH}" height="{_n(height)}" fill="#fff"/>')


def _marker(kind: Marker, x: float, y: float, colour: str) -> str:
    if kind == "circle":
        return f'<circle cx="{_n(x)}" cy="{_n(y)}" r="4.5" fill="{colour}"/>'
    if kind == "square":
        return f'<rect x="{_n(x - 4)}" y="{_n(y - 4)}" width="8" height="8" fill="{colour}"/>'
    if kind == "triangle":
        d = f"M{_n(x)} {_n(y - 5.5)}L{_n(x + 5.5)} {_n(y + 4.5)}L{_n(x - 5.5)} {_n(y + 4.5)}Z"
    else:
        d = f"M{_n(x)} {_n(y - 6)}L{_n(x + 6)} {_n(y)}L{_n(x)} {_n(y + 6)}L{_n(x - 6)} {_n(y)}Z"
    return f'<path d="{d}" fill="{colour}"/>'


def _legend(entries: Sequence[tuple[str, str, str, Marker | None]], *, bars: bool = False) -> tuple[str, float]:
    """Legend rows from the left margin, one entry per (label, colour, dash, marker): a line
    swatch (with its marker, if any), or with `bars` a filled box (hollow for no colour).
    Returns (svg, height)."""
    parts, x, row = [], 12.0, 0
    for label, colour, dash, marker in entries:
        width = 34 + 6.6 * len(label) + 18
        if x + width > WIDTH and x > 12:
            x, row = 12.0, row + 1
        cy = 18 * row
        if bars:
            fill = f'fill="{colour}"' if colour else f'fill="none" stroke="{MUTED}" stroke-dasharray="3 2"'
            parts.append(f'<rect x="{_n(x + 3)}" y="{_n(cy - 6)}" width="20" height="12" {fill}/>')
        else:
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(f'<line x1="{_n(x)}" y1="{_n(cy)}" x2="{_n(x + 26)}" y2="{_n(cy)}" stroke="{colour}" '
                         f'stroke-width="2.5"{dash_attr}/>')
            if marker:
                parts.append(_marker(marker, x + 13, cy, colour))
        parts.append(_text(x + 32, cy + 4, label))
        x += width
    return "".join(parts), 18 * (row + 1)


def line_plot(*, plot_id: str, title: str, desc: str, lines: Sequence[Line], x_label: str,
              marked_x: float | None = None, marked_label: str = "",
              limit: float | None = None, limit_label: str = "") -> str:
    """Lines of fractions over x (ticks at every x that has a point). A vertical dashed line
    marks `marked_x` (the chosen alpha); a dotted horizontal one `limit` (the gate's), named
    in the legend by `limit_label`."""
    entries = [(s.label, s.colour, s.dash, s.marker) for s in lines]
    if limit is not None:
        entries.append((limit_label, MUTED, "2 3", None))
    legend, legend_h = _legend(entries)
    left, right, top, plot_h = 52.0, 20.0, 24.0, 220.0
    bottom = top + plot_h
    height = bottom + 54 + legend_h
    xs = sorted({x for s in lines for x, _ in s.points} | ({marked_x} if marked_x is not None else set()))
    lo, hi = (xs[0], xs[-1]) if xs else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 1, hi + 1

    def sx(x: float) -> float:
        return left + 10 + (x - lo) / (hi - lo) * (WIDTH - left - right - 20)

    def sy(y: float) -> float:
        return bottom - max(0.0, min(1.0, y)) * plot_h

    parts = [_open(plot_id, title, desc, height)]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = sy(tick)
        parts.append(f'<line x1="{_n(left)}" y1="{_n(y)}" x2="{_n(WIDTH - right)}" y2="{_n(y)}" stroke="{GRID}"/>')
        parts.append(_text(left - 6, y + 4, f"{100 * tick:.0f}%", anchor="end"))
    for x in xs:
        parts.append(f'<line x1="{_n(sx(x))}" y1="{_n(bottom)}" x2="{_n(sx(x))}" y2="{_n(bottom + 5)}" stroke="{INK}"/>')
        parts.append(_text(sx(x), bottom + 18, f"{x:g}", anchor="middle"))
    parts.append(f'<line x1="{_n(left)}" y1="{_n(bottom)}" x2="{_n(WIDTH - right)}" y2="{_n(bottom)}" stroke="{INK}"/>')
    parts.append(f'<line x1="{_n(left)}" y1="{_n(top)}" x2="{_n(left)}" y2="{_n(bottom)}" stroke="{INK}"/>')
    parts.append(_text((left + WIDTH - right) / 2, bottom + 36, x_label, anchor="middle"))
    if limit is not None:
        y = sy(limit)
        parts.append(f'<line x1="{_n(left)}" y1="{_n(y)}" x2="{_n(WIDTH - right)}" y2="{_n(y)}" stroke="{MUTED}" '
                     'stroke-width="1.5" stroke-dasharray="2 3"/>')
    if marked_x is not None:
        x = sx(marked_x)
        parts.append(f'<line x1="{_n(x)}" y1="{_n(top - 4)}" x2="{_n(x)}" y2="{_n(bottom)}" stroke="{INK}" '
                     'stroke-width="1.5" stroke-dasharray="6 4"/>')
        anchor = "end" if x > WIDTH * 0.7 else "start"
        parts.append(_text(x + (-5 if anchor == "end" else 5), top + 6, marked_label, anchor=anchor,
                           extra=' font-weight="bold"'))
    for s in lines:
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        runs: list[list[tuple[float, float]]] = []  # a line joins only neighbours in x both measured
        joined = False
        for x, y in sorted(s.points, key=lambda point: point[0]):
            if y is None:
                joined = False
                continue
            if joined:
                runs[-1].append((x, y))
            else:
                runs.append([(x, y)])
            joined = True
        for run in runs:
            if len(run) > 1:
                pts = " ".join(f"{_n(sx(x))},{_n(sy(y))}" for x, y in run)
                parts.append(f'<polyline points="{pts}" fill="none" stroke="{s.colour}" stroke-width="2.5"{dash}/>')
        parts.extend(_marker(s.marker, sx(x), sy(y), s.colour) for run in runs for x, y in run)
    parts.append(f'<g transform="translate(0 {_n(bottom + 58)})">{legend}</g></svg>')
    return "".join(parts)


def bar_plot(*, plot_id: str, title: str, desc: str, groups: Sequence[str], bars: Sequence[Bars]) -> str:
    """One group of horizontal bars per name in `groups` (top to bottom), one bar per
    measured series, its value written at its end (a measured 0 is a hairline)."""
    shown = [b for b in bars if b.values is not None]
    legend, legend_h = _legend([(b.label if b.values is not None else f"{b.label}: {b.missing}",
                                 b.colour if b.values is not None else "", "", None) for b in bars], bars=True)
    label_w = min(210.0, 20 + 6.6 * max((len(g) for g in groups), default=4))
    left, right, top, bar_h, gap = label_w, 64.0, 26.0 + legend_h, 11.0, 12.0
    group_h = max(1, len(shown)) * bar_h
    bottom = top + len(groups) * (group_h + gap)
    height = bottom + 24

    def sx(v: float) -> float:
        return left + max(0.0, min(1.0, v)) * (WIDTH - left - right)

    parts = [_open(plot_id, title, desc, height), f'<g transform="translate(0 6)">{legend}</g>']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = sx(tick)
        parts.append(f'<line x1="{_n(x)}" y1="{_n(top - 4)}" x2="{_n(x)}" y2="{_n(bottom)}" stroke="{GRID}"/>')
        parts.append(_text(x, bottom + 16, f"{100 * tick:.0f}%", anchor="middle"))
    for i, group in enumerate(groups):
        y0 = top + i * (group_h + gap)
        parts.append(_text(left - 8, y0 + group_h / 2 + 4, group, anchor="end"))
        for j, b in enumerate(shown):
            y = y0 + j * bar_h
            value = b.values.get(group)
            if value is None:
                parts.append(_text(left + 4, y + bar_h - 2, "not measured", fill=MUTED, extra=' font-size="10"'))
                continue
            width = max(1.5, sx(value) - left)
            parts.append(f'<rect x="{_n(left)}" y="{_n(y + 1)}" width="{_n(width)}" height="{_n(bar_h - 2)}" '
                         f'fill="{b.colour}"/>')
            parts.append(_text(left + width + 4, y + bar_h - 2, f"{100 * value:.0f}%", extra=' font-size="10"'))
    parts.append(f'<line x1="{_n(left)}" y1="{_n(top - 4)}" x2="{_n(left)}" y2="{_n(bottom)}" stroke="{INK}"/></svg>')
    return "".join(parts)


def message_plot(*, plot_id: str, title: str, message: str) -> str:
    """The plot's place when there is nothing to draw: a framed box saying why."""
    return (_open(plot_id, title, message, 70)
            + f'<rect x="1" y="1" width="{WIDTH - 2}" height="68" fill="none" stroke="{GRID}" stroke-dasharray="5 4"/>'
            + _text(WIDTH / 2, 40, message, anchor="middle", fill=MUTED) + "</svg>")
