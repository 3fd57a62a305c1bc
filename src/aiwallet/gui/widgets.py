"""Small building blocks shared by the pages: cards, headings, money text, a progress
delegate for budget columns."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QLabel,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from aiwallet.domain.money import format_usd

PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 1  # a 0..1000 per-mille value for the delegate


def money(nano: int) -> str:
    """``$1.23``; amounts under a cent keep their digits (``$0.00042``)."""
    if nano != 0 and abs(nano) < 10_000_000:
        return format_usd(nano, places=None)
    return format_usd(nano)


def when(ts: datetime | None, now: datetime | None = None) -> str:
    """``14:03``, ``yesterday 09:12``, ``3 Nov 14:03`` in local time; ``never`` for None."""
    if ts is None:
        return "never"
    now = now or datetime.now(UTC)
    local, today = ts.astimezone(), now.astimezone()
    if local.date() == today.date():
        return local.strftime("%H:%M")
    if (today.date() - local.date()).days == 1:
        return "yesterday " + local.strftime("%H:%M")
    if local.year == today.year:
        return local.strftime("%-d %b %H:%M")
    return local.strftime("%-d %b %Y")


def label(text: str, name: str | None = None, *, wrap: bool = False) -> QLabel:
    lab = QLabel(text)
    if name:
        lab.setObjectName(name)
    lab.setWordWrap(wrap)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return lab


class Card(QFrame):
    """A titled panel."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.body = QVBoxLayout(self)
        self.body.setContentsMargins(16, 12, 16, 14)
        self.body.setSpacing(6)
        self.title = label(title, "cardTitle")
        self.body.addWidget(self.title)


class ProgressDelegate(QStyledItemDelegate):
    """Draws a progress bar from ``PROGRESS_ROLE`` (per mille) with the cell's text on it."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        value = index.data(PROGRESS_ROLE)
        if value is None:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(4, 5, -4, -5)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = min(int(value), 1000)
        bar.text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        bar.textVisible = True
        bar.state = option.state
        bar.palette = option.palette
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)
