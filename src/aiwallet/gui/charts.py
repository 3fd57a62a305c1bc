"""Spend charts (pyqtgraph): spend per bucket stacked by app or model, and cumulative spend
against a budget. Data arrive already aggregated in SQL (a few dozen buckets), so a redraw
costs the same over a hundred requests or a million; series beyond the largest few are
folded into "other" so the legend stays readable."""

from __future__ import annotations

from datetime import datetime, tzinfo

import pyqtgraph as pg
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QWidget

from aiwallet.domain.money import NANOS_PER_USD
from aiwallet.domain.reports import SpendSeries
from aiwallet.gui import theme
from aiwallet.gui.widgets import html_text

MAX_SERIES = 8
OTHER = "other"


def bucket_label(start: datetime, unit: str, tz: tzinfo) -> str:
    local = start.astimezone(tz)
    if unit == "hour":
        return local.strftime("%H:00")
    if unit == "day":
        return local.strftime("%a %-d")
    if unit == "week":
        return local.strftime("%-d %b")
    return local.strftime("%b %Y")


def folded(series: SpendSeries, limit: int = MAX_SERIES) -> list[tuple[str, list[int]]]:
    """The largest ``limit - 1`` series, and the rest summed as "other" (exact integers)."""
    keys = list(series.keys)
    if len(keys) <= limit:
        return [(k, series.values[k]) for k in keys]
    head, tail = keys[: limit - 1], keys[limit - 1 :]
    n = len(series.edges) - 1
    other = [sum(series.values[k][i] for k in tail) for i in range(n)]
    return [(k, series.values[k]) for k in head] + [(OTHER, other)]


def _usd(nano: int) -> float:
    """Pixels only: plotted heights are floats; every figure shown as text stays exact."""
    return nano / NANOS_PER_USD


class _Plot(pg.PlotWidget):  # type: ignore[misc]
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        dark = theme.is_dark()
        self.setBackground("#1e2326" if dark else "#ffffff")
        fg = QColor("#c9d1d4" if dark else "#3a474c")
        for axis in ("left", "bottom"):
            ax = self.getAxis(axis)
            ax.setPen(fg)
            ax.setTextPen(fg)
        self.showGrid(x=False, y=True, alpha=0.15)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.getAxis("left").setLabel("USD")
        self.x_label = ""
        self.setMinimumHeight(180)

    def set_x_label(self, text: str) -> None:
        """The bottom axis's title (what a bucket is: an hour, a day of this week, ...)."""
        self.x_label = text
        self.getAxis("bottom").setLabel(text)


class StackedSpendChart(_Plot):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.drawn: list[tuple[str, list[int]]] = []
        self.legend_html = ""

    def show_series(self, series: SpendSeries, unit: str, tz: tzinfo) -> None:
        self.clear()
        n = len(series.edges) - 1
        self.drawn = folded(series)
        base = [0.0] * n
        xs = list(range(n))
        for i, (_key, values) in enumerate(self.drawn):
            heights = [_usd(v) for v in values]
            bars = pg.BarGraphItem(
                x=xs,
                height=heights,
                y0=list(base),
                width=0.72,
                brush=pg.mkBrush(theme.SERIES[i % len(theme.SERIES)]),
                pen=pg.mkPen(None),
            )
            self.addItem(bars)
            base = [b + h for b, h in zip(base, heights, strict=True)]
        self.legend_html = " &nbsp; ".join(
            f'<span style="color:{theme.SERIES[i % len(theme.SERIES)]}">■</span> '
            f"{html_text(key, 40)}"
            for i, (key, _) in enumerate(self.drawn)
        )
        step = max(1, -(-n // 8))
        # Labelled from the newest bucket back, so "today" always has its label.
        ticks = [(i, bucket_label(series.edges[i], unit, tz)) for i in range(n - 1, -1, -step)]
        self.getAxis("bottom").setTicks([ticks])
        self.setXRange(-0.6, n - 0.4, padding=0)
        top = max(base, default=0.0)
        self.setYRange(0, top * 1.25 if top > 0 else 1.0, padding=0)

    def total_nano(self) -> int:
        return sum(sum(v) for _, v in self.drawn)


class CumulativeChart(_Plot):
    """Spend accumulated over a budget window, with the budget as a line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.points: list[int] = []

    def show_cumulative(
        self,
        per_bucket: list[int],
        budget_nano: int | None,
        labels: list[str],
        start_nano: int = 0,
    ) -> None:
        """``start_nano``: what was spent before the first bucket (a total budget)."""
        self.clear()
        running, points = start_nano, [start_nano]
        for v in per_bucket:
            running += v
            points.append(running)
        self.points = points
        accent = theme.ACCENT_DARK if theme.is_dark() else theme.ACCENT
        self.plot(
            list(range(len(points))),
            [_usd(p) for p in points],
            pen=pg.mkPen(accent, width=2.5),
            fillLevel=0,
            brush=pg.mkBrush(_translucent(accent, 70)),
            stepMode=None,
        )
        top = _usd(points[-1])
        if budget_nano is not None:
            line = pg.InfiniteLine(
                pos=_usd(budget_nano),
                angle=0,
                pen=pg.mkPen(theme.DANGER, width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine),
                label="budget",
                labelOpts={"position": 0.92, "color": theme.DANGER, "anchors": [(1, 1), (1, 1)]},
            )
            self.addItem(line)
            top = max(top, _usd(budget_nano))
        step = max(1, -(-len(labels) // 6))
        self.getAxis("bottom").setTicks(
            [[(i, labels[i]) for i in range(len(labels) - 2, -1, -step)]]
        )
        self.setXRange(0, max(len(points) - 1, 1), padding=0.02)
        self.setYRange(0, top * 1.15 if top > 0 else 1.0, padding=0)


def _translucent(colour: str, alpha: int) -> QColor:
    c = QColor(colour)
    c.setAlpha(alpha)
    return c
