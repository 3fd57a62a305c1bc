"""Providers and keys: add (the key typed into a password field, never shown again), test,
rotate, remove; which secret store holds the keys, with a warning for the sealed file."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from aiwallet.gui import texts
from aiwallet.gui.controller import Controller
from aiwallet.gui.dialogs import ProviderDialog
from aiwallet.gui.pages.base import Page
from aiwallet.gui.widgets import Card, ask, html_text, label, rich_label, shown, tooltip_text
from aiwallet.service import ProviderInfo, Wallet

if TYPE_CHECKING:
    from aiwallet.upstreams.probe import ProbeResult

HEADERS = ("Name", "Kind", "Base URL", "Key", "Last test")


class ProvidersPage(Page):
    title = "Providers and keys"

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        add = QPushButton("Add provider…")
        add.setObjectName("primary")
        add.clicked.connect(self._add)
        self.header.addWidget(add)
        self.store = Card("Secret store")
        self.store_text = rich_label("", wrap=True)
        self.store_warning = label(texts.FALLBACK_VAULT_WARNING, "warning", wrap=True)
        self.store_warning.hide()
        self.store.body.addWidget(self.store_text)
        self.store.body.addWidget(self.store_warning)
        self.body.addWidget(self.store)

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
        card.body.addWidget(self.table)
        actions = QHBoxLayout()
        self.test = QPushButton("Test")
        self.rotate = QPushButton("Rotate key…")
        self.remove = QPushButton("Remove…")
        for button, slot in (
            (self.test, self._test),
            (self.rotate, self._rotate),
            (self.remove, self._remove),
        ):
            button.clicked.connect(slot)
            actions.addWidget(button)
        actions.addStretch(1)
        self.result = label("", "muted", wrap=True)
        card.body.addLayout(actions)
        card.body.addWidget(self.result)
        self.body.addWidget(card, 1)
        self.providers: list[ProviderInfo] = []
        self._selection_changed()

    async def refresh(self) -> None:
        wallet = self.controller.wallet
        providers, status = await self.controller.run(
            lambda: (wallet.list_providers(), wallet.vault_status())
        )
        self.store_text.setText(f"Keys are kept in: <b>{html_text(status.description)}</b>")
        self.store_warning.setVisible(status.is_fallback)
        self.show_providers(providers)

    def show_providers(self, providers: list[ProviderInfo]) -> None:
        selected = self.selected()
        self.providers = providers
        self.table.setRowCount(len(providers))
        for row, p in enumerate(providers):
            test = {True: "passed", False: "FAILED", None: "not tested"}[p.last_test_ok]
            kind = f"{p.kind} (prepaid)" if p.prepaid else p.kind
            for col, text in enumerate((p.name, kind, p.base_url, p.key_hint or "no key", test)):
                item = QTableWidgetItem(shown(text))
                item.setToolTip(tooltip_text(text))
                self.table.setItem(row, col, item)
            if selected is not None and p.name == selected.name:
                self.table.selectRow(row)
        if not providers:
            self.result.setText("No providers yet: add your OpenAI or Anthropic key to start.")
        self._selection_changed()

    def selected(self) -> ProviderInfo | None:
        rows = self.table.selectionModel().selectedRows()
        return self.providers[rows[0].row()] if rows else None

    def _selection_changed(self) -> None:
        on = self.selected() is not None
        for button in (self.test, self.rotate, self.remove):
            button.setEnabled(on)

    # -- actions ------------------------------------------------------------------------------
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

    def _rotate(self) -> None:
        p = self.selected()
        if p is None:
            return
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


def _run_probe(wallet: Wallet, name: str) -> ProbeResult:
    return asyncio.run(wallet.test_provider(name))
