"""Notifications: budget thresholds, the wallet paused, a provider failing, an x402 payment
settled, failed or left unconfirmed, a provider balance low, a key due for rotation, a per-app
provider key at its cap or in trouble. At most one per kind per minute; shown by the tray
where there is one, else in the main window's status bar.

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
# Kinds whose notices report a switch of state (paused, then resumed): a notice that
# reverses the last one of its kind is never held back, the state it reports is the current.
STATE_KINDS = frozenset({"paused"})
TITLE_LIMIT = 80
TEXT_LIMIT = 300
WARNING_KINDS = (
    "budget",
    "upstream",
    "paused",
    "over_reserved",
    "payment_failed",
    "payment_unconfirmed",
    "balance_low",
    "key_old",
    "provider_limit",
    "subkey_problem",
    "breaker",
)
_LOOKALIKES = str.maketrans({"<": "‹", ">": "›", "&": "＆"})


def notice_text(value: object, limit: int = TEXT_LIMIT) -> str:
    """What a notification may show of ``value``: one line, bounded, markup nowhere."""
    return display(value, limit=limit).translate(_LOOKALIKES)


def status_line(title: str, text: str) -> str:
    """The one line the status bar shows: ``title: text``, or just ``text`` when it already
    begins with the title's words (no "Paused: Paused. ..."), or the title alone."""
    if not text:
        return title
    if text.casefold().startswith(title.rstrip(" .:").casefold()):
        return text
    return f"{title}: {text}"


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
        self._last_title: dict[str, str] = {}
        self.suppressed = 0

    def notify(self, kind: str, title: str, text: str) -> bool:
        """Show it unless one of the same kind was shown less than a minute ago."""
        title, text = notice_text(title, TITLE_LIMIT), notice_text(text)
        now = self.clock()
        last = self._last.get(kind)
        reverses = kind in STATE_KINDS and self._last_title.get(kind) not in (None, title)
        if last is not None and now - last < COALESCE_S and not reverses:
            self.suppressed += 1
            return False
        self._last[kind] = now
        self._last_title[kind] = title
        if self.tray is not None and self.tray.isVisible() and self.tray.supportsMessages():
            icon = (
                QSystemTrayIcon.MessageIcon.Warning
                if kind.startswith(WARNING_KINDS)
                else QSystemTrayIcon.MessageIcon.Information
            )
            self.tray.showMessage(title, text or title, icon, 8000)
        self.fallback(status_line(title, text))
        self.shown.emit(kind, title, text)
        return True
