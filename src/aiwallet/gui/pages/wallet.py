"""Wallet: the Solana wallet that pays x402 routers.

With no key: create one, or import one (a base58 secret or a Solana CLI keypair file). With
a key: its address (monospace, selectable, copied by a button that says so) and a QR code of
it, the network (a red REAL MONEY badge on mainnet), SOL, USDC and added tokens (read on a
worker thread, at most a minute old, and again after each payment; "could not read: <host>"
when the RPC fails), and the recent payments with links to their transactions. Beside it:
the network (mainnet is confirmed as real money), the per-payment cap, and each prepaid
router's credit with a Top up button."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from aiwallet.domain.chains import format_sol
from aiwallet.domain.errors import WalletError
from aiwallet.domain.money import format_usd
from aiwallet.gui import texts
from aiwallet.gui.controller import SOLANA_TTL_S, Controller
from aiwallet.gui.pages.base import Page
from aiwallet.gui.qr import QrCode
from aiwallet.gui.solana_view import (
    RouterCredit,
    SolanaReading,
    WalletFacts,
    kind_text,
    network_line,
    public,
    read_facts,
    short,
    state_text,
    tx_link,
    usdc,
)
from aiwallet.gui.wallet_dialogs import ImportKeyDialog, TopUpDialog
from aiwallet.gui.widgets import (
    CallerLabel,
    Card,
    ask,
    copy_button,
    html_text,
    label,
    money_badge,
    rich_label,
    set_money_badge,
    shown,
    tooltip_text,
    when,
)
from aiwallet.preferences import X402_MAX_PAYMENT_USD

if TYPE_CHECKING:
    from aiwallet.service import ProviderInfo
    from aiwallet.store.payments import PaymentRecord

HEADERS = ("When", "For", "Provider", "Amount", "State", "Transaction")
TX_COLUMN = 5
NETWORKS = (("Devnet (test money)", "devnet"), ("Mainnet (REAL MONEY)", "mainnet"))
REREAD_MS = int(SOLANA_TTL_S * 1000)
SIDE_WIDTH = 400


class RouterRow(QWidget):
    """One prepaid router: its name, its credit, a Top up button and what the last top-up
    did."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.title = CallerLabel(name, max_width=220)
        bold = self.title.font()
        bold.setBold(True)
        self.title.setFont(bold)
        self.credit = label("…", "muted")
        self.topup = QPushButton("Top up…")
        row.addWidget(self.title)
        row.addWidget(self.credit, 1)
        row.addWidget(self.topup)
        self.result = label("", "muted", wrap=True)
        self.result.hide()

    def show_credit(self, credit: RouterCredit | None) -> None:
        if credit is None:
            self.credit.setText("…")
            return
        self.credit.setText(
            f"{credit.text} credit" if credit.amount_atomic is not None else credit.text
        )


