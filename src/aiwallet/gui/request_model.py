"""The request log as a Qt model: pages of 200 rows read on demand (``fetchMore``), newest
first, filtered in SQL. Sorting by a column sorts the rows loaded so far (a proxy). A request
paid by x402 says so ("paid (x402)") and names its payment's transaction, read with its page
(``LogPage.payments``)."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor

from aiwallet.domain.money import format_usd, format_usd_short
from aiwallet.domain.reports import RequestFilter, RequestRow
from aiwallet.domain.usage import TokenSource
from aiwallet.gui.solana_view import X402_SOURCE, short, state_text
from aiwallet.gui.texts import COST_DIFFERS
from aiwallet.gui.theme import WARN
from aiwallet.gui.widgets import shown, tooltip_text, when
from aiwallet.summaries import refusal_reason

if TYPE_CHECKING:
    from aiwallet.store.payments import PaymentRecord

Index = QModelIndex | QPersistentModelIndex
PAGE = 200
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
EXPLORER_ROLE = Qt.ItemDataRole.UserRole + 3  # an x402 row's transaction in the explorer
PAID = "paid (x402)"
DIFFERS_FLAG = " ⚑"  # after the cost of a request billed off the catalog's figure


def cost_differs_text(row: RequestRow) -> str | None:
    """For a request the provider billed more than 1 % off the catalog's figure: what the
    flag's tooltip says; None for any other."""
    if not row.cost_differs or row.catalog_cost_nano is None:
        return None
    return COST_DIFFERS.format(
        billed=format_usd(row.cost_nano, places=None),
        catalog=format_usd(row.catalog_cost_nano, places=None),
    )


class Col(enum.IntEnum):
    TIME = 0
    APP = 1
    MODEL = 2
    TOKENS_IN = 3
    TOKENS_OUT = 4
    COST = 5
    LATENCY = 6
    STATUS = 7
    REASON = 8


HEADERS = ("Time", "App", "Model", "In", "Out", "Cost", "Latency", "Status", "Reason")


@dataclass(frozen=True, slots=True)
class LogPage:
    """A page of the log and, for its rows paid by x402, their payments (by request id)
    and each payment's explorer link."""

    rows: list[RequestRow]
    payments: dict[str, PaymentRecord] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)


def status_text(row: RequestRow) -> str:
    if row.token_source == X402_SOURCE:  # its cost is the payment, not priced tokens
        if row.status < 400 and not row.error_code:
            return PAID + (" · stream" if row.stream else "")
        if row.status < 400:
            return f"cut off · {row.error_code} · {PAID}"
        return f"{row.status} {row.error_code or ''}".strip() + f" · {PAID}"
    if row.status < 400 and row.error_code:
        return f"cut off · {row.error_code} (billed {row.token_source or 'estimated'})"
    if row.status < 400:
        text = "ok"
        if row.token_source and row.token_source != TokenSource.PROVIDER.value:
            text += f" ({row.token_source})"
        return text + (" · stream" if row.stream else "")
    return f"{row.status} {row.error_code or ''}".strip()


def reason_text(row: RequestRow, payment: PaymentRecord | None = None) -> str:
    """Why a request was refused or cut off (the code's line in the table of codes); empty
    for one that went well. A paid request adds its payment's transaction."""
    parts = []
    if row.error_code:
        parts.append(refusal_reason(row.error_code) or row.error_code)
    if payment is not None:
        if payment.tx_signature:
            parts.append(f"transaction {short(payment.tx_signature)}")
        else:
            parts.append(f"payment {state_text(payment)}")
    elif row.token_source == X402_SOURCE:
        parts.append("paid by x402")
    return " · ".join(parts)


