"""Settings: port, start at login, prompt timeout, notification thresholds, the providers'
low-balance threshold, balance refresh and key rotation reminder, data dir."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

from aiwallet import __version__, autostart
from aiwallet.domain.errors import InvalidInput
from aiwallet.gui.controller import Controller
from aiwallet.gui.pages.base import Page
from aiwallet.gui.provider_view import usd_field
from aiwallet.gui.widgets import Card, html_text, label, rich_label, shown
from aiwallet.preferences import (
    BALANCE_REFRESH_MIN,
    KEY_ROTATION_DAYS,
    LOW_BALANCE_USD,
    NOTIFY_THRESHOLDS,
    NOTIFY_UPSTREAM,
    PORT,
    PROMPT_TIMEOUT_S,
    Pref,
)


class SettingsPage(Page):
    title = "Settings"

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        self._shown: dict[str, Any] | None = None  # the values last shown (edits: the rest)
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
        self.low_balance = QLineEdit()
        self.low_balance.setPlaceholderText("never")
        self.low_balance.setToolTip("Dollars, such as 5.00; leave it empty to never be told")
        self.balance_refresh = QSpinBox()
        self.balance_refresh.setRange(1, 1440)
        self.balance_refresh.setSuffix(" min")
        self.rotation = QSpinBox()
        self.rotation.setRange(0, 3650)
        self.rotation.setSuffix(" days")
        self.rotation.setSpecialValueText("never")  # 0: no reminder
        for field in (
            self.port,
            self.timeout,
            self.thresholds,
            self.low_balance,
            self.balance_refresh,
            self.rotation,
        ):
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
        form.addRow(label("Loopback port"), self.port)
        form.addRow(
            label(""),
            label("Apps use http://127.0.0.1:<port>; a change applies at the next start.", "muted"),
        )
        form.addRow(label("Start at login"), self.login)
        form.addRow(label("Prompt timeout"), self.timeout)
        form.addRow(
            label(""), label("An unanswered prompt denies once and remembers nothing.", "muted")
        )
        form.addRow(label("Budget notifications at (%)"), self.thresholds)
        form.addRow(label("Provider failures"), self.upstream)
        form.addRow(label("Low provider balance below ($)"), self.low_balance)
        form.addRow(label("Read provider balances every"), self.balance_refresh)
        form.addRow(label("Remind to rotate keys after"), self.rotation)
        form.addRow(
            label(""),
            label("A reminder at most once a day per key; 0 days turns it off.", "muted"),
        )
        form.addRow(label("Data folder"), data_row)
        form.addRow(
            label(""),
            label("Set AIWALLET_HOME or --data-dir to keep the wallet elsewhere.", "muted"),
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

        about = Card("About this wallet")
        self.about = rich_label("", wrap=True)  # every value escaped
        about.body.addWidget(self.about)
        audit_row = QHBoxLayout()
        self.verify = QPushButton("Verify the audit log")
        self.verify.clicked.connect(self._verify)
        self.audit_result = label("", "muted", wrap=True)
        audit_row.addWidget(self.verify)
        audit_row.addWidget(self.audit_result, 1)
        about.body.addLayout(audit_row)
        self.body.addWidget(about)
        self.body.addStretch(1)

    async def refresh(self) -> None:
        wallet = self.controller.wallet
        (
            port,
            timeout,
            thresholds,
            upstream,
            login,
            status,
            low,
            refresh,
            rotation,
        ) = await self.controller.run(
            lambda: (
                wallet.pref(PORT),
                wallet.pref(PROMPT_TIMEOUT_S),
                wallet.pref(NOTIFY_THRESHOLDS),
                wallet.pref(NOTIFY_UPSTREAM),
                autostart.is_enabled(),
                wallet.status(),
                wallet.pref(LOW_BALANCE_USD),
                wallet.pref(BALANCE_REFRESH_MIN),
                wallet.pref(KEY_ROTATION_DAYS),
            )
        )
        self._show({
            "low_balance": usd_field(low), "balance_refresh": refresh, "rotation": rotation,
            "port": port, "timeout": timeout,
            "thresholds": ", ".join(str(t) for t in thresholds),
            "upstream": upstream, "login": login,
        })  # fmt: skip
        catalog = status["catalog"]
        rows = [
            ("Version", f"aiwallet {__version__}"),
            ("Database", status["database"]),
            ("Secret store", status["vault"]["description"]),
            ("Prices", f"{catalog['models']:,} models from {catalog['source']}"),
            ("Time zone", f"{status['timezone']} (budget days, weeks and months)"),
            ("Public key", f"{wallet.settings.get('wallet_public_key') or 'not made yet'}"
                           " (signs consent receipts)"),
        ]  # fmt: skip
        self.about.setText(
            "<table cellspacing=3>"
            + "".join(
                f"<tr><td><b>{html_text(k)}</b>&nbsp;&nbsp;</td><td>{html_text(v, 300)}</td></tr>"
                for k, v in rows
            )
            + "</table>"
        )

    # -- the fields: what was read, and what the user changed since ------------------------------
    def _field_values(self) -> dict[str, Any]:
        return {
            "low_balance": self.low_balance.text(),
            "balance_refresh": self.balance_refresh.value(),
            "rotation": self.rotation.value(),
            "port": self.port.value(),
            "timeout": self.timeout.value(),
            "thresholds": self.thresholds.text(),
            "upstream": self.upstream.isChecked(),
            "login": self.login.isChecked(),
        }

    def _show(self, stored: dict[str, Any]) -> None:
        """Show the stored values, except in a field the user changed since it was last
        shown (a reload, after a save or an engine event, never overwrites an edit)."""
        now = self._field_values()
        shown_before = self._shown or now
        setters: dict[str, Callable[[Any], None]] = {
            "low_balance": self.low_balance.setText,
            "balance_refresh": self.balance_refresh.setValue,
            "rotation": self.rotation.setValue,
            "port": self.port.setValue,
            "timeout": self.timeout.setValue,
            "thresholds": self.thresholds.setText,
            "upstream": self.upstream.setChecked,
            "login": self.login.setChecked,
        }
        for name, value in stored.items():
            if now[name] == shown_before[name]:  # untouched: show what is stored
                setters[name](value)
        # what is shown of the store from now on: an edited field stays edited (it differs
        # from the stored value) until it is saved or set back
        self._shown = {**self._field_values(), **stored}

    def _verify(self) -> None:
        self.audit_result.setText("Checking…")
        self.controller.spawn(self._verified(), "Verifying the audit log")

    async def _verified(self) -> None:
        result = await self.controller.run(self.controller.wallet.verify_audit)
        if result.ok:
            self.audit_result.setText(f"Intact: {result.checked:,} entries, each chained.")
        else:
            self.audit_result.setText(
                f"BROKEN at entry {result.first_bad_seq}: {shown(result.problem, 300)}. "
                "Something edited "
                "the database outside aiwallet."
            )

    def _save(self) -> None:
        try:
            thresholds = tuple(
                int(p) for p in self.thresholds.text().replace(";", ",").split(",") if p.strip()
            )
        except ValueError:
            self.status.setText("Thresholds are whole percentages such as 80, 100")
            return
        providers: dict[Pref[Any], Any] = {
            LOW_BALANCE_USD: self.low_balance.text().strip().removeprefix("$").strip(),
            BALANCE_REFRESH_MIN: self.balance_refresh.value(),
            KEY_ROTATION_DAYS: self.rotation.value(),
        }
        self.controller.spawn(
            self._store(
                self.port.value(),
                self.timeout.value(),
                thresholds,
                self.upstream.isChecked(),
                self.login.isChecked(),
                providers,
                as_shown=self._field_values(),  # what this save writes, as the fields show
            ),
            "Saving settings",
        )

    async def _store(
        self,
        port: int,
        timeout: int,
        thresholds: tuple[int, ...],
        upstream: bool,
        login: bool,
        providers: dict[Pref[Any], Any] | None = None,
        as_shown: dict[str, Any] | None = None,
    ) -> None:
        wallet = self.controller.wallet

        def write() -> None:
            # One transaction, one audit entry per changed preference, one engine reload.
            wallet.set_prefs(
                {
                    NOTIFY_THRESHOLDS: thresholds,
                    PORT: port,
                    PROMPT_TIMEOUT_S: timeout,
                    NOTIFY_UPSTREAM: upstream,
                    **(providers or {}),
                }
            )
            if login and not autostart.is_enabled():
                autostart.enable(autostart.default_command())
            elif not login and autostart.is_enabled():
                autostart.disable()

        try:
            await self.controller.run(write)
        except InvalidInput as exc:
            self.status.setText(shown(exc, 300))
            return
        self.status.setText("Saved.")
        # the saved values are the ones shown now: the read-back shows them as stored
        # ("$2.50" as 2.50), and leaves alone a field edited since
        if as_shown is not None:
            self._shown = as_shown
        self.reload()
