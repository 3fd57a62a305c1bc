"""The main window: a navigation list and one page per entry (Ctrl+1..6 or the arrow keys
in the list), a status bar for results and errors. Closing it hides to the tray when there is
one."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QWidget,
)

from aiwallet.gui import texts
from aiwallet.gui.controller import Controller
from aiwallet.gui.pages.apps import AppsPage
from aiwallet.gui.pages.base import Page
from aiwallet.gui.pages.overview import OverviewPage
from aiwallet.gui.pages.providers import ProvidersPage
from aiwallet.gui.pages.settings import SettingsPage
from aiwallet.gui.pages.wallet import WalletPage
from aiwallet.gui.widgets import shown

if TYPE_CHECKING:
    from aiwallet.gui.pages.activity import ActivityPage

CLOSED_TO_TRAY_TOLD = "gui.closed_to_tray_told"  # a setting: the notice was shown once
CLOSED_TO_TRAY_TITLE = "aiwallet is still running"
CLOSED_TO_TRAY_TELL = (
    "Closing the window keeps the wallet running in the tray, so apps can still use it. "
    "Choose Quit in the tray menu to stop it."
)
ACTIVITY = 2  # built on first visit: its charts (pyqtgraph, numpy) are most of the imports


class MainWindow(QMainWindow):
    def __init__(self, controller: Controller, *, hide_on_close: bool = False) -> None:
        super().__init__()
        self.controller = controller
        self.hide_on_close = hide_on_close
        self._tray_told = False  # asked this session whether the notice was shown
        self.tray_notice_task: asyncio.Task[Any] | None = None
        self.setWindowTitle(texts.APP_TITLE)
        self.resize(1200, 800)
        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 8, 0, 0)
        row.setSpacing(0)
        self.nav = QListWidget()
        self.nav.setObjectName("nav")
        self.nav.setFixedWidth(210)
        self.stack = QStackedWidget()
        self.overview = OverviewPage(controller)
        self.apps = AppsPage(controller)
        self._activity: ActivityPage | None = None
        self._placeholder = QWidget()
        self.providers = ProvidersPage(controller)
        self.wallet = WalletPage(controller)
        self.settings = SettingsPage(controller)
        for n, (title, page) in enumerate(
            zip(
                texts.PAGES,
                (
                    self.overview,
                    self.apps,
                    self._placeholder,
                    self.providers,
                    self.wallet,
                    self.settings,
                ),
                strict=True,
            ),
            start=1,
        ):
            item = QListWidgetItem(title)
            item.setSizeHint(QSize(190, 38))
            item.setToolTip(f"Ctrl+{n}")
            self.nav.addItem(item)
            self.stack.addWidget(page)
            QShortcut(QKeySequence(f"Ctrl+{n}"), self, lambda i=n - 1: self.show_page(i))
        self.nav.currentRowChanged.connect(self._switch)
        self.nav.setCurrentRow(0)
        row.addWidget(self.nav)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        controller.failed.connect(
            lambda text: self.statusBar().showMessage(shown(text, 300), 15_000)
        )
        controller.paused_changed.connect(self._title)
        controller.paused_changed.connect(self._clear_paused_status)
        self._title(controller.paused)

    @property
    def activity(self) -> ActivityPage:
        if self._activity is None:
            from aiwallet.gui.pages.activity import ActivityPage

            page = ActivityPage(self.controller)
            self.stack.insertWidget(ACTIVITY, page)
            self.stack.removeWidget(self._placeholder)
            self._placeholder.deleteLater()
            self._activity = page
        return self._activity

    @property
    def pages(self) -> list[Page]:
        return [
            self.overview,
            self.apps,
            self.activity,
            self.providers,
            self.wallet,
            self.settings,
        ]

    def _switch(self, index: int) -> None:
        if index == ACTIVITY:
            self.activity  # noqa: B018 - builds the page on first visit
        self.stack.setCurrentIndex(index)

    def show_page(self, index: int) -> None:
        self.nav.setCurrentRow(index)
        page = self.stack.currentWidget()
        if page is not None:
            page.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def _title(self, paused: bool) -> None:
        self.setWindowTitle(f"{texts.APP_TITLE} — paused" if paused else texts.APP_TITLE)

    def _clear_paused_status(self, paused: bool) -> None:
        """A resume takes the "paused" line off the status bar at once."""
        bar = self.statusBar()
        if not paused and bar.currentMessage().startswith(texts.NOTIFY_PAUSED):
            bar.clearMessage()

    async def _tell_closed_to_tray(self) -> None:
        """The first time ever the window closes to the tray, a notice says so."""
        settings = self.controller.wallet.settings
        if await self.controller.run(settings.get, CLOSED_TO_TRAY_TOLD):
            return
        self.controller.notice.emit("closed_to_tray", CLOSED_TO_TRAY_TITLE, CLOSED_TO_TRAY_TELL)
        await self.controller.run(lambda: settings.set(CLOSED_TO_TRAY_TOLD, True, audit=False))

    def bring_up(self) -> None:
        self.show()
        self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized)
        self.raise_()
        self.activateWindow()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.hide_on_close:
            event.ignore()
            self.hide()
            if not self._tray_told:
                self._tray_told = True
                self.tray_notice_task = self.controller.spawn(
                    self._tell_closed_to_tray(), "Closed to the tray"
                )
            return
        super().closeEvent(event)
