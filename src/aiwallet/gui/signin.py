""" "Connect OpenRouter": the PKCE sign-in (``provider_signin``) run off the GUI thread, and
the dialog that waits for it.

The sign-in's callback server and its exchange run on a worker thread's own asyncio loop
(``Controller.run`` + ``asyncio.run``), never on the Qt thread; the flow tells the GUI
through queued signals: the address to open (``url_ready``), then ``finished`` with the
stored provider or ``failed`` with the words to show (``cancelled`` for a cancel). Cancel is
safe from the GUI thread at any moment, before the sign-in has started too; closing the app
cancels it (``Controller.on_stop``), so no worker waits for a browser that never comes.

The dialog shows the address as selectable plain text with a Copy button (no browser may
have opened), and Cancel; the key itself never reaches the GUI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from aiwallet.domain.errors import WalletError
from aiwallet.gui import texts
from aiwallet.gui.controller import Controller
from aiwallet.gui.widgets import copy_button, label, mono_font, shown

if TYPE_CHECKING:
    from aiwallet.service import ProviderInfo

Opener = Callable[[str], object]


def open_in_desktop_browser(url: str) -> object:
    """The system's browser (on the GUI thread: Qt's desktop services)."""
    return QDesktopServices.openUrl(QUrl(url))


class SignInFlow(QObject):
    """One "Connect OpenRouter" run. ``start()`` returns at once; the signals tell the rest.

    ``options`` go to ``start_connect_openrouter`` as they are (``auth_url``, ``api_base``,
    ``port``, ``timeout_s``: tests and screenshots point them at a fake on loopback)."""

    url_ready = Signal(str)
    finished = Signal(object)  # ProviderInfo
    failed = Signal(str)
    cancelled = Signal()

    def __init__(
        self,
        controller: Controller,
        *,
        name: str = "openrouter",
        replace: bool = False,
        options: dict[str, Any] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.name = name
        self.replace = replace
        self.options = dict(options or {})
        self.url: str | None = None
        self.result: ProviderInfo | None = None
        self.done = False
        self._lock = threading.Lock()
        self._cancel_asked = False
        self._connect: Any = None  # provider_signin.OpenRouterConnect, once started
        self._task: asyncio.Task[Any] | None = None

    def start(self) -> asyncio.Task[Any]:
        self._task = self.controller.spawn(self._run(), "Connecting OpenRouter")
        return self._task

    def cancel(self) -> None:
        """Stop the sign-in (from any thread; before it started too)."""
        with self._lock:
            self._cancel_asked = True
            connect = self._connect
        if connect is not None:
            connect.cancel()

    async def _run(self) -> None:
        remove = self.controller.on_stop(self.cancel)
        try:
            info = await self.controller.run(self._blocking)
        except WalletError as exc:
            self.done = True
            if self._cancel_asked or getattr(exc, "code", "") == "signin_cancelled":
                self.cancelled.emit()
            else:
                self.failed.emit(shown(exc, 400))
            return
        finally:
            remove()
        self.done = True
        self.result = info
        self.finished.emit(info)

    def _blocking(self) -> ProviderInfo:  # on a worker thread
        return asyncio.run(self._flow())

    async def _flow(self) -> ProviderInfo:
        from aiwallet.provider_signin import start_connect_openrouter

        connect = await start_connect_openrouter(
            self.controller.wallet, name=self.name, replace=self.replace, **self.options
        )
        try:
            with self._lock:
                self._connect = connect
                cancel_now = self._cancel_asked
            if cancel_now:
                connect.cancel()
            self.url = connect.url
            self.url_ready.emit(connect.url)  # queued onto the GUI thread
            info: ProviderInfo = await connect.wait()
            return info
        finally:
            await connect.aclose()


class SignInDialog(QDialog):
    """Waits for a :class:`SignInFlow`: "Finish signing in in your browser", the address
    (selectable, copyable), Cancel. Accepted when the provider is stored; rejected (and the
    flow cancelled) on Cancel or close; a failure stays on screen with a Close button."""

    def __init__(
        self, flow: SignInFlow, open_browser: Opener, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.flow = flow
        self.open_browser = open_browser
        self.setWindowTitle(texts.SIGNIN_TITLE)
        self.setMinimumWidth(560)
        box = QVBoxLayout(self)
        box.setContentsMargins(20, 18, 20, 16)
        box.setSpacing(10)
        self.heading = label(texts.SIGNIN_TITLE, "promptTitle")
        self.state = label(texts.SIGNIN_STARTING, wrap=True)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # moving: waiting on the browser
        self.busy.setTextVisible(False)
        self.busy.setMaximumHeight(6)
        self.hint = label(texts.SIGNIN_URL_HINT, "muted", wrap=True)
        self.url_field = QLineEdit()
        self.url_field.setReadOnly(True)
        self.url_field.setFont(mono_font())
        self.url_field.setPlaceholderText("…")
        self.copy = QPushButton("Copy")
        copy_button(self.copy, self.url_field.text)
        self.reopen = QPushButton("Open the browser again")
        self.reopen.clicked.connect(lambda: self._open(self.url_field.text()))
        url_row = QHBoxLayout()
        url_row.addWidget(self.url_field, 1)
        url_row.addWidget(self.copy)
        self.problem = label("", "warning", wrap=True)
        self.problem.hide()
        buttons = QHBoxLayout()
        buttons.addWidget(self.reopen)
        buttons.addStretch(1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.reject)
        buttons.addWidget(self.cancel_button)
        for part in (self.heading, self.state, self.busy, self.hint):
            box.addWidget(part)
        box.addLayout(url_row)
        box.addWidget(self.problem)
        box.addLayout(buttons)
        for w in (self.copy, self.reopen, self.url_field, self.hint):
            w.setEnabled(False)
        flow.url_ready.connect(self._url_ready)
        flow.finished.connect(self._finished)
        flow.failed.connect(self._failed)
        flow.cancelled.connect(self._cancelled)

    def _open(self, url: str) -> None:
        if url:
            self.open_browser(url)

    def _url_ready(self, url: str) -> None:
        self.state.setText(texts.SIGNIN_WAITING)
        self.url_field.setText(url)
        self.url_field.setCursorPosition(0)
        for w in (self.copy, self.reopen, self.url_field, self.hint):
            w.setEnabled(True)
        self._open(url)

    def _finished(self, _info: object) -> None:
        self.accept()

    def _failed(self, text: str) -> None:
        self.busy.hide()
        self.state.setText("The sign-in did not finish; nothing was stored.")
        self.problem.setText(text)
        self.problem.show()
        self.reopen.setEnabled(False)
        self.cancel_button.setText("Close")

    def _cancelled(self) -> None:
        if self.isVisible():
            self.reject()

    def reject(self) -> None:
        if not self.flow.done:
            self.flow.cancel()
        super().reject()
