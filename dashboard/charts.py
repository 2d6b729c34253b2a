"""Series -> inline SVG geometry for the dashboard's charts. Pure.

No chart library and nothing fetched: operators run the dashboard offline, so a chart is a few
polylines the server renders into the page, with axis labels, and every chart is followed by the
same numbers as a table (readable without colour or sight: each line also has its own dash style).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dashboard.model import fmt_time

WIDTH, HEIGHT = 720, 220
PAD_L, PAD_R, PAD_T, PAD_B = 80, 16, 12, 36
DASHES = ("", "6 4", "2 3", "10 3 2 3")  # one per line, so lines differ without colour


def compact(v: int) -> str:
    """An axis label that fits: 1,500 -> 1.5k, 1,000,000,000,000 -> 1T (the tables show exact values)."""
    for div, suffix in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k")):
        if abs(v) >= div:
            text = f"{v / div:.1f}".rstrip("0").rstrip(".")
            return text + suffix
    return str(v)


@dataclass(frozen=True)
class Line:
    name: str
    points: str  # "x,y x,y ..." for <polyline points=...>
    dash: str
    css: str
    last: int


@dataclass(frozen=True)
class Chart:
    lines: list[Line]
    width: int
    height: int
    x_labels: list[tuple[float, str, str]]
    y_labels: list[tuple[float, str]]
    empty: bool


def step_chart(series: Mapping[str, Sequence[tuple[int, int]]], *, width: int = WIDTH, height: int = HEIGHT) -> Chart:
    """Step lines (values hold until the next point) for series of (time_ms, value)."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        return Chart([], width, height, [], [], True)
    t0, t1 = min(p[0] for p in pts), max(p[0] for p in pts)
    v0, v1 = 0, max(max(p[1] for p in pts), 1)
    if t1 == t0:
        t1 = t0 + 1
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B

    def x(t: int) -> float:
        return PAD_L + (t - t0) / (t1 - t0) * plot_w

    def y(v: int) -> float:
        return PAD_T + plot_h - (v - v0) / (v1 - v0) * plot_h

    lines = []
    for i, (name, s) in enumerate(series.items()):
        coords: list[str] = []
        prev: int | None = None
        for t, v in s:
            if prev is not None:
                coords.append(f"{x(t):.1f},{y(prev):.1f}")
            coords.append(f"{x(t):.1f},{y(v):.1f}")
            prev = v
        if s:
            coords.append(f"{x(t1):.1f},{y(s[-1][1]):.1f}")
        lines.append(Line(name, " ".join(coords), DASHES[i % len(DASHES)], f"line{i % 4}", s[-1][1] if s else 0))
    y_labels = [(y(v), compact(v)) for v in sorted({v0, v1 // 2, v1})]
    # time of day for a short range; the date too once the range spans more than a day
    cut = slice(11, 19) if t1 - t0 <= 86_400_000 else slice(5, 16)
    x_labels = [(x(t), fmt_time(t)[cut], anchor) for t, anchor in ((t0, "start"), ((t0 + t1) // 2, "middle"),
                                                                      (t1, "end"))]
    return Chart(lines, width, height, x_labels, y_labels, False)
