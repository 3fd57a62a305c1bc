"""Small building blocks shared by the pages: cards, headings, money text, a progress
delegate for budget columns, and every way the app shows text it did not write.

Text a caller or a provider wrote (app names, purposes, paths, command lines, model names,
error messages) is shown only through this module: ``label`` (always plain text; every
label of the app is made here), ``CallerLabel`` (one line, elided to its width, the full
text in a tooltip), ``CallerWords`` (a bounded, framed box for a caller's own sentence),
``html_text`` / ``tooltip_text`` (escaped, for the few rich-text labels and for tooltips,
which Qt renders as rich text when they look like it), ``menu_text`` (menus read ``&``
as a shortcut mark) and ``ask`` (a question box in plain text). All of them go through
``domain.display.display`` first: no line breaks, controls, bidi overrides or zero-width
characters reach the screen."""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from datetime import UTC, datetime

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, QTimer
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QGuiApplication,
    QPainter,
    QResizeEvent,
    QTextOption,
)
from PySide6.QtWidgets import (
    QAbstractButton,
    QFrame,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from aiwallet.domain.display import display
from aiwallet.domain.money import format_usd, format_usd_short
from aiwallet.gui.theme import DANGER, WARN

OK_COLOUR = "#38a169"

PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 1  # a 0..1000 per-mille value for the delegate


def money_short(nano: int) -> str:
    """For tight columns: cents from a cent up (``$1.23``); under a cent three significant
    digits (``$0.00105``), never ``<$0.01`` or a rounded-away ``$0.0010``."""
    return format_usd_short(nano)


def money(nano: int) -> str:
    """``$1.23``; amounts under a cent keep their digits (``$0.00042``)."""
    if nano != 0 and abs(nano) < 10_000_000:
        return format_usd(nano, places=None)
    return format_usd(nano)


COPIED = "Copied"
COPIED_MS = 2000  # how long a copy button says "Copied"


def copy_button(button: QAbstractButton, text: Callable[[], str]) -> None:
    """Make ``button`` copy ``text()`` to the clipboard and say "Copied" for two seconds
    (a single-shot timer puts its own text back; clicking again restarts the two seconds)."""
    own = button.text()
    timer = QTimer(button)
    timer.setSingleShot(True)
    timer.setInterval(COPIED_MS)
    timer.timeout.connect(lambda: button.setText(own))

    def copy() -> None:
        QGuiApplication.clipboard().setText(text())
        button.setText(COPIED)
        timer.start()

    button.clicked.connect(copy)


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


def mono_font() -> QFont:
    """The system's fixed-width font (addresses, signatures), at the UI's size."""
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setStyleHint(QFont.StyleHint.Monospace)
    font.setPointSizeF(QGuiApplication.font().pointSizeF())
    return font


def money_badge(real_money: bool) -> QLabel:
    """A red "REAL MONEY" badge, shown only for a network whose money is real (a test
    network's line already says "test money")."""
    badge = label("REAL MONEY" if real_money else "test money")
    set_money_badge(badge, real_money)
    return badge


def set_money_badge(badge: QLabel, real_money: bool) -> None:
    badge.setText("REAL MONEY" if real_money else "test money")
    badge.setObjectName("realMoney" if real_money else "testMoney")
    badge.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    badge.setToolTip(
        tooltip_text(
            "Payments on this network spend real USDC"
            if real_money
            else "A test network: its USDC is worth nothing"
        )
    )
    badge.style().unpolish(badge)
    badge.style().polish(badge)
    badge.setVisible(real_money)


TOOLTIP_LIMIT = 2000  # characters of a full text shown in a tooltip
_TOOLTIP_RUN = 60  # a tooltip may break a run without spaces after this many characters


def label(text: str, name: str | None = None, *, wrap: bool = False) -> QLabel:
    """A plain-text label: whatever ``text`` holds is drawn as the characters it is."""
    lab = QLabel()
    lab.setTextFormat(Qt.TextFormat.PlainText)
    lab.setText(text)
    if name:
        lab.setObjectName(name)
    lab.setWordWrap(wrap)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return lab


def rich_label(markup: str, name: str | None = None, *, wrap: bool = False) -> QLabel:
    """A label of the app's own markup; every value in it comes through ``html_text``."""
    lab = label("", name, wrap=wrap)
    lab.setTextFormat(Qt.TextFormat.RichText)
    lab.setText(markup)
    return lab


def shown(value: object, limit: int | None = 200) -> str:
    """The on-screen form of untrusted text (one line, see ``domain.display``)."""
    return display(value, limit=limit)


def html_text(value: object, limit: int | None = 200) -> str:
    """Untrusted text for a place of rich text: its display form, HTML-escaped."""
    return html.escape(display(value, limit=limit), quote=True)


def tooltip_text(value: object, limit: int = TOOLTIP_LIMIT) -> str:
    """A tooltip holding untrusted text. Qt renders a tooltip as rich text whenever it
    looks like markup, so it is always given as escaped rich text (``<p>…</p>``), which
    draws the characters themselves; long runs without a space get break points."""
    text = display(value, limit=limit)
    parts: list[str] = []
    run = 0
    for ch in text:
        run = 0 if ch.isspace() else run + 1
        parts.append(ch)
        if run >= _TOOLTIP_RUN:
            parts.append("\u200b")
            run = 0
    return "<p>" + html.escape("".join(parts), quote=True) + "</p>"


def menu_text(value: object, limit: int = 60) -> str:
    """Untrusted text for a menu entry or button: ``&`` would mark a shortcut key."""
    return display(value, limit=limit).replace("&", "&&")


def ask(parent: QWidget | None, title: str, text: str) -> bool:
    """A Yes / No question in plain text (``QMessageBox.question`` guesses the format)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle(title)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setText(text)
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


class CallerLabel(QLabel):
    """One line of untrusted text (an app name, a path): plain, elided to the width it is
    given (``ElideMiddle`` keeps a path's file name), the full text in a tooltip. It never
    asks for more width than ``max_width``, so a long value cannot stretch its window."""

    def __init__(
        self,
        value: object,
        name: str | None = None,
        *,
        mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight,
        max_width: int = 460,
        limit: int = TOOLTIP_LIMIT,
    ) -> None:
        super().__init__()
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        if name:
            self.setObjectName(name)
        self.mode = mode
        self.max_width = max_width
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.full = ""
        self.set_value(value, limit=limit)

    def set_value(self, value: object, *, limit: int = TOOLTIP_LIMIT) -> None:
        self.full = display(value, limit=limit)
        self._elide()
        self.updateGeometry()

    @property
    def elided(self) -> bool:
        return self.text() != self.full

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        width = min(fm.horizontalAdvance(self.full) + 4, self.max_width)
        return QSize(width, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(min(60, self.sizeHint().width()), super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        margins = self.contentsMargins()
        room = max(self.width() - margins.left() - margins.right() - 2, 10)
        text = self.fontMetrics().elidedText(self.full, self.mode, room)
        if text != self.text():
            self.setText(text)
        self.setToolTip(tooltip_text(self.full) if text != self.full else "")


class CallerWords(QPlainTextEdit):
    """A caller's own words (a purpose, a command line) in a framed, read-only, plain-text
    box of at most ``max_lines`` lines: wrapped anywhere (a long word cannot widen the
    window), scrolled for the rest, selectable and copyable. Line breaks in the words show
    as ``⏎``, so the words cannot draw rows of their own outside or inside the box."""

    def __init__(self, value: object, *, max_lines: int = 4, limit: int = 4000) -> None:
        super().__init__()
        self.setObjectName("callerWords")
        self.setReadOnly(True)
        self.setTabChangesFocus(True)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.max_lines = max_lines
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setPlainText(display(value, limit=limit))
        self.document().documentLayout().documentSizeChanged.connect(lambda _s: self._fit())
        self._fit()

    def lines_shown(self) -> int:
        """Visual lines of the words (after wrapping), capped at ``max_lines``."""
        return max(1, min(self.total_lines(), self.max_lines))

    def _fit(self) -> None:
        """Exactly ``lines_shown`` lines tall. When the words run longer, the bottom margin
        is kept out of the viewport, so no sliver of a further line shows under the last
        one (the scroll bar says there is more)."""
        margins = self.contentsMargins()
        doc_margin = math.ceil(self.document().documentMargin())
        lines = self.lines_shown()
        more = self.total_lines() > lines
        self.setViewportMargins(0, 0, 0, doc_margin if more else 0)
        height = self._lines_height(lines) + 2 * doc_margin + margins.top() + margins.bottom()
        if not more:
            height += 1  # QPlainTextEdit wants a pixel to spare before it drops its scroll bar
        if self.height() != height:
            self.setFixedHeight(height)

    def _lines_height(self, lines: int) -> int:
        """Pixels of the first ``lines`` laid-out lines (their real heights, which the
        font's rounded line spacing may undercount)."""
        total = 0.0
        left = lines
        block = self.document().begin()
        while block.isValid() and left > 0:
            layout = block.layout()
            count = layout.lineCount() if layout is not None else 0
            if count == 0:
                total += self.fontMetrics().lineSpacing()
                left -= 1
            for i in range(min(count, left)):
                total += layout.lineAt(i).height()
            left -= min(count, left)
            block = block.next()
        total += left * self.fontMetrics().lineSpacing()
        return math.ceil(total)

    def total_lines(self) -> int:
        count = 0
        block = self.document().begin()
        while block.isValid():
            layout = block.layout()
            count += max(layout.lineCount() if layout is not None else 1, 1)
            block = block.next()
        return count

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()


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
