"""Small building blocks shared by the pages: cards, headings, money text, a progress
delegate for budget columns."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from aiwallet.domain.money import format_usd
from aiwallet.gui.theme import DANGER, WARN

OK_COLOUR = "#38a169"

PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 1  # a 0..1000 per-mille value for the delegate


def money_short(nano: int) -> str:
    """Cents only, for tight columns: ``$1.23``; ``<$0.01`` for a few tenths of a cent."""
    if 0 < nano < 5_000_000:
        return "<$0.01"
    return format_usd(nano)


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
    """Draws a budget bar from ``PROGRESS_ROLE`` (per mille): green, amber from 80 %, red at
    100 %, with the cell's text beside it."""

    BAR_WIDTH = 70

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
        rect = option.rect
        palette = option.palette
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(rect, palette.highlight())
        per_mille = max(0, min(int(value), 1000))
        height = 8
        track = QRect(rect.left() + 6, rect.center().y() - height // 2, self.BAR_WIDTH, height)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(palette.mid())
        painter.drawRoundedRect(track, 4, 4)
        colour = DANGER if per_mille >= 1000 else WARN if per_mille >= 800 else OK_COLOUR
        fill = QRect(track)
        fill.setWidth(max(int(track.width() * per_mille / 1000), 4 if per_mille else 0))
        if per_mille:
            painter.setBrush(QColor(colour))
            painter.drawRoundedRect(fill, 4, 4)
        painter.restore()
        text_rect = QRect(rect)
        text_rect.setLeft(track.right() + 8)
        painter.drawText(
            text_rect,
            int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
            str(index.data(Qt.ItemDataRole.DisplayRole) or ""),
        )

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        hint = super().sizeHint(option, index)
        return QSize(hint.width() + self.BAR_WIDTH + 14, hint.height())