class RequestLogModel(QAbstractTableModel):
    page_loaded = Signal(int)  # rows now loaded

    def __init__(
        self, load: Callable[[RequestFilter, tuple[datetime, str] | None], Awaitable[LogPage]]
    ) -> None:
        super().__init__()
        self._load = load  # awaits a page of rows (off the GUI thread)
        self.rows: list[RequestRow] = []
        self.payments: dict[str, PaymentRecord] = {}
        self.links: dict[str, str] = {}
        self.filter = RequestFilter()
        self._more = True
        self._loading = False
        self.now = datetime.now(UTC)

    async def reset(self, f: RequestFilter) -> None:
        """Show the first page for filter ``f``."""
        self._loading = True
        try:
            page = await self._load(f, None)
        finally:
            self._loading = False
        rows = page.rows
        self.beginResetModel()
        self.filter, self.rows, self.now = f, list(rows), datetime.now(UTC)
        self.payments, self.links = dict(page.payments), dict(page.links)
        self._more = len(rows) == PAGE
        self.endResetModel()
        self.page_loaded.emit(len(self.rows))

    async def load_more(self) -> None:
        if not self._more or self._loading or not self.rows:
            return
        self._loading = True
        try:
            last = self.rows[-1]
            page = await self._load(self.filter, (last.ts, last.id))
        finally:
            self._loading = False
        rows = page.rows
        self.payments.update(page.payments)
        self.links.update(page.links)
        if rows:
            start = len(self.rows)
            self.beginInsertRows(QModelIndex(), start, start + len(rows) - 1)
            self.rows.extend(rows)
            self.endInsertRows()
        self._more = len(rows) == PAGE
        self.page_loaded.emit(len(self.rows))

    def has_more(self) -> bool:
        return self._more

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return len(Col)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = 0) -> Any:
        if not index.isValid():
            return None
        row, col = self.rows[index.row()], Col(index.column())
        if role == SORT_ROLE:
            return {
                Col.TIME: row.ts.timestamp(),
                Col.APP: row.app,
                Col.MODEL: row.model or "",
                Col.TOKENS_IN: row.input_tokens,
                Col.TOKENS_OUT: row.output_tokens,
                Col.COST: row.cost_nano,
                Col.LATENCY: row.latency_ms or 0,
                Col.STATUS: row.status,
                Col.REASON: row.error_code or "",
            }[col]
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (
            Col.TOKENS_IN,
            Col.TOKENS_OUT,
            Col.COST,
            Col.LATENCY,
        ):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        payment = self.payments.get(row.id)
        if role == EXPLORER_ROLE:
            return self.links.get(row.id)
        if (
            role == Qt.ItemDataRole.ToolTipRole
            and col in (Col.STATUS, Col.REASON)
            and (row.error_code or payment is not None)
        ):
            tip = f"{status_text(row)}: {reason_text(row, payment)}"
            if payment is not None:
                tip += (
                    f" · {format_usd(payment.amount_nano, places=None)} to {payment.payee}"
                    f" · transaction {payment.tx_signature or 'not yet known'}"
                )
                if row.id in self.links:
                    tip += " (double-click to open it in the explorer)"
            return tooltip_text(tip)
        differs = cost_differs_text(row) if col is Col.COST else None
        if role == Qt.ItemDataRole.ToolTipRole and differs is not None:
            return tooltip_text(differs)
        if role == Qt.ItemDataRole.ForegroundRole and differs is not None:
            return QColor(WARN)
        if role == Qt.ItemDataRole.ToolTipRole:
            exact = format_usd(row.cost_nano, places=None)
            return tooltip_text(
                f"{row.id} · {row.endpoint} · {row.provider or '-'} · {row.app} · "
                f"{row.model or '-'} · cost {exact}"
            )
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if col is Col.TIME:
            return when(row.ts, self.now)
        if col is Col.APP:
            return shown(row.app)
        if col is Col.MODEL:
            return shown(row.model) or "–"
        if col is Col.TOKENS_IN:
            return f"{row.input_tokens:,}"
        if col is Col.TOKENS_OUT:
            return f"{row.output_tokens:,}"
        if col is Col.COST:
            return format_usd_short(row.cost_nano) + (DIFFERS_FLAG if differs else "")
        if col is Col.LATENCY:
            return f"{row.latency_ms:,} ms" if row.latency_ms is not None else "–"
        if col is Col.STATUS:
            return shown(status_text(row))
        return shown(reason_text(row, payment), 300)
