"""The per-app keys panel of an OpenRouter provider: turn them on (its management key typed
into a password field, kept in the secret store), off (the keys deleted at OpenRouter), and
each app's key: its cap, its state, OpenRouter's figure for the window beside the wallet's
(a difference over a cent highlighted), and any problem, as plain text.

Every ``provider_keys`` call is blocking (the vault, OpenRouter's API): run on a worker."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from aiwallet.domain.subkeys import SUBKEY_KINDS
from aiwallet.gui import texts
from aiwallet.gui.controller import Controller
from aiwallet.gui.provider_view import cap_text, figures_differ, money
from aiwallet.gui.theme import WARN
from aiwallet.gui.widgets import Card, ask, label, shown, tooltip_text, when
from aiwallet.provider_keys import SubKeyView
from aiwallet.service import ProviderInfo

HEADERS = ("App", "Key", "Cap", "State", "OpenRouter says", "Wallet says", "Synced", "Problem")
SAYS_PROVIDER, SAYS_WALLET = 4, 5


class ManagementKeyDialog(QDialog):
    """Asks for an OpenRouter management key (a password field, cleared by the caller)."""

    def __init__(self, provider: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Per-app keys for {shown(provider, 60)}")
        self.setMinimumWidth(480)
        box = QVBoxLayout(self)
        box.addWidget(label(texts.SUBKEYS_EXPLAIN, wrap=True))
        box.addWidget(label(texts.SUBKEYS_HOW, "muted", wrap=True))
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("paste the management key (sk-or-v1-…)")
        box.addWidget(self.key)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok = buttons.addButton("Turn on", QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok.setObjectName("primary")
        self.ok.setEnabled(False)
        self.key.textChanged.connect(lambda t: self.ok.setEnabled(bool(t.strip())))
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        box.addWidget(buttons)


class SubKeysPanel(Card):
    """Follows one provider (``show_for``); ``changed`` asks the page to read again."""

    changed = Signal()

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__("Per-app keys", parent)
        self.controller = controller
        self.provider: ProviderInfo | None = None
        self.views: list[SubKeyView] = []
        self.state = label(texts.SUBKEYS_NOT_HERE, "muted", wrap=True)
        self.turn_on = QPushButton("Turn on per-app keys…")
        self.turn_on.clicked.connect(self._ask_on)
        self.turn_off = QPushButton("Turn off…")
        self.turn_off.clicked.connect(self._ask_off)
        row = QHBoxLayout()
        row.addWidget(self.state, 1)
        row.addWidget(self.turn_on)
        row.addWidget(self.turn_off)
        self.body.addLayout(row)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.body.addWidget(self.table, 1)
        self.result = label("", "muted", wrap=True)
        self.body.addWidget(self.result)
        self.show_for(None, [])

    # -- showing ------------------------------------------------------------------------------
    def show_for(self, provider: ProviderInfo | None, views: list[SubKeyView]) -> None:
        self.provider = provider
        self.views = views
        capable = provider is not None and provider.kind in SUBKEY_KINDS
        on = capable and provider is not None and provider.subkeys
        self.title.setText(f"Per-app keys · {shown(provider.name, 60)}" if capable and provider
                           else "Per-app keys")  # fmt: skip
        if not capable:
            self.state.setText(texts.SUBKEYS_NOT_HERE)
        elif on and not views:
            self.state.setText(f"{texts.SUBKEYS_ON} {texts.SUBKEYS_NONE_YET}")
        else:
            self.state.setText(texts.SUBKEYS_ON if on else texts.SUBKEYS_OFF)
        self.turn_on.setVisible(capable and not on)
        self.turn_off.setVisible(bool(on))
        self.table.setVisible(bool(on))
        self.table.setRowCount(len(views) if on else 0)
        for row, v in enumerate(views if on else []):
            self._fill(row, v)

    def _fill(self, row: int, v: SubKeyView) -> None:
        state = "disabled" if v.disabled else "active"
        says = money(v.provider_used_nano) if v.provider_used_nano is not None else "not read yet"
        cells = (
            v.app,
            v.key_hint or "–",
            cap_text(v.limit_nano, v.limit_reset),
            state,
            says,
            money(v.wallet_used_nano),
            when(v.synced_at),
            v.problem or "",
        )
        differ = figures_differ(v.provider_used_nano, v.wallet_used_nano)
        for col, text in enumerate(cells):
            item = QTableWidgetItem(shown(text, 300))
            item.setToolTip(tooltip_text(text))
            if col in (SAYS_PROVIDER, SAYS_WALLET):
                item.setToolTip(tooltip_text(f"this window began {when(v.window_start)}"))
                if differ:
                    item.setBackground(QColor(WARN))
                    item.setForeground(QColor("#ffffff"))
                    item.setToolTip(
                        tooltip_text(
                            texts.SUBKEYS_DIFFER.format(
                                provider=says, start=when(v.window_start), wallet=cells[5]
                            )
                        )
                    )
            if col == 7 and v.problem:
                item.setForeground(QColor(WARN))
            self.table.setItem(row, col, item)

    # -- actions ------------------------------------------------------------------------------
    def _ask_on(self) -> None:
        p = self.provider
        if p is None:
            return
        dialog = ManagementKeyDialog(p.name, self)
        if dialog.exec():
            key = dialog.key.text()
            dialog.key.clear()
            self.controller.spawn(self.enable(p.name, key), "Turning on per-app keys")

    async def enable(self, name: str, management_key: str) -> None:
        await self.controller.run(self.controller.wallet.provider_keys.enable, name, management_key)
        self.result.setText(
            f"Per-app keys are on for {shown(name)}; the engine makes a key for each app."
        )
        self.changed.emit()

    def _ask_off(self) -> None:
        p = self.provider
        if p is None:
            return
        if ask(
            self,
            "Turn off per-app keys",
            texts.SUBKEYS_OFF_CONFIRM.format(provider=shown(p.name), n=len(self.views)),
        ):
            self.controller.spawn(self.disable(p.name), "Turning off per-app keys")

    async def disable(self, name: str) -> None:
        self.result.setText("Deleting the per-app keys at OpenRouter…")
        try:
            n = await self.controller.run(self.controller.wallet.provider_keys.disable, name)
        except Exception:
            self.result.setText("")
            raise
        self.result.setText(
            f"Per-app keys are off for {shown(name)}: {n} deleted at OpenRouter; every app uses "
            f"the key of {shown(name)} again."
        )
        self.changed.emit()
