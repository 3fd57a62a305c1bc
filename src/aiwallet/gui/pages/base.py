"""What every page shares: a title, a scrollable body, and reloading when data changed
(at once when visible, else when next shown)."""

from __future__ import annotations

from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

from aiwallet.gui.controller import Controller
from aiwallet.gui.widgets import label


class Page(QWidget):
    title = ""

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._stale = True
        self.loads = 0  # completed reloads (tests wait on it)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 18, 24, 18)
        outer.setSpacing(12)
        self.header = QHBoxLayout()
        heading = label(self.title, "pageTitle")
        self.header.addWidget(heading)
        self.header.addStretch(1)
        outer.addLayout(self.header)
        self.body = QVBoxLayout()
        self.body.setSpacing(12)
        outer.addLayout(self.body, 1)
        controller.data_changed.connect(self._on_data_changed)

    def _on_data_changed(self) -> None:
        self._stale = True
        if self.isVisible():
            self.reload()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._stale:
            self.reload()

    def reload(self) -> None:
        self._stale = False
        self.controller.spawn(self._reload(), f"Loading {self.title}")

    async def _reload(self) -> None:
        await self.refresh()
        self.loads += 1

    async def refresh(self) -> None:
        """Load this page's data (blocking reads via ``controller.run``) and show it."""
        raise NotImplementedError
