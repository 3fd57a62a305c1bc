"""Providers and keys: connect OpenRouter by signing in, add a key (typed into a password
field, never shown again), test, rotate, remove; each provider's key age (a warning and the
rotate action past the reminder), its published balance, its per-app keys (the panel below);
which secret store holds the keys, with a warning for the sealed file.

Balances come from the engine's ``balance.changed`` event (its timer) and from the Refresh
button (a worker); every read and action runs off the GUI thread."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from aiwallet.domain.money import usd_to_nano
from aiwallet.domain.providers import KINDS
from aiwallet.domain.subkeys import SUBKEY_KINDS
from aiwallet.gui import texts
from aiwallet.gui.controller import Controller
from aiwallet.gui.dialogs import ProviderDialog
from aiwallet.gui.pages.base import Page
from aiwallet.gui.provider_view import (
    balance_low,
    balance_text,
    days,
    health_text,
    key_age_text,
)
from aiwallet.gui.signin import Opener, SignInDialog, SignInFlow, open_in_desktop_browser
from aiwallet.gui.subkeys_panel import SubKeysPanel
from aiwallet.gui.theme import WARN
from aiwallet.gui.widgets import Card, ask, html_text, label, rich_label, shown, tooltip_text
from aiwallet.preferences import KEY_ROTATION_DAYS, LOW_BALANCE_USD
from aiwallet.provider_keys import SubKeyView
from aiwallet.service import ProviderInfo, Wallet

if TYPE_CHECKING:
    from aiwallet.upstreams.probe import ProbeResult

HEADERS = ("Name", "Kind", "Key", "Key age", "Balance", "Per-app keys", "Last test", "Health")
AGE_COL, BALANCE_COL, HEALTH_COL = 3, 4, 7
OPENROUTER = "openrouter"


class ProvidersPage(Page):
    title = "Providers and keys"

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        # How "Connect OpenRouter" signs in (tests and screenshots point it at a fake) and
        # how it opens the browser.
        self.signin_options: dict[str, Any] = {}
        self.open_browser: Opener = open_in_desktop_browser
        self.signin: SignInDialog | None = None
        self.connect_button = QPushButton("Connect OpenRouter")
        self.connect_button.clicked.connect(self._connect)
        self.add = QPushButton("Add provider…")
        self.add.clicked.connect(self._add)
        self.header.addWidget(self.connect_button)
        self.header.addWidget(self.add)

        self.store = Card("Secret store")
        self.store_text = rich_label("", wrap=True)
        self.store_warning = label(texts.FALLBACK_VAULT_WARNING, "warning", wrap=True)
        self.store_warning.hide()
        self.store.body.addWidget(self.store_text)
        self.store.body.addWidget(self.store_warning)
        self.body.addWidget(self.store)

        self.rotate_row = QHBoxLayout()
        self.rotate_warning = label("", "warning", wrap=True)
        self.rotate_due = QPushButton("Rotate key…")
        self.rotate_due.clicked.connect(self._rotate_due)
        self.rotate_row.addWidget(self.rotate_warning, 1)
        self.rotate_row.addWidget(self.rotate_due)
        self.body.addLayout(self.rotate_row)

        card = Card("Providers")
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        card.body.addWidget(self.table, 1)
        actions = QHBoxLayout()
        self.test = QPushButton("Test")
        self.rotate = QPushButton("Rotate key…")
        self.remove = QPushButton("Remove…")
        self.refresh_balances = QPushButton("Refresh balances")
        for button, slot in (
            (self.test, self._test),
            (self.rotate, self._rotate),
            (self.remove, self._remove),
        ):
            button.clicked.connect(slot)
            actions.addWidget(button)
        actions.addStretch(1)
        self.balances_note = label("", "muted")
        actions.addWidget(self.balances_note)
        self.refresh_balances.clicked.connect(self._refresh_balances)
        actions.addWidget(self.refresh_balances)
        self.result = label("", "muted", wrap=True)
        card.body.addLayout(actions)
        card.body.addWidget(self.result)
        self.body.addWidget(card, 3)

        self.subkeys = SubKeysPanel(controller)
        self.subkeys.changed.connect(self.reload)
        self.body.addWidget(self.subkeys, 2)

        self.providers: list[ProviderInfo] = []
        self.rotation_days = KEY_ROTATION_DAYS.default
        self.low_nano: int | None = None
        self._due: ProviderInfo | None = None
        self._showing = False
        self._show_rotation()
        controller.balances_changed.connect(self._show_balances)
        self._selection_changed()

    # -- reading ------------------------------------------------------------------------------
    async def refresh(self) -> None:
        wallet = self.controller.wallet
        providers, status, rotation, low, _ = await self.controller.run(
            lambda: (
                wallet.list_providers(),
                wallet.vault_status(),
                wallet.pref(KEY_ROTATION_DAYS),
                wallet.pref(LOW_BALANCE_USD),
                self.controller.load_health(),
            )
        )
        self.rotation_days = rotation
        self.low_nano = usd_to_nano(low) if low else None
        self.store_text.setText(f"Keys are kept in: <b>{html_text(status.description)}</b>")
        self.store_warning.setVisible(status.is_fallback)
        self.show_providers(providers)
        panel = self.panel_provider()
        views: list[SubKeyView] = []
        if panel is not None and panel.subkeys:
            views = await self.controller.run(wallet.provider_keys.report, panel.name)
        self.subkeys.show_for(panel, views)
        if self.controller.balances_stale(providers):
            self.controller.spawn(self.controller.load_balances(), "Reading balances")

    def show_providers(self, providers: list[ProviderInfo]) -> None:
        self._showing = True
        try:
            self._show_providers(providers)
        finally:
            self._showing = False
        self._selection_changed()

    def _show_providers(self, providers: list[ProviderInfo]) -> None:
        selected = self.selected()
        self.providers = providers
        self.table.setRowCount(len(providers))
        for row, p in enumerate(providers):
            test = {True: "passed", False: "FAILED", None: "not tested"}[p.last_test_ok]
            kind_info = KINDS.get(p.kind)
            kind = kind_info.label if kind_info is not None else p.kind
            kind = f"{kind} (prepaid)" if p.prepaid else kind
            subkeys = ("on" if p.subkeys else "off") if p.kind in SUBKEY_KINDS else "–"
            cells = (p.name, kind, p.key_hint or "no key", "", "", subkeys, test)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(shown(text))
                item.setToolTip(tooltip_text(p.base_url if col == 1 else text))
                self.table.setItem(row, col, item)
            self._fill_age(row, p)
            self._fill_health(row, p)
            if selected is not None and p.name == selected.name:
                self.table.selectRow(row)
        self._show_balances()
        self._show_rotation()
        has_openrouter = any(p.kind == OPENROUTER for p in providers)
        _primary(self.connect_button, not has_openrouter)
        _primary(self.add, has_openrouter)
        if not providers:
            self.result.setText(
                "No providers yet: connect OpenRouter, or add your OpenAI or Anthropic key."
            )

    def _fill_health(self, row: int, p: ProviderInfo) -> None:
        text, warn = health_text(self.controller.health.get(p.name))
        item = QTableWidgetItem(text)
        if warn:
            item.setForeground(QColor(WARN))
            item.setToolTip(tooltip_text("paused after repeated failures; it is tried again then"))
        self.table.setItem(row, HEALTH_COL, item)

    def _fill_age(self, row: int, p: ProviderInfo) -> None:
        text = key_age_text(p.key_age_days, self.rotation_days)
        item = QTableWidgetItem(text)
        if p.rotation_due(self.rotation_days):
            item.setForeground(QColor(WARN))
            item.setToolTip(
                tooltip_text(f"stored {p.key_set_at:%d %b %Y}; rotate it" if p.key_set_at else "")
            )
        elif p.key_set_at is not None:
            item.setToolTip(tooltip_text(f"stored {p.key_set_at:%d %b %Y}"))
        self.table.setItem(row, AGE_COL, item)

    def _show_balances(self) -> None:
        balances = self.controller.balances
        for row, p in enumerate(self.providers):
            b = balances.get(p.name)
            text = balance_text(b)
            item = QTableWidgetItem(shown(text, 300))
            item.setToolTip(tooltip_text(text))
            if balance_low(b, self.low_nano) or (b is not None and b.problem):
                item.setForeground(QColor(WARN))
            self.table.setItem(row, BALANCE_COL, item)
        self.balances_note.setText("")

    def _show_rotation(self) -> None:
        due = [p for p in self.providers if p.rotation_due(self.rotation_days)]
        self._due = due[0] if due else None
        if self._due is not None and self._due.key_age_days is not None:
            names = ", ".join(shown(p.name, 60) for p in due)
            self.rotate_warning.setText(
                texts.ROTATE_DUE.format(provider=names, age=days(self._due.key_age_days))
                if len(due) == 1
                else f"Keys due for rotation: {names}."
            )
            self.rotate_due.setText(f"Rotate the key of {shown(self._due.name, 40)}…")
        self.rotate_warning.setVisible(self._due is not None)
        self.rotate_due.setVisible(self._due is not None)

    def selected(self) -> ProviderInfo | None:
        rows = self.table.selectionModel().selectedRows()
        return self.providers[rows[0].row()] if rows else None

    def panel_provider(self) -> ProviderInfo | None:
        """The provider the per-app keys panel shows: the selected one, else the first
        whose kind makes per-app keys."""
        chosen = self.selected()
        if chosen is not None:
            return chosen
        return next((p for p in self.providers if p.kind in SUBKEY_KINDS), None)

    def _selection_changed(self) -> None:
        on = self.selected() is not None
        for button in (self.test, self.rotate, self.remove):
            button.setEnabled(on)
        if self._showing:
            return
        panel, shown_now = self.panel_provider(), self.subkeys.provider
        if (panel and panel.name) != (shown_now and shown_now.name):
            self.reload()  # the panel follows the selection (its report read on a worker)

    # -- actions ------------------------------------------------------------------------------
    def _refresh_balances(self) -> None:
        self.balances_note.setText("reading…")
        self.controller.spawn(self._balances_read(), "Reading balances")

    async def _balances_read(self) -> None:
        try:
            await self.controller.load_balances()
        finally:
            self.balances_note.setText("")

    def _connect(self) -> None:
        existing = next((p for p in self.providers if p.name == OPENROUTER), None)
        if existing is not None and not ask(
            self,
            texts.SIGNIN_TITLE,
            f"Sign in to OpenRouter again and replace the key of {shown(existing.name)} "
            "with the new one?",
        ):
            return
        self.start_signin(replace=existing is not None)

    def start_signin(self, *, name: str = OPENROUTER, replace: bool = False) -> SignInDialog:
        """Open the sign-in dialog and start the flow (the dialog is window-modal and does not
        block: the page hears the outcome through the flow's signals)."""
        flow = SignInFlow(
            self.controller, name=name, replace=replace, options=self.signin_options, parent=self
        )
        dialog = SignInDialog(flow, self.open_browser, self)
        flow.finished.connect(self._signed_in)
        flow.failed.connect(lambda text: self.result.setText(shown(text, 400)))
        flow.cancelled.connect(lambda: self.result.setText(texts.SIGNIN_CANCELLED))
        dialog.rejected.connect(lambda: self.result.setText(texts.SIGNIN_CANCELLED))
        self.signin = dialog
        dialog.open()
        flow.start()
        return dialog

    def _signed_in(self, info: ProviderInfo) -> None:
        self.result.setText(texts.SIGNIN_DONE.format(provider=shown(info.name)))
        self.reload()

    def _add(self) -> None:
        dialog = ProviderDialog(None, self)
        if dialog.exec():
            wallet = self.controller.wallet
            self.controller.spawn(
                self._saved(
                    wallet.add_provider,
                    dialog.name.text().strip(),
                    kind=dialog.kind.currentData(),
                    api_key=dialog.key.text() or None,
                    base_url=dialog.base_url.text().strip() or None,
                    prepaid=dialog.prepaid_chosen(),
                ),
                "Adding the provider",
            )
            dialog.key.clear()

    def _rotate_due(self) -> None:
        if self._due is not None:
            self.rotate_provider(self._due)

    def _rotate(self) -> None:
        p = self.selected()
        if p is not None:
            self.rotate_provider(p)

    def rotate_provider(self, p: ProviderInfo) -> None:
        dialog = ProviderDialog(p.name, self)
        if dialog.exec():
            wallet = self.controller.wallet
            self.controller.spawn(
                self._saved(
                    wallet.add_provider,
                    p.name,
                    kind=p.kind,
                    api_key=dialog.key.text() or None,
                    base_url=p.base_url,
                    replace=True,
                ),
                "Rotating the key",
            )
            dialog.key.clear()

    async def _saved(self, fn: Any, *args: Any, **kw: Any) -> None:
        info = await self.controller.run(fn, *args, **kw)
        self.result.setText(f"Saved {shown(info.name)}; its key is in the secret store.")
        self.reload()

    def _remove(self) -> None:
        p = self.selected()
        if p is None:
            return
        if ask(
            self,
            "Remove provider",
            f"Remove {shown(p.name)} and delete its key from the secret store?",
        ):
            self.controller.spawn(self._removed(p.name), "Removing the provider")

    async def _removed(self, name: str) -> None:
        await self.controller.run(self.controller.wallet.remove_provider, name)
        self.result.setText(f"Removed {shown(name)}.")
        self.reload()

    def _test(self) -> None:
        p = self.selected()
        if p is None:
            return
        self.result.setText(f"Testing {shown(p.name)}…")
        self.controller.spawn(self._tested(p.name), "Testing the provider")

    async def _tested(self, name: str) -> None:
        wallet = self.controller.wallet
        # The probe is a coroutine of its own: run it on a worker thread's loop.
        result = await self.controller.run(_run_probe, wallet, name)
        verdict = "works" if result.ok else "FAILED"
        self.result.setText(
            f"{shown(name)} {verdict} ({result.latency_ms} ms): {shown(result.message, 400)}"
        )
        self.reload()


def _primary(button: QPushButton, primary: bool) -> None:
    name = "primary" if primary else ""
    if button.objectName() != name:
        button.setObjectName(name)
        button.style().unpolish(button)
        button.style().polish(button)


def _run_probe(wallet: Wallet, name: str) -> ProbeResult:
    return asyncio.run(wallet.test_provider(name))