class WalletPage(Page):
    title = "Wallet"

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        self.reread = QPushButton("Read balances again")
        self.reread.clicked.connect(self._read_again)
        self.header.addWidget(self.reread)
        self.facts: WalletFacts | None = None
        self.readings = 0  # readings shown (tests wait on it)
        self.routers: dict[str, RouterRow] = {}
        self.import_dialog: ImportKeyDialog | None = None
        self.topping: set[str] = set()  # routers with a top-up under way

        top = QHBoxLayout()
        top.setSpacing(12)
        self.key_card = Card("Your Solana wallet")
        self._build_no_key()
        self._build_key()
        top.addWidget(self.key_card, 1)
        side_box = QWidget()
        side_box.setFixedWidth(SIDE_WIDTH)  # the key card takes what is left, on any network
        side = QVBoxLayout(side_box)
        side.setContentsMargins(0, 0, 0, 0)
        side.setSpacing(12)
        side.addWidget(self._build_network_card())
        side.addWidget(self._build_routers_card(), 1)
        top.addWidget(side_box)
        self.body.addLayout(top)
        self.body.addWidget(self._build_transfers(), 1)

        self._timer = QTimer(self)
        self._timer.setInterval(REREAD_MS)
        self._timer.timeout.connect(self._on_timer)
        self._timer.start()
        controller.solana_changed.connect(self._solana_read)

    # -- building -------------------------------------------------------------------------
    def _build_no_key(self) -> None:
        self.no_key = QWidget()
        lay = QVBoxLayout(self.no_key)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(label(texts.WALLET_NO_KEY, wrap=True))
        row = QHBoxLayout()
        self.create_button = QPushButton("Create a wallet")
        self.create_button.setObjectName("primary")
        self.create_button.clicked.connect(self._create)
        self.import_button = QPushButton("Import a key…")
        self.import_button.clicked.connect(self._import)
        row.addWidget(self.create_button)
        row.addWidget(self.import_button)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addStretch(1)
        self.key_card.body.addWidget(self.no_key)

    def _build_key(self) -> None:
        self.has_key = QWidget()
        row = QHBoxLayout(self.has_key)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(16)
        self.qr = QrCode(168)
        row.addWidget(self.qr, 0, Qt.AlignmentFlag.AlignTop)
        info = QVBoxLayout()
        info.setSpacing(6)
        net_row = QHBoxLayout()
        self.network_text = label("")
        self.badge = money_badge(False)
        net_row.addWidget(self.network_text)
        net_row.addWidget(self.badge)
        net_row.addStretch(1)
        info.addLayout(net_row)
        self.address = label("", "mono")
        self.address.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        info.addWidget(self.address)
        buttons = QHBoxLayout()
        self.copy = QPushButton("Copy address")
        copy_button(self.copy, lambda: (self.facts.address or "") if self.facts else "")
        self.explorer = rich_label("")
        self.explorer.setOpenExternalLinks(True)
        self.explorer.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        buttons.addWidget(self.copy)
        buttons.addWidget(self.explorer)
        buttons.addStretch(1)
        info.addLayout(buttons)
        self.fund_hint = label("", "muted", wrap=True)
        info.addWidget(self.fund_hint)
        balances = QHBoxLayout()
        balances.setSpacing(24)
        usdc_box = QVBoxLayout()
        usdc_box.setSpacing(0)
        usdc_box.addWidget(label("USDC", "cardTitle"))
        self.usdc_value = label("–", "bigNumber")
        usdc_box.addWidget(self.usdc_value)
        sol_box = QVBoxLayout()
        sol_box.setSpacing(0)
        sol_box.addWidget(label("SOL", "cardTitle"))
        self.sol_value = label("–", "bigNumber")
        sol_box.addWidget(self.sol_value)
        balances.addLayout(usdc_box)
        balances.addLayout(sol_box)
        self.token_box = QVBoxLayout()
        self.token_box.setSpacing(2)
        balances.addLayout(self.token_box)
        balances.addStretch(1)
        info.addLayout(balances)
        self.balance_problem = label("", "warning", wrap=True)
        self.balance_problem.hide()
        info.addWidget(self.balance_problem)
        self.balance_note = label("", "muted")
        info.addWidget(self.balance_note)
        info.addStretch(1)
        row.addLayout(info, 1)
        self.key_card.body.addWidget(self.has_key)
        self.key_message = label("", "muted", wrap=True)
        self.key_message.hide()
        self.key_card.body.addWidget(self.key_message)
        self.has_key.hide()

    def _build_network_card(self) -> Card:
        card = Card("Network and limits")
        form = QFormLayout()
        form.setHorizontalSpacing(12)
        self.network_choice = QComboBox()
        for text, value in NETWORKS:
            self.network_choice.addItem(text, value)
        self._network_edited = False  # the user changed the chooser and did not apply it yet
        self.network_choice.activated.connect(self._edited)
        form.addRow(label("Network"), self.network_choice)
        self.custom_rpc = QCheckBox("My own RPC URL")
        self.rpc_url = QLineEdit()
        self.rpc_url.setPlaceholderText("https://…")
        self.custom_rpc.toggled.connect(self.rpc_url.setEnabled)
        self.custom_rpc.clicked.connect(self._edited)
        self.rpc_url.textEdited.connect(self._edited)
        self.rpc_url.setEnabled(False)
        rpc_row = QVBoxLayout()
        rpc_row.setSpacing(4)
        rpc_row.addWidget(self.custom_rpc)
        rpc_row.addWidget(self.rpc_url)
        form.addRow(label("RPC"), rpc_row)
        self.use_network = QPushButton("Use this network")
        self.use_network.clicked.connect(self._choose_network)
        form.addRow(label(""), self.use_network)
        cap_row = QHBoxLayout()
        self.cap = QLineEdit()
        self.cap.setMaximumWidth(120)
        self.save_cap = QPushButton("Save")
        self.save_cap.clicked.connect(self._save_cap)
        cap_row.addWidget(self.cap)
        cap_row.addWidget(self.save_cap)
        cap_row.addStretch(1)
        form.addRow(label("Largest payment"), cap_row)
        card.body.addLayout(form)
        cap_note = label(texts.WALLET_CAP_NOTE, "muted", wrap=True)
        card.body.addWidget(cap_note)
        self.network_result = label("", "muted", wrap=True)
        self.network_result.hide()
        card.body.addWidget(self.network_result)
        return card

    def _edited(self, *_: object) -> None:
        self._network_edited = True

    def _build_routers_card(self) -> Card:
        card = Card("Prepaid routers")
        self.router_list = QVBoxLayout()
        self.router_list.setSpacing(6)
        card.body.addLayout(self.router_list)
        self.no_routers = label(texts.WALLET_NO_ROUTERS, "muted", wrap=True)
        card.body.addWidget(self.no_routers)
        card.body.addStretch(1)
        return card

    def _build_transfers(self) -> Card:
        card = Card("Recent payments")
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 12)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        card.body.addWidget(self.table, 1)
        self.no_transfers = label(texts.WALLET_NO_TRANSFERS, "muted")
        card.body.addWidget(self.no_transfers)
        return card

    # -- data -------------------------------------------------------------------------------
    async def refresh(self) -> None:
        facts = await self.controller.run(read_facts, self.controller.wallet)
        self.show_facts(facts)
        reading = self.controller.solana
        if self.controller.solana_stale() or not _reading_for(reading, facts):
            self.controller.spawn(self.controller.load_solana(), "Reading the Solana wallet")
        elif reading is not None:
            self.show_reading(reading)

    def show_facts(self, facts: WalletFacts) -> None:
        self.facts = facts
        net = facts.network
        keyed = facts.address is not None
        self.no_key.setVisible(not keyed)
        self.has_key.setVisible(keyed)
        self.reread.setVisible(keyed or bool(facts.routers))
        self.network_text.setText(network_line(net))
        set_money_badge(self.badge, net.real_money)
        if facts.address is not None:
            self.address.setText(facts.address)
            if self.qr.text != facts.address:
                self.qr.set_text(facts.address)
            link = public(net).address_url(facts.address)
            self.explorer.setText(
                f'<a href="{html.escape(link, quote=True)}">Open in the explorer</a>'
            )
            self.explorer.setToolTip(tooltip_text(link))
            hint = texts.WALLET_FUND.format(network=f"Solana {net.label}")
            if not net.real_money:
                hint += " " + texts.WALLET_DEVNET_HINT
            self.fund_hint.setText(hint)
        # The network chooser shows what is in use, unless the user is changing it.
        if not self._network_edited:
            self.network_choice.setCurrentIndex(self.network_choice.findData(net.id))
            self.custom_rpc.setChecked(net.custom_rpc)
            self.rpc_url.clear()
            self.rpc_url.setPlaceholderText(
                f"{net.rpc_host} (kept)" if net.custom_rpc else "https://…"
            )
        if not self.cap.isModified():
            self.cap.setText(format_usd(facts.cap_nano, places=None))
        self.show_routers(facts.routers)
        self.show_payments(facts.payments)

    def show_routers(self, routers: list[ProviderInfo]) -> None:
        names = [p.name for p in routers]
        if names != list(self.routers):
            for row in self.routers.values():
                self.router_list.removeWidget(row)
                self.router_list.removeWidget(row.result)
                row.result.deleteLater()
                row.deleteLater()
            self.routers = {}
            for p in routers:
                row = RouterRow(p.name)
                row.topup.clicked.connect(lambda _=False, n=p.name: self._top_up(n))
                self.router_list.addWidget(row)
                self.router_list.addWidget(row.result)
                self.routers[p.name] = row
        self.no_routers.setVisible(not routers)
        keyed = self.facts is not None and self.facts.address is not None
        # A reading from before the last change (a top-up, a payment) is not shown again.
        reading = None if self.controller.solana_stale() else self.controller.solana
        for name, row in self.routers.items():
            row.topup.setEnabled(keyed and name not in self.topping)
            row.topup.setToolTip("" if keyed else tooltip_text("Create or import a wallet first"))
            if reading is not None:
                row.show_credit(reading.credits.get(name))

    def show_payments(self, payments: list[PaymentRecord]) -> None:
        self.table.setRowCount(len(payments))
        for r, p in enumerate(payments):
            cells = (
                when(p.created_at),
                kind_text(p),
                shown(p.provider, 60),
                usdc(p.amount_atomic),
                state_text(p),
            )
            tips = (
                p.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                f"request {p.request_id}" if p.kind == "request" else "prepaid credit",
                p.provider,
                f"{format_usd(p.amount_nano, places=None)} to {p.payee}",
                p.note or state_text(p),
            )
            for c, (text, tip) in enumerate(zip(cells, tips, strict=True)):
                item = QTableWidgetItem(text)
                item.setToolTip(tooltip_text(tip))
                if c == 3:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(r, c, item)
            self.table.setItem(r, TX_COLUMN, QTableWidgetItem(""))
            self.table.setCellWidget(r, TX_COLUMN, _tx_cell(p, tx_link(p)))
        self.no_transfers.setVisible(not payments)

    def _solana_read(self) -> None:
        reading = self.controller.solana
        if reading is not None and self.facts is not None and _reading_for(reading, self.facts):
            self.show_reading(reading)

    def show_reading(self, reading: SolanaReading) -> None:
        self.readings += 1
        problem = reading.problem
        self.balance_problem.setText(problem or "")
        self.balance_problem.setVisible(bool(problem))
        self.balance_problem.setToolTip(tooltip_text(reading.detail) if reading.detail else "")
        token = reading.usdc
        if problem or reading.sol_lamports is None:
            self.usdc_value.setText("–")
            self.sol_value.setText("–")
        else:
            self.usdc_value.setText(token.amount if token is not None else "0")
            self.sol_value.setText(format_sol(reading.sol_lamports).removesuffix(" SOL"))
        while self.token_box.count():
            item = self.token_box.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        others = [t for t in reading.tokens if t.mint != reading.network.usdc_mint]
        if others and not problem:
            self.token_box.addWidget(label("Other tokens", "cardTitle"))
            for t in others:
                line = label(f"{shown(t.name, 20)}  {t.amount}", "mono")
                line.setToolTip(tooltip_text(f"mint {t.mint}"))
                self.token_box.addWidget(line)
        host = reading.network.rpc_host
        self.balance_note.setText(
            "" if problem else f"read from {host} at {when(datetime.now(UTC))}"
        )
        for name, row in self.routers.items():
            row.show_credit(reading.credits.get(name))

    def _on_timer(self) -> None:
        if self.isVisible() and self.facts is not None:
            self.controller.spawn(self.controller.load_solana(), "Reading the Solana wallet")

    def _read_again(self) -> None:
        self.controller.solana_changed_here()
        self.controller.spawn(self.controller.load_solana(), "Reading the Solana wallet")

    # -- actions ----------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        self.key_message.setText(text)
        self.key_message.setVisible(bool(text))

    def _create(self) -> None:
        self.create_button.setEnabled(False)
        self.controller.spawn(self._created(), "Creating the Solana wallet")

    async def _created(self) -> None:
        try:
            address = await self.controller.run(self.controller.wallet.solana.create)
        finally:
            self.create_button.setEnabled(True)
        self._say(f"Created a new wallet: {address}. Its secret key is in the secret store.")
        self._key_changed()

    def _import(self) -> None:
        if self.import_dialog is not None:  # the one before, done with
            self.import_dialog.deleteLater()
        dialog = ImportKeyDialog(self)
        dialog.submitted.connect(
            lambda text: self.controller.spawn(self._imported(dialog, text), "Importing the key")
        )
        self.import_dialog = dialog
        dialog.open()

    async def _imported(self, dialog: ImportKeyDialog, text: str) -> None:
        solana = self.controller.wallet.solana
        try:
            address = await self.controller.run(solana.import_key, text)
        except WalletError as exc:
            dialog.finished_with(shown(exc, 300))
            return
        except Exception as exc:
            dialog.finished_with(f"The key could not be imported ({type(exc).__name__}).")
            raise
        dialog.finished_with(None)
        self._say(f"Imported the wallet {address}.")
        self._key_changed()

    def _key_changed(self) -> None:
        self.controller.solana_changed_here()
        self.controller.mark_dirty()
        self.reload()

    def _choose_network(self) -> None:
        if self.facts is None:
            return
        chosen = str(self.network_choice.currentData())
        rpc: str | None = None
        if self.custom_rpc.isChecked():
            rpc = self.rpc_url.text().strip() or None
            if rpc is None and self.facts.network.custom_rpc and chosen == self.facts.network.id:
                rpc = self.facts.network.rpc_url  # kept as it was
            if rpc is None:
                self._network_said('Type the RPC URL, or untick "My own RPC URL".')
                return
        if (
            chosen == "mainnet"
            and not self.facts.network.real_money
            and not ask(self, "Solana mainnet", texts.WALLET_MAINNET_CONFIRM)
        ):
            self.network_choice.setCurrentIndex(self.network_choice.findData("devnet"))
            self._network_edited = False
            return
        self.controller.spawn(self._network_set(chosen, rpc), "Choosing the network")

    async def _network_set(self, chosen: str, rpc: str | None) -> None:
        solana = self.controller.wallet.solana
        try:
            net = await self.controller.run(solana.set_network, chosen, rpc)
        except WalletError as exc:
            self._network_said(shown(exc, 300))
            return
        self.rpc_url.clear()
        self._network_edited = False
        self._network_said(f"Now on {network_line(net)}.")
        self.controller.solana_changed_here()
        self.reload()

    def _network_said(self, text: str) -> None:
        self.network_result.setText(text)
        self.network_result.setVisible(bool(text))

    def _save_cap(self) -> None:
        text = self.cap.text().strip()
        self.controller.spawn(self._cap_saved(text), "Saving the payment cap")

    async def _cap_saved(self, text: str) -> None:
        wallet = self.controller.wallet
        try:
            await self.controller.run(wallet.set_pref, X402_MAX_PAYMENT_USD, text)
        except WalletError as exc:
            self._network_said(shown(exc, 300))
            return
        self.cap.setModified(False)
        self._network_said("Saved the largest single payment.")
        self.reload()

    def _top_up(self, name: str) -> None:
        if self.facts is None or self.facts.address is None:
            return
        net = self.facts.network
        dialog = TopUpDialog(name, network_line(net), net.real_money, self)
        if dialog.exec() and dialog.amount_nano is not None:
            self.start_top_up(name, dialog.amount_nano)

    def start_top_up(self, name: str, amount_nano: int) -> None:
        if name in self.topping:
            return
        self.topping.add(name)
        row = self.routers.get(name)
        if row is not None:
            row.topup.setEnabled(False)
            row.result.setText(f"Paying {format_usd(amount_nano, places=None)}…")
            row.result.show()
        self.controller.spawn(self._topped_up(name, amount_nano), "Topping up")

    async def _topped_up(self, name: str, amount_nano: int) -> None:
        solana = self.controller.wallet.solana
        row = self.routers.get(name)
        try:
            result = await self.controller.run(solana.topup, name, amount_nano)
        except WalletError as exc:
            if row is not None:
                row.result.setText(shown(exc, 300))
            return
        finally:
            self.topping.discard(name)
            if row is not None:
                row.topup.setEnabled(True)
            self.controller.solana_changed_here()
            self.controller.mark_dirty()
        p = result.payment
        said = f"Paid {format_usd(p.amount_nano, places=None)} ({state_text(p)})"
        if result.balance_atomic is not None:
            said += f"; its credit is now {usdc(result.balance_atomic)}"
        if row is not None:
            row.result.setText(said + ".")
            if result.balance_atomic is not None:
                row.show_credit(RouterCredit(name, result.balance_atomic))
        self.reload()


def _reading_for(reading: SolanaReading | None, facts: WalletFacts) -> bool:
    """Whether ``reading`` is of this address on this network (not one from before a switch)."""
    return (
        reading is not None
        and reading.address == facts.address
        and reading.network == facts.network
    )


def _tx_cell(p: PaymentRecord, url: str | None) -> QLabel:
    """A payment's transaction: its short signature, linked to the explorer."""
    if not p.tx_signature:
        cell = label(
            "not yet known" if p.state in ("signed", "held", "unconfirmed") else "none", "muted"
        )
        return cell
    text = html_text(short(p.tx_signature), 40)
    if url is None:
        cell = rich_label(text)
    else:
        cell = rich_label(f'<a href="{html.escape(url, quote=True)}">{text}</a>')
        cell.setOpenExternalLinks(True)
        cell.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
    cell.setObjectName("mono")
    cell.setContentsMargins(6, 0, 6, 0)
    cell.setToolTip(tooltip_text(p.tx_signature))
    return cell
