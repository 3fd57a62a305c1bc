"""Settings: port, start at login, prompt timeout, notification thresholds, data dir."""

from __future__ import annotations

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from aiwallet import autostart
from aiwallet.domain.errors import InvalidInput
from aiwallet.gui.controller import Controller
from aiwallet.gui.pages.base import Page
from aiwallet.gui.widgets import Card, label
from aiwallet.preferences import NOTIFY_THRESHOLDS, NOTIFY_UPSTREAM, PORT, PROMPT_TIMEOUT_S


class SettingsPage(Page):
    title = "Settings"

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        card = Card("Preferences")
        form = QFormLayout()
        form.setHorizontalSpacing(18)
        form.setVerticalSpacing(10)
        self.port = QSpinBox()
        self.port.setRange(1024, 65535)
        self.port.setToolTip("Takes effect the next time aiwallet starts")
        self.login = QCheckBox("Start aiwallet when I log in (in the tray)")
        self.timeout = QSpinBox()
        self.timeout.setRange(10, 600)
        self.timeout.setSuffix(" s")
        self.thresholds = QLineEdit()
        self.thresholds.setPlaceholderText("80, 100")
        self.upstream = QCheckBox("Tell me when a provider fails")
        for field in (self.port, self.timeout, self.thresholds):
            field.setMaximumWidth(180)
        data_row = QHBoxLayout()
        self.data_dir = QLineEdit(str(controller.wallet.data_dir.root))
        self.data_dir.setReadOnly(True)
        open_dir = QPushButton("Open folder")
        open_dir.clicked.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(self.data_dir.text()))
        )
        data_row.addWidget(self.data_dir, 1)
        data_row.addWidget(open_dir)
        form.addRow("Loopback port", self.port)
        form.addRow(
            "",
            label("Apps use http://127.0.0.1:<port>; a change applies at the next start.", "muted"),
        )
        form.addRow("Start at login", self.login)
        form.addRow("Prompt timeout", self.timeout)
        form.addRow("", label("An unanswered prompt denies once and remembers nothing.", "muted"))
        form.addRow("Budget notifications at (%)", self.thresholds)
        form.addRow("Provider failures", self.upstream)
        form.addRow("Data folder", data_row)
        form.addRow(
            "", label("Set AIWALLET_HOME or --data-dir to keep the wallet elsewhere.", "muted")
        )
        card.body.addLayout(form)
        buttons = QHBoxLayout()
        self.save = QPushButton("Save")
        self.save.setObjectName("primary")
        self.save.clicked.connect(self._save)
        buttons.addWidget(self.save)
        self.status = label("", "muted", wrap=True)
        buttons.addWidget(self.status, 1)
        card.body.addLayout(buttons)
        self.body.addWidget(card)
        self.body.addStretch(1)

    async def refresh(self) -> None:
        wallet = self.controller.wallet
        port, timeout, thresholds, upstream, login = await self.controller.run(
            lambda: (
                wallet.pref(PORT),
                wallet.pref(PROMPT_TIMEOUT_S),
                wallet.pref(NOTIFY_THRESHOLDS),
                wallet.pref(NOTIFY_UPSTREAM),
                autostart.is_enabled(),
            )
        )
        self.port.setValue(port)
        self.timeout.setValue(timeout)
        self.thresholds.setText(", ".join(str(t) for t in thresholds))
        self.upstream.setChecked(upstream)
        self.login.setChecked(login)

    def _save(self) -> None:
        try:
            thresholds = tuple(
                int(p) for p in self.thresholds.text().replace(";", ",").split(",") if p.strip()
            )
        except ValueError:
            self.status.setText("Thresholds are whole percentages such as 80, 100")
            return
        self.controller.spawn(
            self._store(
                self.port.value(),
                self.timeout.value(),
                thresholds,
                self.upstream.isChecked(),
                self.login.isChecked(),
            ),
            "Saving settings",
        )

    async def _store(
        self, port: int, timeout: int, thresholds: tuple[int, ...], upstream: bool, login: bool
    ) -> None:
        wallet = self.controller.wallet

        def write() -> None:
            wallet.set_pref(NOTIFY_THRESHOLDS, thresholds)
            wallet.set_pref(PORT, port)
            wallet.set_pref(PROMPT_TIMEOUT_S, timeout)
            wallet.set_pref(NOTIFY_UPSTREAM, upstream)
            if login and not autostart.is_enabled():
                autostart.enable(autostart.default_command())
            elif not login and autostart.is_enabled():
                autostart.disable()

        try:
            await self.controller.run(write)
        except InvalidInput as exc:
            self.status.setText(str(exc))
            return
        self.status.setText("Saved.")
        self.reload()
