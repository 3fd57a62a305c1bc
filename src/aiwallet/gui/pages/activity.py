"""Activity: spend charts (stacked by app or model; cumulative against the budget) and the
request log, filtered by app, model, status and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QSplitter,
    QTableView,
    QWidget,
)

from aiwallet.domain.money import Period
from aiwallet.domain.reports import RequestFilter, RequestRow, SpendSeries
from aiwallet.domain.windows import CHART_RANGES, bucket_edges, window_for
from aiwallet.gui.charts import CumulativeChart, StackedSpendChart, bucket_label
from aiwallet.gui.controller import Controller
from aiwallet.gui.pages.base import Page
from aiwallet.gui.request_model import EXPLORER_ROLE, SORT_ROLE, LogPage, RequestLogModel
from aiwallet.gui.solana_view import X402_SOURCE, tx_link
from aiwallet.gui.widgets import Card, label, money, rich_label, shown
from aiwallet.summaries import plural

STATUSES: tuple[tuple[str, str | None], ...] = (
    ("Any status", None),
    ("Succeeded", "ok"),
    ("Failed or refused", "error"),
    ("Budget exceeded", "budget_exceeded"),
    ("Wallet paused", "wallet_paused"),
    ("Consent required", "consent_required"),
    ("Consent denied", "consent_denied"),
    ("Expensive request denied", "expensive_request_denied"),
    ("Too many waiting for consent", "too_many_pending"),
    ("Rate limited", "rate_limited"),
    ("Provider failing", "upstream_unavailable"),
)
TIMES: tuple[tuple[str, int | None], ...] = (
    ("Any time", None),
    ("Last hour", 3600),
    ("Last 24 hours", 86_400),
    ("Last 7 days", 7 * 86_400),
    ("Last 30 days", 30 * 86_400),
)
CUMULATIVE_UNIT = {
    Period.DAY: "hour",
    Period.WEEK: "day",
    Period.MONTH: "day",
    Period.TOTAL: "day",
}
X_LABELS = {"hour": "hour (local time)", "day": "day", "week": "week", "month": "month"}
CUMULATIVE_X_LABELS = {
    Period.DAY: "hour of today (local time)",
    Period.WEEK: "day of this week",
    Period.MONTH: "day of this month",
    Period.TOTAL: "day (last 30 days)",
}
TOTAL_SPAN = timedelta(days=30)  # what the cumulative chart shows of a budget that never resets
FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)


def only(series: SpendSeries, key: str | None) -> SpendSeries:
    """``series`` with just ``key``'s spend (all of it when ``key`` is None)."""
    if key is None:
        return series
    values = series.values.get(key)
    if values is None:
        return SpendSeries(series.edges, (), {}, 0)
    return SpendSeries(series.edges, (key,), {key: values}, sum(values))


def only_total(series: SpendSeries, key: str | None) -> int:
    return only(series, key).total_nano


