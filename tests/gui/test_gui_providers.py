"""The Providers page on a real engine in front of a fake OpenRouter (tests/orkit): balances
(from the engine's timer event and the Refresh button), the key age warning and its rotate
action, per-app keys turned on (rows appear once the engine made the keys) and off (deleted
at OpenRouter), the provider notifications, the request log's flag for a bill off the
catalog, and the three provider preferences on the Settings page."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openai
import pytest
from sqlalchemy import update

from aiwallet.domain.money import parse_budget_spec
from aiwallet.domain.reports import RequestRow
from aiwallet.gui.app import DesktopApp
from aiwallet.gui.pages.providers import AGE_COL, BALANCE_COL, HEALTH_COL
from aiwallet.gui.provider_view import balance_text, cap_text, key_age_text, usd_field
from aiwallet.gui.request_model import Col, RequestLogModel
from aiwallet.gui.subkeys_panel import SAYS_PROVIDER, SAYS_WALLET, ManagementKeyDialog
from aiwallet.paths import DataDir
from aiwallet.preferences import BALANCE_REFRESH_MIN, KEY_ROTATION_DAYS, LOW_BALANCE_USD
from aiwallet.provider_keys import SubKeyView
from aiwallet.service import Wallet
from aiwallet.store import schema as t
from aiwallet.upstreams.breaker import Outcome, Ticket
from aiwallet.upstreams.client import Timeouts
from fakeupstream import OPENAI_KEY
from gui.conftest import start_app, wait_for_gui_tasks
from leakscan import register_key
from orkit.server import INFERENCE_KEY, MANAGEMENT_KEY, FakeOpenRouter

PROVIDERS_PAGE = 3


@pytest.fixture
def orfake():
    f = FakeOpenRouter()
    f.start_in_thread()
    yield f
    for key in f.keys.values():
        register_key(key.key)
    f.stop()


class Rig:
    def __init__(self, app: DesktopApp, wallet: Wallet, orfake: FakeOpenRouter) -> None:
        self.app, self.wallet, self.orfake = app, wallet, orfake

    @property
    def page(self):
        return self.app.window.providers

    @property
    def engine(self):
        engine = self.app.controller.engine
        assert engine is not None
        return engine

    def on_engine(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.engine.loop).result(15)

    def cell(self, provider: str, col: int) -> str:
        page = self.page
        for row, p in enumerate(page.providers):
            if p.name == provider:
                item = page.table.item(row, col)
                return item.text() if item is not None else ""
        return ""

    def shown_notices(self) -> list[tuple[str, str, str]]:
        return list(self.notices)


@pytest.fixture
def rig(qtbot, qloop, tmp_path, fake, orfake):
    fake.reset()
    wallet = Wallet.open(DataDir(tmp_path / "wallet"))
    wallet.add_provider("openai", kind="openai", api_key=OPENAI_KEY, base_url=fake.base_url + "/v1")
    wallet.add_provider(
        "openrouter", kind="openrouter", api_key=INFERENCE_KEY, base_url=orfake.base_url
    )
    orfake.keys[INFERENCE_KEY].limit = Decimal("20")
    orfake.keys[INFERENCE_KEY].usage = Decimal("7.25")
    with wallet.db.begin() as conn:  # openai's key was stored 41 days ago
        conn.execute(
            update(t.providers)
            .where(t.providers.c.name == "openai")
            .values(key_set_at=datetime.now(UTC) - timedelta(days=41))
        )
    app = DesktopApp(wallet, use_tray=False)
    qtbot.addWidget(app.window)
    r = Rig(app, wallet, orfake)
    r.notices = []
    app.notifier.shown.connect(lambda *n: r.notices.append(n))
    start_app(app, qtbot, port=0, consent_timeout_s=30, timeouts=Timeouts(connect_s=2, read_s=5))
    app.window.show()
    app.window.show_page(PROVIDERS_PAGE)
    yield r
    app.shutdown()
    wait_for_gui_tasks(qtbot, qloop)
    wallet.close()


def test_balances_key_age_and_the_rotation_warning(rig, qtbot):
    page = rig.page
    qtbot.waitUntil(lambda: "$12.75 left" in rig.cell("openrouter", BALANCE_COL), timeout=10_000)
    assert "key limit $12.75 of $20.00" in rig.cell("openrouter", BALANCE_COL)
    assert rig.cell("openai", BALANCE_COL) == "not published"
    assert rig.cell("openai", AGE_COL) == "rotate: 41 days old"
    assert rig.cell("openrouter", AGE_COL) == "today"
    assert page.rotate_warning.isVisible() and "41 days" in page.rotate_warning.text()
    assert page.rotate_due.isVisible() and "openai" in page.rotate_due.text()
    # the Connect button is secondary once OpenRouter is there; Add is the primary one
    assert page.connect_button.objectName() == "" and page.add.objectName() == "primary"

    # the engine's own read (its timer) reaches the page through balance.changed
    rig.orfake.keys[INFERENCE_KEY].usage = Decimal("10")
    rig.on_engine(rig.engine.watch.read_balances())
    qtbot.waitUntil(lambda: "$10.00 left" in rig.cell("openrouter", BALANCE_COL), timeout=10_000)

    # the Refresh button reads them on a worker
    rig.orfake.keys[INFERENCE_KEY].usage = Decimal("11")
    page.refresh_balances.click()
    qtbot.waitUntil(lambda: "$9.00 left" in rig.cell("openrouter", BALANCE_COL), timeout=10_000)

    # a higher reminder threshold takes the warning away
    rig.wallet.set_pref(KEY_ROTATION_DAYS, 60)
    before = page.loads
    page.reload()
    qtbot.waitUntil(lambda: page.loads > before, timeout=10_000)
    assert rig.cell("openai", AGE_COL) == "41 days"
    assert not page.rotate_warning.isVisible()


def test_the_rotate_action_stores_a_new_key_and_its_age_starts_again(rig, qtbot, monkeypatch):
    from aiwallet.gui.dialogs import ProviderDialog

    def typed(self):
        self.key.setText("sk-new-" + "9" * 40)
        return 1

    monkeypatch.setattr(ProviderDialog, "exec", typed)
    page = rig.page
    qtbot.waitUntil(lambda: page.rotate_due.isVisible(), timeout=10_000)
    page.rotate_due.click()
    qtbot.waitUntil(lambda: rig.cell("openai", AGE_COL) == "today", timeout=10_000)
    assert not page.rotate_warning.isVisible()
    assert rig.wallet.vault.get("provider:openai").reveal() == "sk-new-" + "9" * 40


def key_of(orfake: FakeOpenRouter, app: str):
    return next((k for k in orfake.sub_keys() if k.name == f"aiwallet: {app}"), None)


def test_per_app_keys_on_then_off(rig, qtbot, monkeypatch):
    panel = rig.page.subkeys
    _, alpha_key = rig.wallet.create_app("alpha", budget=parse_budget_spec("2/day"))
    qtbot.waitUntil(lambda: panel.provider is not None, timeout=10_000)
    assert panel.provider.name == "openrouter"
    assert panel.turn_on.isVisible() and not panel.turn_off.isVisible()
    assert not panel.table.isVisible()

    def typed(self):
        assert self.key.echoMode() == self.key.EchoMode.Password
        self.key.setText(MANAGEMENT_KEY)
        return 1

    monkeypatch.setattr(ManagementKeyDialog, "exec", typed)
    panel.turn_on.click()
    # the engine makes alpha's key at OpenRouter (subkey.created), then the row appears
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=15_000)
    assert key_of(rig.orfake, "alpha") is not None
    row = [panel.table.item(0, c).text() for c in range(panel.table.columnCount())]
    assert row[0] == "alpha" and row[2] == "$2.00 daily" and row[3] == "active"
    assert panel.turn_off.isVisible() and not panel.turn_on.isVisible()
    assert rig.cell("openrouter", 5) == "on"
    assert MANAGEMENT_KEY not in " ".join(row)

    # OpenRouter refuses alpha's key at its cap: "OpenRouter stopped alpha at its cap"
    sub = key_of(rig.orfake, "alpha")
    sub.usage = sub.limit - Decimal("0.000001")
    client = openai.OpenAI(base_url=rig.engine.url + "/v1", api_key=alpha_key, max_retries=0)
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(
            model="openrouter/openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=20,
        )
    qtbot.waitUntil(
        lambda: any(n[0].startswith("provider_limit") for n in rig.notices), timeout=10_000
    )
    (notice,) = [n for n in rig.notices if n[0].startswith("provider_limit")]
    assert notice[2] == "OpenRouter stopped alpha at its cap (the per-app key's own limit)"

    monkeypatch.setattr("aiwallet.gui.subkeys_panel.ask", lambda *a: True)
    panel.turn_off.click()
    qtbot.waitUntil(lambda: panel.turn_on.isVisible(), timeout=15_000)
    assert rig.orfake.sub_keys() == []  # deleted at OpenRouter
    assert not panel.table.isVisible()
    assert "1 deleted at OpenRouter" in panel.result.text()
    qtbot.waitUntil(lambda: rig.cell("openrouter", 5) == "off", timeout=10_000)


def test_provider_notifications(rig, qtbot):
    clock = [1000.0]
    rig.app.notifier.clock = lambda: clock[0]
    rig.wallet.set_pref(LOW_BALANCE_USD, "100")
    rig.on_engine(rig.engine.watch.read_balances())
    qtbot.waitUntil(lambda: any(n[0] == "balance_low:openrouter" for n in rig.notices))
    low = next(n for n in rig.notices if n[0] == "balance_low:openrouter")
    assert low[1] == "Low balance: openrouter" and "$12.75 left" in low[2] and "$100.00" in low[2]

    rig.on_engine(rig.engine.watch.check_key_age())
    qtbot.waitUntil(lambda: any(n[0] == "key_old:openai" for n in rig.notices))
    old = next(n for n in rig.notices if n[0] == "key_old:openai")
    assert "41 days old" in old[2] and "30 days" in old[2]
    told = rig.wallet.settings.get("gui.key_old_told")
    assert list(told) == ["openai"]
    # at most once a day, even once the notifier's own minute has passed
    clock[0] += 3600
    rig.app.controller._key_old_told.clear()  # a restarted app: only the setting remembers
    before = len(rig.notices)
    rig.on_engine(rig.engine.watch.check_key_age())
    rig.engine.events.emit("subkey.problem", {"provider": "openrouter", "app_id": None,
                                              "problem": "OpenRouter answered 500"})  # fmt: skip
    qtbot.waitUntil(lambda: any(n[0].startswith("subkey_problem") for n in rig.notices))
    assert [n[0] for n in rig.notices[before:]] == ["subkey_problem:openrouter"]
    assert rig.notices[-1][2] == "OpenRouter answered 500"


def view(provider_nano: int | None, wallet_nano: int, **kw) -> SubKeyView:
    now = datetime.now(UTC)
    base = dict(
        provider="openrouter", app="beta", key_hint="sk-or-v1…abc", limit_nano=5 * 10**9,
        limit_reset="weekly", disabled=False, provider_used_nano=provider_nano,
        wallet_used_nano=wallet_nano, remaining_nano=None, window_start=now, synced_at=now,
        problem=None,
    )  # fmt: skip
    base.update(kw)
    return SubKeyView(**base)


def test_the_two_figures_are_highlighted_past_a_cent(rig, qtbot):
    panel = rig.page.subkeys
    qtbot.waitUntil(lambda: panel.provider is not None, timeout=10_000)
    on = panel.provider.__class__(**{**panel.provider.to_json(), "key_set_at": None,
                                     "subkeys": True})  # fmt: skip
    close, far = view(1_005_000_000, 1_000_000_000), view(1_020_000_000, 1_000_000_000)
    hostile = view(None, 0, app="evil\u202eapp\n<b>x</b>", problem="OpenRouter said\n<i>no</i>")
    panel.show_for(on, [close, far, hostile])
    assert panel.table.rowCount() == 3
    plain = panel.table.item(0, SAYS_PROVIDER).background().style()
    assert plain == panel.table.item(0, SAYS_WALLET).background().style()
    assert panel.table.item(1, SAYS_PROVIDER).background().color().name() == "#b7791f"
    assert panel.table.item(1, SAYS_WALLET).background().color().name() == "#b7791f"
    assert panel.table.item(0, SAYS_PROVIDER).background().color().name() != "#b7791f"
    assert "differ by more than a cent" in panel.table.item(1, SAYS_PROVIDER).toolTip()
    assert panel.table.item(1, 2).text() == "$5.00 weekly"
    assert panel.table.item(2, SAYS_PROVIDER).text() == "not read yet"
    name = panel.table.item(2, 0).text()
    assert "\u202e" not in name and "\n" not in name and "<b>x</b>" in name  # plain text
    assert "\n" not in panel.table.item(2, 7).text()


def test_view_texts():
    from aiwallet.domain.providers import Balance

    assert key_age_text(None, 30) == "no key"
    assert key_age_text(1, 30) == "1 day"
    assert key_age_text(30, 30) == "rotate: 30 days old"
    assert key_age_text(400, 0) == "400 days"  # reminders off
    assert balance_text(None) == "not published"
    unlimited = Balance("x", None, None, 1_500_000_000)
    assert balance_text(unlimited) == "no limit on this key; used $1.50"
    assert balance_text(Balance("x", None, None, None, problem="401")) == "unknown: 401"
    both = Balance("x", 12_750_000_000, 20 * 10**9, 0, credits_nano=17_750_000_000)
    assert balance_text(both) == "$12.75 left · credits $17.75 · key limit $12.75 of $20.00"
    assert cap_text(None, None) == "no cap"
    assert cap_text(7_500_000_000, "monthly") == "$7.50 monthly"
    assert cap_text(5 * 10**9, None) == "$5.00 in total"
    assert usd_field("5.000000000") == "5.00" and usd_field("0.125000000") == "0.125"
    assert usd_field("") == ""


def test_a_bill_off_the_catalog_is_flagged_in_the_log():
    async def nothing(*_a):
        raise AssertionError

    model = RequestLogModel(nothing)
    now = datetime.now(UTC)
    row = RequestRow(
        "r1", now, "alpha", "/v1/chat/completions", "openrouter/x", "openrouter", 10, 10,
        1_300_000, "provider_cost", 20, 200, None, False, catalog_cost_nano=1_000_000,
        cost_differs=True,
    )  # fmt: skip
    same = RequestRow(
        "r2", now, "alpha", "/v1/chat/completions", "openrouter/x", "openrouter", 10, 10,
        1_000_000, "provider_cost", 20, 200, None, False, catalog_cost_nano=1_000_000,
    )  # fmt: skip
    model.rows = [row, same]
    from PySide6.QtCore import Qt

    flagged = model.index(0, Col.COST)
    assert model.data(flagged).endswith("⚑")
    tip = model.data(flagged, Qt.ItemDataRole.ToolTipRole)
    assert "billed $0.0013 by the provider; the catalog says $0.001" in tip
    assert not model.data(model.index(1, Col.COST)).endswith("⚑")
    assert "billed" not in model.data(model.index(1, Col.COST), Qt.ItemDataRole.ToolTipRole)


def test_settings_page_keeps_the_provider_preferences(rig, qtbot):
    settings = rig.app.window.settings
    rig.app.window.show_page(5)
    qtbot.waitUntil(lambda: settings.loads > 0, timeout=10_000)

    def save_and_settle() -> None:
        """Save, and wait until the page has read the saved values back (a save reloads
        the page; an edit made before that would be overwritten)."""
        before = settings.loads
        settings.status.setText("")
        settings.save.click()
        qtbot.waitUntil(
            lambda: settings.status.text() == "Saved." and settings.loads > before,
            timeout=10_000,
        )

    assert settings.low_balance.text() == "5.00"
    assert settings.balance_refresh.value() == 15 and settings.rotation.value() == 30
    settings.low_balance.setText("$2.50")
    settings.balance_refresh.setValue(30)
    settings.rotation.setValue(0)
    save_and_settle()
    assert rig.wallet.pref(LOW_BALANCE_USD) == "2.500000000"
    assert rig.wallet.pref(BALANCE_REFRESH_MIN) == 30
    assert rig.wallet.pref(KEY_ROTATION_DAYS) == 0
    assert settings.rotation.text() == "never"
    settings.low_balance.setText("")  # off
    save_and_settle()
    assert rig.wallet.pref(LOW_BALANCE_USD) == "" and settings.low_balance.text() == ""
    settings.low_balance.setText("lots")
    settings.save.click()
    qtbot.waitUntil(lambda: settings.status.text() not in ("", "Saved."), timeout=10_000)
    assert "'lots' is not an amount of dollars" in settings.status.text()
    assert rig.wallet.pref(LOW_BALANCE_USD) == ""  # nothing written


def test_an_open_breaker_shows_on_the_page_and_is_told(rig, qtbot):
    """Repeated failures open a provider's circuit breaker: the Providers page says it is
    paused until when, and a notification says so; a good probe shows it ok again."""
    health = rig.engine.state.health

    async def fail(times: int) -> str:
        breaker = health.breaker("openrouter")
        for _ in range(times):
            ticket = breaker.admit()
            assert isinstance(ticket, Ticket)
            breaker.record(ticket, Outcome.FAILURE)
        return breaker.state.value

    assert rig.on_engine(fail(health.policy.failures_to_open)) == "open"
    qtbot.waitUntil(lambda: rig.cell("openrouter", HEALTH_COL).startswith("paused until"))
    assert rig.cell("openai", HEALTH_COL) == "ok"
    qtbot.waitUntil(lambda: any(n[0] == "breaker:openrouter" for n in rig.notices))
    (notice,) = [n for n in rig.notices if n[0] == "breaker:openrouter"]
    assert "failed 5 times in a row" in notice[2] and "sends it nothing until" in notice[2]
    # a fresh read from the engine (the page's refresh) agrees
    found = {h["provider"]: h for h in rig.engine.provider_health()}
    assert found["openrouter"]["health"] == "open"


def test_an_edit_made_while_a_save_is_read_back_is_kept(rig, qtbot):
    """A save reads the stored values back into the page; a field the user changed in the
    meantime keeps the user's value (it is theirs to save next), the others show the stored
    form ("$2.50" as 2.50)."""
    settings = rig.app.window.settings
    rig.app.window.show_page(5)
    qtbot.waitUntil(lambda: settings.loads > 0, timeout=10_000)
    before = settings.loads
    settings.low_balance.setText("$2.50")
    settings.save.click()
    settings.rotation.setValue(45)  # typed before the save's read-back came
    qtbot.waitUntil(lambda: settings.loads > before, timeout=10_000)
    assert settings.status.text() == "Saved."
    assert settings.low_balance.text() == "2.50"  # the stored form
    assert settings.rotation.value() == 45  # the edit survives the read-back
    assert rig.wallet.pref(KEY_ROTATION_DAYS) == 30  # and is not saved until saved
    rig.app.controller.mark_dirty()  # an engine event reloads the page: still kept
    before = settings.loads
    qtbot.waitUntil(lambda: settings.loads > before, timeout=10_000)
    assert settings.rotation.value() == 45
