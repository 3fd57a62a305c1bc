"""The desktop app's side of x402, against a real engine and a real chain (``chainkit``: a
LiteSVM behind a Solana JSON-RPC server, the x402 SDK's own facilitator, an x402 router):
the Wallet page with and without a key, import by secret and by keypair file, balances read
from the chain, an RPC that fails, mainnet's REAL MONEY, the cap; a paid request asked in the
payment prompt and paid, refused, remembered; its notification, its row on the Wallet page
(with the transaction's explorer link) and in Activity; a prepaid router topped up; the
Overview's line for the wallet."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel

from aiwallet.domain.chains import DEVNET, format_atomic
from aiwallet.domain.money import parse_budget_spec, usd_to_nano
from aiwallet.gui import texts
from aiwallet.gui.app import DesktopApp
from aiwallet.gui.request_model import EXPLORER_ROLE, Col
from aiwallet.gui.wallet_dialogs import TopUpDialog
from aiwallet.paths import DataDir
from aiwallet.preferences import X402_MAX_PAYMENT_USD
from aiwallet.service import Wallet
from aiwallet.upstreams.client import Timeouts
from chainkit import ChainKit
from gui.conftest import start_app, wait_for_gui_tasks

PRICE = 10_000  # atomic units of USDC per request: $0.01
FUNDS = 2_000_000  # the payer's USDC: $2

pytestmark = [
    pytest.mark.filterwarnings("ignore:Client is deprecated"),
    pytest.mark.filterwarnings("ignore:TxOpts is deprecated"),
]


@dataclass
class PayDesk:
    app: DesktopApp
    wallet: Wallet
    kit: ChainKit
    notices: list[tuple[str, str, str]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.app.controller.engine is not None
        return self.app.controller.engine.url

    @property
    def page(self) -> Any:
        return self.app.window.wallet

    def show(self, page: Any, qtbot) -> None:
        window = self.app.window
        before = page.loads
        window.show_page(window.pages.index(page))
        if not page._stale and page.loads == before:
            page.reload()
        qtbot.waitUntil(lambda: page.loads > before, timeout=15_000)

    def app_key(self, name: str = "agent") -> str:
        _, key = self.wallet.create_app(name, budget=parse_budget_spec("5/day"))
        return key

    def call_in_thread(
        self, key: str, model: str = "router/gpt-4o-mini", *, stream: bool = False
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}

        def go() -> None:
            client = openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0)
            try:
                answer = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "hi"}], stream=stream
                )
                out["response"] = list(answer) if stream else answer
            except Exception as exc:
                out["error"] = exc

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        self.threads.append(thread)
        return out


def _open_wallet(tmp_path, kit: ChainKit) -> Wallet:
    wallet = Wallet.open(DataDir(tmp_path / "wallet"))
    wallet.solana.set_network("devnet", kit.rpc.url)
    wallet.add_provider("router", kind="x402", api_key=None, base_url=kit.router.url + "/v1")
    return wallet


@pytest.fixture
def paydesk(qtbot, qloop, tmp_path):
    with ChainKit(price_atomic=PRICE) as kit:
        wallet = _open_wallet(tmp_path, kit)
        app = DesktopApp(wallet, use_tray=False)
        qtbot.addWidget(app.window)
        d = PayDesk(app, wallet, kit)
        app.notifier.shown.connect(lambda kind, title, text: d.notices.append((kind, title, text)))
        app.window.show()
        start_app(
            app, qtbot, port=0, consent_timeout_s=30, timeouts=Timeouts(connect_s=5, read_s=20)
        )
        yield d
        for thread in d.threads:
            thread.join(20)
        app.shutdown()
        wait_for_gui_tasks(qtbot, qloop)
        wallet.close()


def _funded(d: PayDesk, usdc: int = FUNDS) -> str:
    """A payer with ``usdc`` atomic units, imported into the wallet; its address."""
    payer = d.kit.new_payer(usdc_atomic=usdc)
    d.wallet.solana.import_key(str(payer))
    d.app.controller.solana_changed_here()
    return str(payer.pubkey())


def _reading(d: PayDesk, qtbot, what=lambda r: True) -> Any:
    """Wait for the page to show a reading of the chain that satisfies ``what``."""
    page = d.page
    qtbot.waitUntil(
        lambda: (
            d.app.controller.solana is not None
            and d.app.controller.solana.address == (page.facts.address if page.facts else None)
            and what(d.app.controller.solana)
            and page.readings > 0
        ),
        timeout=20_000,
    )
    return d.app.controller.solana


def _usdc_text(atomic: int) -> str:
    return format_atomic(atomic, 6)


# -- the page, with and without a key ------------------------------------------------------------
def test_without_a_key_the_page_offers_to_create_one(paydesk, qtbot):
    d = paydesk
    page = d.page
    d.show(page, qtbot)
    assert page.no_key.isVisible() and not page.has_key.isVisible()
    assert page.create_button.text() == "Create a wallet"
    assert page.import_button.text() == "Import a key…"
    qtbot.mouseClick(page.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: page.facts is not None and page.facts.address is not None, timeout=15_000
    )
    address = d.wallet.solana.status().address
    assert address is not None and page.facts.address == address
    assert page.has_key.isVisible() and not page.no_key.isVisible()
    assert page.address.text() == address
    assert page.address.textFormat() == Qt.TextFormat.PlainText
    assert page.address.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    assert page.qr.text == address and not page.qr.image.pixmap().isNull()
    # the network line is Network.describe(); devnet is no real money, so no red badge
    assert page.network_text.text() == d.wallet.solana.network().describe()
    assert "via 127.0.0.1:" in page.network_text.text() and "test money" in page.network_text.text()
    assert not page.badge.isVisible()
    # a new address holds nothing; the balances are the chain's
    reading = _reading(d, qtbot)
    assert reading.problem is None
    assert page.usdc_value.text() == "0" and page.sol_value.text() == "0"
    # the copy button copies and says so
    qtbot.mouseClick(page.copy, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == address
    assert page.copy.text() == "Copied"
    qtbot.waitUntil(lambda: page.copy.text() == "Copy address", timeout=5_000)
    # the explorer link is the devnet cluster's; it never hands the explorer the RPC's URL
    assert f'href="{DEVNET.address_url(address)}"' in page.explorer.text()
    assert "customUrl" not in page.explorer.text()


def test_a_key_is_imported_from_a_secret_or_a_keypair_file(paydesk, qtbot, tmp_path):
    d = paydesk
    page = d.page
    d.show(page, qtbot)
    page._import()
    dialog = page.import_dialog
    assert dialog is not None and dialog.secret.echoMode() == dialog.secret.EchoMode.Password
    dialog.secret.setText("not a key")
    dialog.submit()
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=10_000)
    assert "not a key" not in dialog.error.text()  # the words of a secret are never repeated
    assert d.wallet.solana.status().address is None
    # a Solana CLI keypair file: a JSON list of the 64 bytes
    payer = d.kit.new_payer(usdc_atomic=1_234_500)
    keyfile = tmp_path / "id.json"
    keyfile.write_text(json.dumps(list(bytes(payer))))
    assert dialog.load_file(keyfile)
    assert dialog.secret.text() == "" and dialog.file_name.text() == "id.json"
    dialog.submit()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    assert d.wallet.solana.status().address == str(payer.pubkey())
    assert dialog.key_text() == ""  # dropped from the dialog
    qtbot.waitUntil(lambda: page.facts.address == str(payer.pubkey()), timeout=10_000)
    _reading(d, qtbot, lambda r: r.usdc is not None and r.usdc.amount_atomic == 1_234_500)
    assert page.usdc_value.text() == "1.2345"
    assert page.sol_value.text() == format_atomic(d.kit.sol(payer), 9)


def test_an_rpc_that_does_not_answer_is_named_by_its_host(paydesk, qtbot):
    d = paydesk
    _funded(d)
    d.wallet.solana.set_network("devnet", "http://127.0.0.1:9/secret-key-in-path")
    d.app.controller.solana_changed_here()
    page = d.page
    d.show(page, qtbot)
    reading = _reading(d, qtbot, lambda r: r.network.rpc_url.endswith("secret-key-in-path"))
    assert reading.problem == "could not read: 127.0.0.1:9"
    qtbot.waitUntil(lambda: page.balance_problem.isVisible(), timeout=5_000)
    assert page.balance_problem.text() == "could not read: 127.0.0.1:9"
    assert page.usdc_value.text() == "–"
    shown = [lab.text() + lab.toolTip() for lab in page.findChildren(QLabel)]
    assert not [t for t in shown if "secret-key-in-path" in t]


def test_mainnet_is_confirmed_as_real_money_and_says_so(paydesk, qtbot, monkeypatch):
    d = paydesk
    _funded(d)
    page = d.page
    d.show(page, qtbot)
    asked: list[str] = []
    answer = [False]

    def fake_ask(_parent, _title, text):
        asked.append(text)
        return answer[0]

    monkeypatch.setattr("aiwallet.gui.pages.wallet.ask", fake_ask)
    page.network_choice.setCurrentIndex(page.network_choice.findData("mainnet"))
    page.custom_rpc.setChecked(False)
    page._choose_network()
    assert asked == [texts.WALLET_MAINNET_CONFIRM]
    assert d.wallet.solana.network().id == "devnet"  # said no: nothing changed
    assert page.network_choice.currentData() == "devnet"
    answer[0] = True
    page.network_choice.setCurrentIndex(page.network_choice.findData("mainnet"))
    page.custom_rpc.setChecked(True)
    page.rpc_url.setText(d.kit.rpc.url)
    page._choose_network()
    qtbot.waitUntil(lambda: page.facts.network.id == "mainnet", timeout=10_000)
    assert d.wallet.solana.network().real_money
    assert page.badge.isVisible() and page.badge.text() == "REAL MONEY"
    assert page.badge.objectName() == "realMoney"
    assert "REAL MONEY" in page.network_text.text()
    # the Overview says so too, beside the wallet's USDC
    overview = d.app.window.overview
    d.show(overview, qtbot)
    qtbot.waitUntil(lambda: overview.solana_box.isVisible(), timeout=10_000)
    assert overview.solana_badge.isVisible() and overview.solana_badge.text() == "REAL MONEY"
    assert overview.solana_network.text() == d.wallet.solana.network().describe()


def test_the_per_payment_cap_is_the_preference(paydesk, qtbot):
    d = paydesk
    page = d.page
    d.show(page, qtbot)
    assert page.cap.text() == "$1.00"
    page.cap.setText("$0.25")
    page.cap.setModified(True)
    page._save_cap()
    qtbot.waitUntil(lambda: d.wallet.pref(X402_MAX_PAYMENT_USD) == "0.250000000", timeout=10_000)
    qtbot.waitUntil(lambda: page.cap.text() == "$0.25" and not page.cap.isModified(), timeout=5_000)
    said = page.network_result.text()
    page.cap.setText("nothing")
    page.cap.setModified(True)
    page._save_cap()
    qtbot.waitUntil(lambda: page.network_result.text() != said, timeout=10_000)
    assert "amount of dollars" in page.network_result.text()
    assert d.wallet.pref(X402_MAX_PAYMENT_USD) == "0.250000000"


# -- a paid request --------------------------------------------------------------------------------
def _payment_prompt(d: PayDesk, qtbot) -> Any:
    qtbot.waitUntil(lambda: d.app.prompts.current is not None, timeout=30_000)
    prompt = d.app.prompts.current
    assert prompt.kind == "payment"
    return prompt


def test_a_paid_request_is_asked_paid_notified_and_shown(paydesk, qtbot):
    d = paydesk
    payer = _funded(d)
    key = d.app_key()
    out = d.call_in_thread(key)
    prompt = _payment_prompt(d, qtbot)
    qtbot.waitExposed(prompt)
    payee = str(d.kit.payee.pubkey())
    assert prompt.windowTitle() == "Pay an x402 router?"
    assert prompt.heading.full == "agent"
    assert prompt.payee.toPlainText() == payee
    assert prompt.cost.text() == "$0.01 (0.01 USDC) for this request"
    assert prompt.network.text() == d.wallet.solana.network().describe()
    assert not prompt.badge.isVisibleTo(prompt)
    qtbot.mouseClick(prompt.once_button, Qt.MouseButton.LeftButton)  # "Pay once"
    qtbot.waitUntil(lambda: "response" in out or "error" in out, timeout=30_000)
    assert "response" in out, out.get("error")
    # paid exactly the price, on chain
    assert d.kit.usdc(payer) == FUNDS - PRICE
    assert d.kit.usdc(payee) == PRICE
    (payment,) = d.wallet.payments.recent()
    assert payment.state == "settled" and payment.tx_signature
    # the notification
    qtbot.waitUntil(lambda: any(k == "payment_settled" for k, _, _ in d.notices), timeout=10_000)
    _, title, text = next(n for n in d.notices if n[0] == "payment_settled")
    assert title == "Paid $0.01 to router"
    assert "0.01 USDC" in text and payment.tx_signature[:6] in text
    # the Wallet page: the payment with its transaction's explorer link, the new balance
    page = d.page
    d.show(page, qtbot)
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=10_000)
    cells = [page.table.item(0, c).text() for c in range(5)]
    assert cells[1:] == ["request", "router", "0.01 USDC", "settled"]
    link = page.table.cellWidget(0, 5)
    url = DEVNET.tx_url(payment.tx_signature)  # the public cluster's page, no RPC URL in it
    assert link.textFormat() == Qt.TextFormat.RichText and link.openExternalLinks()
    assert f'href="{url}"' in link.text() and "cluster=devnet" in url
    assert f"{payment.tx_signature[:6]}…{payment.tx_signature[-6:]}" in link.text()
    _reading(d, qtbot, lambda r: r.usdc is not None and r.usdc.amount_atomic == FUNDS - PRICE)
    assert page.usdc_value.text() == _usdc_text(FUNDS - PRICE) == "1.99"
    # Activity: the row says it was paid by x402 and names the transaction
    activity = d.app.window.activity
    d.show(activity, qtbot)
    log = activity.log
    qtbot.waitUntil(lambda: log.rowCount() == 1, timeout=10_000)
    assert log.data(log.index(0, Col.STATUS)) == "paid (x402)"
    assert log.data(log.index(0, Col.REASON)) == (
        f"transaction {payment.tx_signature[:6]}…{payment.tx_signature[-6:]}"
    )
    assert log.data(log.index(0, Col.COST)) == "$0.01"
    assert log.data(log.index(0, Col.REASON), EXPLORER_ROLE) == url
    tip = log.data(log.index(0, Col.REASON), Qt.ItemDataRole.ToolTipRole)
    assert payment.tx_signature in tip.replace("\u200b", "")


def test_always_pay_is_remembered_for_the_payee_and_never_pay_too(paydesk, qtbot):
    d = paydesk
    _funded(d)
    key = d.app_key()
    out = d.call_in_thread(key)
    prompt = _payment_prompt(d, qtbot)
    qtbot.mouseClick(prompt.allow_button, Qt.MouseButton.LeftButton)  # "Always pay this payee"
    qtbot.waitUntil(lambda: "response" in out or "error" in out, timeout=30_000)
    assert "response" in out, out.get("error")
    payee = f"{d.wallet.solana.network().caip2}:{d.kit.payee.pubkey()}"
    rule = d.wallet.consent_rules.find("payee", payee)
    assert rule is not None and rule.decision == "allow"
    # the next payment to that payee is not asked
    out = d.call_in_thread(key)
    qtbot.waitUntil(lambda: "response" in out or "error" in out, timeout=30_000)
    assert "response" in out and d.app.prompts.current is None
    assert len(d.wallet.payments.recent()) == 2
    # "never": a new payee (the router pays elsewhere now) is refused for good
    d.wallet.consent_rules.revoke(rule.id)
    out = d.call_in_thread(key)
    prompt = _payment_prompt(d, qtbot)
    qtbot.mouseClick(prompt.never_button, Qt.MouseButton.LeftButton)  # "Never pay this payee"
    qtbot.waitUntil(lambda: "error" in out or "response" in out, timeout=30_000)
    assert isinstance(out.get("error"), openai.APIStatusError)
    assert out["error"].body["code"] == "payment_denied"
    rule = d.wallet.consent_rules.find("payee", payee)
    assert rule is not None and rule.decision == "deny"
    out = d.call_in_thread(key)
    qtbot.waitUntil(lambda: "error" in out or "response" in out, timeout=30_000)
    assert out["error"].body["code"] == "payment_denied" and d.app.prompts.current is None
    assert len(d.wallet.payments.recent()) == 2  # nothing more was signed


def test_dont_pay_refuses_once_and_a_failed_settlement_is_notified(paydesk, qtbot):
    d = paydesk
    payer = _funded(d)
    key = d.app_key()
    out = d.call_in_thread(key)
    prompt = _payment_prompt(d, qtbot)
    qtbot.mouseClick(prompt.deny_button, Qt.MouseButton.LeftButton)  # "Don't pay"
    qtbot.waitUntil(lambda: "error" in out or "response" in out, timeout=30_000)
    assert out["error"].body["code"] == "payment_denied"
    assert (
        d.wallet.consent_rules.find(
            "payee", f"{d.wallet.solana.network().caip2}:{d.kit.payee.pubkey()}"
        )
        is None
    )  # once: nothing remembered
    assert d.wallet.payments.recent() == []
    # the router's settlement fails: not billed, and said
    d.kit.router.settle_fails = True
    out = d.call_in_thread(key)
    prompt = _payment_prompt(d, qtbot)
    qtbot.mouseClick(prompt.once_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "error" in out or "response" in out, timeout=30_000)
    assert out["error"].body["code"] == "payment_failed"
    qtbot.waitUntil(lambda: any(k == "payment_failed" for k, _, _ in d.notices), timeout=10_000)
    _, title, text = next(n for n in d.notices if n[0] == "payment_failed")
    assert title == "A payment to router failed"
    assert text.startswith("$0.01 was not billed; ")
    assert d.kit.usdc(payer) == FUNDS
    page = d.page
    d.show(page, qtbot)
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=10_000)
    assert page.table.item(0, 4).text().startswith("held (not billed")
    # the chain says it can never land: released, and shown as failed
    d.kit.rpc.expire_blockhash()
    engine = d.app.controller.engine
    asyncio.run_coroutine_threadsafe(engine.reconciler.run_once(), engine.loop).result(30)
    qtbot.waitUntil(lambda: page.table.item(0, 4).text() == "failed (not billed)", timeout=10_000)
    assert page.table.cellWidget(0, 5).text() == "none"
    assert d.wallet.budgets.open_reservations() == []


def test_an_answer_that_failed_after_payment_is_flagged(paydesk, qtbot):
    """The router settled, then cut its stream: billed (it was paid) and flagged."""
    d = paydesk
    _funded(d)
    d.kit.router.cut_stream_after_payment = True
    key = d.app_key()
    out = d.call_in_thread(key, stream=True)
    prompt = _payment_prompt(d, qtbot)
    qtbot.mouseClick(prompt.once_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "error" in out or "response" in out, timeout=30_000)
    qtbot.waitUntil(
        lambda: [p.flagged for p in d.wallet.payments.recent()] == [True], timeout=10_000
    )
    page = d.page
    d.show(page, qtbot)
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=10_000)
    assert page.table.item(0, 4).text() == "settled · answer failed"
    activity = d.app.window.activity
    d.show(activity, qtbot)
    log = activity.log
    qtbot.waitUntil(lambda: log.rowCount() == 1, timeout=10_000)
    status = log.data(log.index(0, Col.STATUS))
    assert status == "cut off · upstream_unavailable · paid (x402)"
    assert "transaction " in log.data(log.index(0, Col.REASON))


def test_an_unconfirmed_payment_is_notified(paydesk, qtbot):
    d = paydesk
    c = d.app.controller
    c.on_event_payment_unconfirmed(
        {"id": "p1", "request_id": "r1", "app_id": None, "provider": "<b>router</b>",
         "payee": "x", "network": d.wallet.solana.network().caip2,
         "amount_nano": usd_to_nano("0.01"), "outcome": "unconfirmed", "tx_signature": None}
    )  # fmt: skip
    qtbot.waitUntil(lambda: bool(d.notices), timeout=5_000)
    kind, title, text = d.notices[-1]
    assert kind == "payment_unconfirmed"
    assert title == "A payment to ‹b›router‹/b› is not confirmed yet"  # no markup reaches it
    assert text.startswith("$0.01 is billed until the chain tells")
    assert c.solana_stale()


# -- a prepaid router ------------------------------------------------------------------------------
def test_a_prepaid_router_is_topped_up_and_shows_its_credit(paydesk, qtbot):
    d = paydesk
    payer = _funded(d)
    d.wallet.add_provider(
        "credit", kind="x402", api_key=None, base_url=d.kit.router.url + "/v1", prepaid=True
    )
    page = d.page
    d.show(page, qtbot)
    qtbot.waitUntil(lambda: "credit" in page.routers, timeout=10_000)
    row = page.routers["credit"]
    _reading(d, qtbot, lambda r: "credit" in r.credits)
    assert row.credit.text() == "no credit yet"
    assert row.topup.isEnabled()
    page.start_top_up("credit", usd_to_nano("0.05"))
    assert not row.topup.isEnabled() and row.result.text() == "Paying $0.05…"
    page.start_top_up("credit", usd_to_nano("0.05"))  # one at a time: this one is dropped
    qtbot.waitUntil(lambda: row.result.text().startswith("Paid"), timeout=30_000)
    assert row.result.text() == "Paid $0.05 (settled); its credit is now 0.05 USDC."
    assert row.credit.text() == "0.05 USDC credit"
    assert d.kit.usdc(payer) == FUNDS - 50_000
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=10_000)
    assert page.table.item(0, 1).text() == "top-up"
    assert page.table.item(0, 3).text() == "0.05 USDC"
    # the credit as the router tells it, and on the Overview beside the wallet's USDC
    _reading(d, qtbot, lambda r: r.credits["credit"].amount_atomic == 50_000)
    overview = d.app.window.overview
    d.show(overview, qtbot)
    qtbot.waitUntil(lambda: "0.05 USDC" in overview.balances_list.text(), timeout=10_000)
    qtbot.waitUntil(lambda: "1.95 USDC" in overview.solana_text.text(), timeout=10_000)


def test_a_top_up_on_mainnet_asks_first(qtbot):
    dialog = TopUpDialog("credit", "Solana mainnet (REAL MONEY)", True)
    qtbot.addWidget(dialog)
    assert dialog.badge.isVisibleTo(dialog) and dialog.badge.text() == "REAL MONEY"
    asked: list[str] = []
    dialog.confirm = lambda text: asked.append(text) or False
    dialog.amount.setText("2.50")
    dialog.submit()
    assert asked == [texts.WALLET_TOPUP_CONFIRM.format(amount="$2.50", router="credit")]
    assert dialog.amount_nano is None and dialog.result() == 0
    dialog.confirm = lambda text: True
    dialog.submit()
    assert dialog.amount_nano == usd_to_nano("2.50")
    devnet = TopUpDialog("credit", "Solana devnet (test money)", False)
    qtbot.addWidget(devnet)
    devnet.confirm = lambda text: pytest.fail("devnet is not asked again")
    devnet.amount.setText("0.0000001")
    devnet.submit()
    assert devnet.error.isVisibleTo(devnet) and devnet.amount_nano is None
    devnet.amount.setText("1")
    devnet.submit()
    assert devnet.amount_nano == usd_to_nano("1")


# -- the Overview --------------------------------------------------------------------------------
def test_the_overview_shows_the_wallets_usdc_only_with_a_key(paydesk, qtbot):
    d = paydesk
    overview = d.app.window.overview
    d.show(overview, qtbot)
    assert not overview.solana_box.isVisible()
    assert overview.solana_hint.isVisible()  # an x402 router is set up: a first step
    assert overview.solana_hint.text() == texts.OVERVIEW_NO_SOLANA
    _funded(d, 3_500_000)
    d.show(overview, qtbot)
    qtbot.waitUntil(lambda: overview.solana_box.isVisible(), timeout=10_000)
    assert not overview.solana_hint.isVisible()
    qtbot.waitUntil(lambda: "3.5 USDC" in overview.solana_text.text(), timeout=20_000)
    assert "SOL" in overview.solana_text.text()
    assert overview.solana_network.text() == d.wallet.solana.network().describe()
    assert not overview.solana_badge.isVisible()
    assert "paid per request from the Solana wallet" in overview.balances_list.text()


def test_the_provider_dialog_offers_prepaid_for_an_x402_router(qtbot):
    from aiwallet.gui.dialogs import ProviderDialog

    dialog = ProviderDialog(None)
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.prepaid.isVisible()  # openai: no such thing
    dialog.kind.setCurrentIndex(dialog.kind.findData("x402"))
    assert dialog.prepaid.isVisible() and not dialog.prepaid.isChecked()
    assert not dialog.prepaid_chosen()
    assert dialog.key.placeholderText() == "none needed (leave it empty)"
    dialog.prepaid.setChecked(True)
    assert dialog.prepaid_chosen()
    dialog.kind.setCurrentIndex(dialog.kind.findData("openai"))
    assert not dialog.prepaid.isVisible() and not dialog.prepaid_chosen()
    rotate = ProviderDialog("credit")
    qtbot.addWidget(rotate)
    assert rotate.prepaid.parent() is None and not rotate.prepaid_chosen()