class ActivityPage(Page):
    title = "Activity"

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        filters = QHBoxLayout()
        self.app_filter = QComboBox()
        self.app_filter.addItem("All apps", None)
        self.model_filter = QComboBox()
        self.model_filter.addItem("All models", None)
        self.status_filter = QComboBox()
        for text, value in STATUSES:
            self.status_filter.addItem(text, value)
        self.time_filter = QComboBox()
        for text, seconds in TIMES:
            self.time_filter.addItem(text, seconds)
        self.range = QComboBox()
        for name in CHART_RANGES:
            self.range.addItem(name, name)
        self.range.setCurrentIndex(self.range.findData("30 days"))
        self.group = QComboBox()
        self.group.addItem("by app", "app")
        self.group.addItem("by model", "model")
        for combo in (self.app_filter, self.model_filter, self.status_filter, self.time_filter):
            # As wide as its longest entry (app and model names arrive later): never clipped.
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.setMinimumContentsLength(8)
            filters.addWidget(combo)
        # The app and model filters apply to the charts too (a reload also reloads the log).
        self.app_filter.currentIndexChanged.connect(self.reload)
        self.model_filter.currentIndexChanged.connect(self.reload)
        for combo in (self.status_filter, self.time_filter):
            combo.currentIndexChanged.connect(self._filters_changed)
        filters.addStretch(1)
        filters.addWidget(label("Chart:"))
        for combo in (self.range, self.group):
            combo.currentIndexChanged.connect(self.reload)
            filters.addWidget(combo)
        self.body.addLayout(filters)

        split = QSplitter(Qt.Orientation.Vertical)
        charts = QSplitter(Qt.Orientation.Horizontal)
        stacked_card = Card("Spend over time")
        self.stacked = StackedSpendChart()
        stacked_card.body.addWidget(self.stacked)
        self.legend = rich_label("", wrap=True)  # the chart's own markup, names escaped
        stacked_card.body.addWidget(self.legend)
        self.stacked_total = label("", "muted")
        stacked_card.body.addWidget(self.stacked_total)
        cumulative_card = Card("Spent in this budget window")
        self.cumulative = CumulativeChart()
        cumulative_card.body.addWidget(self.cumulative)
        self.cumulative_note = label("", "muted", wrap=True)
        cumulative_card.body.addWidget(self.cumulative_note)
        charts.addWidget(stacked_card)
        charts.addWidget(cumulative_card)
        charts.setSizes([640, 420])
        split.addWidget(charts)

        log_card = Card("Requests")
        self.log = RequestLogModel(self._load_page)
        self.proxy = QSortFilterProxyModel()
        self.proxy.setSourceModel(self.log)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 10)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.verticalScrollBar().valueChanged.connect(self._maybe_more)
        self.table.doubleClicked.connect(self._open_transaction)
        log_card.body.addWidget(self.table)
        self.count = label("", "muted")
        log_card.body.addWidget(self.count)
        self.log.page_loaded.connect(self._show_count)
        split.addWidget(log_card)
        split.setSizes([330, 400])
        self.body.addWidget(split, 1)
        self.series: SpendSeries | None = None
        self.drawn_for: tuple[object, ...] | None = None  # the chart choices last drawn
        self._widths_set = False

    # -- loading --------------------------------------------------------------------------------
    def current_filter(self) -> RequestFilter:
        seconds = self.time_filter.currentData()
        return RequestFilter(
            app_id=self.app_filter.currentData(),
            model=self.model_filter.currentData(),
            status=self.status_filter.currentData(),
            since=datetime.now(UTC) - timedelta(seconds=seconds) if seconds else None,
        )

    async def _load_page(self, f: RequestFilter, before: tuple[datetime, str] | None) -> LogPage:
        wallet = self.controller.wallet

        def read() -> LogPage:
            rows = wallet.reports.request_page(f, before=before)
            return LogPage(rows, *_payments_of(wallet, rows))

        return await self.controller.run(read)

    def open_link(self, url: str) -> None:
        QDesktopServices.openUrl(QUrl(url))

    def _open_transaction(self, index: QModelIndex) -> None:
        """Double-clicking a paid request opens its transaction in the explorer."""
        url = index.data(EXPLORER_ROLE)
        if isinstance(url, str) and url:
            self.open_link(url)

    def _filters_changed(self) -> None:
        self.controller.spawn(self.log.reset(self.current_filter()), "Loading requests")

    def _maybe_more(self, value: int) -> None:
        bar = self.table.verticalScrollBar()
        if value >= bar.maximum() - 5 and self.log.has_more():
            self.controller.spawn(self.log.load_more(), "Loading more requests")

    def _show_count(self, loaded: int) -> None:
        more = " (scroll for more)" if self.log.has_more() else ""
        self.count.setText(f"{plural(loaded, 'request')} shown{more}")
        if not self._widths_set and loaded:
            self.table.resizeColumnsToContents()
            self._widths_set = True

    def chart_choices(self) -> tuple[object, ...]:
        return (
            self.range.currentData(),
            self.group.currentData(),
            self.app_filter.currentData(),
            self.model_filter.currentData(),
        )

    async def refresh(self) -> None:
        wallet = self.controller.wallet
        choices = self.chart_choices()
        unit, count = CHART_RANGES[str(self.range.currentData())]
        model = self.model_filter.currentData()
        # A chosen model is a series of the by-model grouping: the charts show only it.
        group = "model" if model is not None else str(self.group.currentData())
        app_id = self.app_filter.currentData()
        now = datetime.now(UTC)

        def read() -> tuple[Any, ...]:
            tz = wallet.timezone
            edges = bucket_edges(unit, count, now, tz)
            series = only(wallet.reports.spend_series(edges, group, app_id=app_id), model)
            budget = (
                wallet.budgets.app_budget(app_id)
                if app_id is not None
                else wallet.budgets.wallet_budget()
            )
            period = budget.period if budget else Period.MONTH
            if period is Period.TOTAL:  # no window: the last 30 days, and what came before
                start, end = now - TOTAL_SPAN, now
            else:
                window = window_for(period, now, tz)
                assert window.start is not None and window.end is not None
                start, end = window.start, min(window.end, now)
            cunit = CUMULATIVE_UNIT[period]
            cedges = _edges_over(cunit, start, end, tz)
            cseries = only(wallet.reports.spend_series(cedges, "model", app_id=app_id), model)
            before = 0
            if period is Period.TOTAL:
                before = only_total(
                    wallet.reports.spend_series([FAR_PAST, start], "model", app_id=app_id),
                    model,
                )
            cumulative = (cseries, budget.amount_nano if budget else None, period, before)
            names = wallet.reports.app_names()
            models = wallet.reports.models_used()
            return tz, series, cumulative, names, models

        tz, series, cumulative, names, models = await self.controller.run(read)
        if self.chart_choices() != choices:
            return  # chosen otherwise meanwhile: the reload that choice started draws it
        self._fill_filters(names, models)
        self.series = series
        self.stacked.show_series(series, unit, tz)
        self.stacked.set_x_label(X_LABELS[unit])
        self.legend.setText(self.stacked.legend_html)
        self.stacked_total.setText(
            f"{money(series.total_nano)} in the last {self.range.currentText()}"
            if series.total_nano
            else "No spend in this range yet"
        )
        cseries, budget_nano, period, before = cumulative
        cunit = CUMULATIVE_UNIT[period]
        labels = [bucket_label(e, cunit, tz) for e in cseries.edges]
        self.cumulative.show_cumulative(cseries.bucket_totals(), budget_nano, labels, before)
        self.cumulative.set_x_label(CUMULATIVE_X_LABELS[period])
        whose = "this app's" if app_id is not None else "the wallet's"
        spent = before + cseries.total_nano
        so_far = "in total" if period is Period.TOTAL else f"so far this {period.value}"
        of_model = f" on {shown(model, 60)}" if model is not None else ""
        self.cumulative_note.setText(
            f"{money(spent)}{of_model} {so_far}; "
            + (
                f"{whose} budget is {money(budget_nano)}"
                + ("" if period is Period.TOTAL else f" per {period.value}")
                if budget_nano is not None
                else f"{whose} spend has no budget (set one on Overview or Apps)"
            )
        )
        self.drawn_for = choices
        await self.log.reset(self.current_filter())

    def _fill_filters(self, names: dict[int, str], models: list[str]) -> None:
        for combo, items in (
            (
                self.app_filter,
                sorted(((shown(n, 60), i) for i, n in names.items()), key=lambda x: x[0]),
            ),
            (self.model_filter, [(shown(m, 60), m) for m in models]),
        ):
            current = combo.currentData()
            wanted = [(text, value) for text, value in items]
            have = [(combo.itemText(i), combo.itemData(i)) for i in range(1, combo.count())]
            if have == wanted:
                continue
            combo.blockSignals(True)
            while combo.count() > 1:
                combo.removeItem(1)
            for text, value in wanted:
                combo.addItem(text, value)
            found = combo.findData(current)
            combo.setCurrentIndex(found if found >= 0 else 0)
            combo.blockSignals(False)


def _payments_of(wallet: Any, rows: list[RequestRow]) -> tuple[dict[str, Any], dict[str, str]]:
    """The payments of the rows paid by x402, by request id, and their explorer links
    (blocking: SQL; a page holds at most 200 rows)."""
    paid = [r.id for r in rows if r.token_source == X402_SOURCE]
    if not paid:
        return {}, {}
    payments: dict[str, Any] = {}
    for request_id in paid:
        found = wallet.payments.for_request(request_id)
        if found:
            payments[request_id] = found[-1]  # the last one made for it
    links = {rid: url for rid, p in payments.items() if (url := tx_link(p)) is not None}
    return payments, links


def _edges_over(unit: str, start: datetime, end: datetime, tz: Any) -> list[datetime]:
    """Local buckets of ``unit`` (hour or day) from ``start`` up to ``end`` (now, in a budget
    window): the last bucket is the one still running."""
    edges = [start]
    while edges[-1] < end:
        if unit == "hour":
            nxt: datetime | None = edges[-1] + timedelta(hours=1)
        else:
            nxt = window_for(Period.DAY, edges[-1], tz).end
        assert nxt is not None
        edges.append(nxt)
    if len(edges) == 1:
        edges.append(edges[0] + timedelta(hours=1))
    return edges
