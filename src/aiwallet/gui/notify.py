"""Notifications: budget thresholds, the wallet paused, a provider failing. At most one per
kind per minute; shown by the tray where there is one, else in the main window's status bar.

A notification may carry a caller's words (an app's name). Desktop notification servers may
read its body as markup (freedesktop's ``body-markup``: bold, links, images) while others
show it raw, so no escaping suits both: the text is put in display form, bounded, and
``<``, ``>`` and ``&`` are replaced by look-alikes that are markup nowhere."""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QSystemTrayIcon

from aiwallet.domain.display import display

COALESCE_S = 60.0
TITLE_LIMIT = 80
TEXT_LIMIT = 300
_LOOKALIKES = str.maketrans({"<": "‹", ">": "›", "&": "＆"})


def notice_text(value: object, limit: int = TEXT_LIMIT) -> str:
    """What a notification may show of ``value``: one line, bounded, markup nowhere."""
    return display(value, limit=limit).translate(_LOOKALIKES)


class Notifier(QObject):
    shown = Signal(str, str, str)  # kind, title, text (what was actually shown)

    def __init__(
        self,
        tray: QSystemTrayIcon | None,
        fallback: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.tray = tray
        self.fallback = fallback
        self.clock = clock
        self._last: dict[str, float] = {}
        self.suppressed = 0

    def notify(self, kind: str, title: str, text: str) -> bool:
        """Show it unless one of the same kind was shown less than a minute ago."""
        title, text = notice_text(title, TITLE_LIMIT), notice_text(text)
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < COALESCE_S:
            self.suppressed += 1
            return False
        self._last[kind] = now
        if self.tray is not None and self.tray.isVisible() and self.tray.supportsMessages():
            icon = (
                QSystemTrayIcon.MessageIcon.Warning
                if kind.startswith(("budget", "upstream", "paused", "over_reserved"))
                else QSystemTrayIcon.MessageIcon.Information
            )
            self.tray.showMessage(title, text or title, icon, 8000)
        self.fallback(f"{title}: {text}" if text else title)
        self.shown.emit(kind, title, text)
        return True
