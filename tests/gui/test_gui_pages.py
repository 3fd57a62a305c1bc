"""Every page driven against a real engine: navigation by keyboard, the kill switch, the
charts equal to the ledger, apps, providers (keys never shown), settings."""

from __future__ import annotations

from datetime import UTC, datetime

import openai
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QLineEdit, QPlainTextEdit, QTableWidget

from aiwallet.domain.money import Period
from aiwallet.domain.windows import CHART_RANGES, bucket_edges, window_for
from aiwallet.preferences import NOTIFY_THRESHOLDS, PROMPT_TIMEOUT_S
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY
from gui.conftest import wait_for_gui_tasks


def _chat(desk, key: str, n: int = 1) -> None:
    client = desk.openai(key)
    for _ in range(n):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
        )


def _ledger_spend(wallet, since=None, until=None, app_id=None) -> int:
    return wallet.ledger.total_spent(since=since, until=until, app_id=app_id)


def test_keyboard_navigation_reaches_every_page(desk, qtbot):
    window = desk.app.window
    for n, page in enumerate(window.pages, start=1):
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_0 + n), Qt.KeyboardModifier.ControlModifier)
        assert window.stack.currentWidget() is page
        qtbot.waitUntil(lambda p=page: p.loads >= 1, timeout=10_000)
    # The arrow keys move through the list too.
    window.nav.setFocus()
    window.nav.setCurrentRow(0)
    qtbot.keyClick(window.nav, Qt.Key.Key_Down)
    assert window.stack.currentWidget() is window.apps


def test_kill_switch_makes_the_next_request_fail_with_wallet_paused(desk, qtbot):
    key = desk.app_key()
    _chat(desk, key)
    page = desk.app.window.overview
    qtbot.waitUntil(lambda: page.loads >= 1, timeout=10_000)
    qtbot.mouseClick(page.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: desk.app.controller.paused, timeout=10_000)
    assert page.banner.isVisible()
    assert "paused" in desk.app.window.windowTitle()
    with pytest.raises(openai.APIStatusError) as info:
        _chat(desk, key)
    assert info.value.status_code == 423
    assert info.value.body["code"] == "wallet_paused"
    qtbot.mouseClick(page.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not desk.app.controller.paused, timeout=10_000)
    _chat(desk, key)


def test_overview_shows_the_ledger_spend_and_where_to_point_apps(desk, qtbot):
    key = desk.app_key()
    _chat(desk, key, 3)
    page = desk.app.window.overview
    before = page.loads
    desk.app.controller.mark_dirty()
    qtbot.waitUntil(lambda: page.loads > before, timeout=10_000)
    from aiwallet.gui.widgets import money

    assert page.today.text() == money(_ledger_spend(desk.wallet))
    assert page.today_note.text() == "3 requests"
    assert page.url.text() == desk.url
    snippets = [e.toPlainText() for e in page.findChildren(QPlainTextEdit)]
    assert any(f'base_url="{desk.url}/v1"' in s for s in snippets)
    assert any(f'base_url="{desk.url}"' in s and "Anthropic" in s for s in snippets)


@pytest.mark.parametrize("group", ["app", "model"])
def test_chart_totals_equal_the_ledger(desk, qtbot, group):
    a, b = desk.app_key("alpha", "5/day"), desk.app_key("beta", None)
    _chat(desk, a, 4)
    _chat(desk, b, 2)
    anthropic_client = __import__("anthropic").Anthropic(
        base_url=desk.url, api_key=b, max_retries=0
    )
    anthropic_client.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "x"}]
    )
    window = desk.app.window
    window.show_page(2)
    page = window.activity
    page.group.setCurrentIndex(page.group.findData(group))
    qtbot.waitUntil(lambda: page.loads >= 1, timeout=10_000)
    for name in CHART_RANGES:
        before = page.loads
        page.range.setCurrentIndex(page.range.findData(name))
        qtbot.waitUntil(lambda b=before: page.loads > b, timeout=10_000)
        unit, count = CHART_RANGES[name]
        edges = bucket_edges(unit, count, datetime.now(UTC), desk.wallet.timezone)
        expected = _ledger_spend(desk.wallet, edges[0], edges[-1])
        assert expected > 0
        assert page.series.total_nano == expected
        assert page.stacked.total_nano() == expected  # what is drawn adds up exactly
        assert sum(page.series.bucket_totals()) == expected
    keys = set(page.series.keys)
    assert keys == ({"alpha", "beta"} if group == "app" else {"gpt-4o-mini", "claude-sonnet-4-5"})
    # The cumulative line ends at this month's spend (no wallet budget: month window).
    month = window_for(Period.MONTH, datetime.now(UTC), desk.wallet.timezone)
    assert page.cumulative.points[-1] == _ledger_spend(desk.wallet, month.start, month.end)
    # The request log lists each request, newest first.
    qtbot.waitUntil(lambda: page.log.rowCount() == 7, timeout=10_000)
    assert page.log.rows[0].ts >= page.log.rows[-1].ts


def test_request_log_filters_by_app_and_status(desk, qtbot):
    a, b = desk.app_key("alpha", "5/day"), desk.app_key("beta", None)
    _chat(desk, a, 2)
    _chat(desk, b, 1)
    desk.wallet.set_paused(True)
    with pytest.raises(openai.APIStatusError):
        _chat(desk, b)
    desk.wallet.set_paused(False)
    window = desk.app.window
    window.show_page(2)
    page = window.activity
    qtbot.waitUntil(lambda: page.app_filter.count() == 3, timeout=10_000)
    page.app_filter.setCurrentIndex(page.app_filter.findText("beta"))
    qtbot.waitUntil(lambda: page.log.rowCount() == 2, timeout=10_000)
    page.status_filter.setCurrentIndex(page.status_filter.findData("wallet_paused"))
    qtbot.waitUntil(lambda: page.log.rowCount() == 1, timeout=10_000)
    assert page.log.rows[0].error_code == "wallet_paused"
    assert "wallet_paused" in page.log.data(page.log.index(0, 7))


def test_apps_page_shows_budget_use_and_edits_pause_and_revoke(desk, qtbot, monkeypatch):
    key = desk.app_key("alpha", "1/day")
    _chat(desk, key, 2)
    window = desk.app.window
    window.show_page(1)
    page = window.apps
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=10_000)
    app = page.model.apps[0]
    assert app.budget.spent_nano == _ledger_spend(desk.wallet)
    from aiwallet.gui.widgets import PROGRESS_ROLE

    assert page.model.data(page.model.index(0, 3), PROGRESS_ROLE) == int(
        app.budget.used_fraction * 1000
    )
    page.view.selectRow(0)
    qtbot.mouseClick(page.pause, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: desk.wallet.apps.get("alpha").paused, timeout=10_000)
    qtbot.waitUntil(
        lambda: page.model.apps and page.model.apps[0].status == "paused", timeout=10_000
    )
    from PySide6.QtWidgets import QMessageBox

    asked: list[QMessageBox] = []

    def yes(box: QMessageBox) -> int:
        asked.append(box)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "exec", yes)
    page.view.selectRow(0)
    qtbot.mouseClick(page.revoke, Qt.MouseButton.LeftButton)
    # the question names the app in plain text
    assert [b.textFormat() for b in asked] == [Qt.TextFormat.PlainText]
    assert "alpha" in asked[0].text()
    qtbot.waitUntil(lambda: desk.wallet.apps.get("alpha").revoked_at is not None, timeout=10_000)
    with pytest.raises(openai.PermissionDeniedError):
        _chat(desk, key)


def test_providers_page_never_shows_a_key(desk, qtbot):
    window = desk.app.window
    window.show_page(3)
    page = window.providers
    qtbot.waitUntil(lambda: page.loads >= 1 and page.table.rowCount() == 2, timeout=10_000)
    texts = [w.text() for w in window.findChildren(QLabel)]
    texts += [w.text() for w in window.findChildren(QLineEdit)]
    for table in window.findChildren(QTableWidget):
        texts += [
            table.item(r, c).text()
            for r in range(table.rowCount())
            for c in range(table.columnCount())
        ]
    blob = "\n".join(texts)
    assert OPENAI_KEY not in blob and ANTHROPIC_KEY not in blob
    assert "openai" in blob and "Keys are kept in" in blob
    # Testing a provider talks to it (the fake upstream) and records the result.
    page.table.selectRow(0)
    qtbot.mouseClick(page.test, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "works" in page.result.text(), timeout=15_000)


def test_settings_are_saved_and_validated(desk, qtbot):
    window = desk.app.window
    window.show_page(window.pages.index(window.settings))
    page = window.settings
    qtbot.waitUntil(lambda: page.loads >= 1, timeout=10_000)
    assert page.thresholds.text() == "80, 100"
    page.thresholds.setText("50, 90, 100")
    page.timeout.setValue(45)
    qtbot.mouseClick(page.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.status.text() == "Saved.", timeout=10_000)
    assert desk.wallet.pref(NOTIFY_THRESHOLDS) == (50, 90, 100)
    assert desk.wallet.pref(PROMPT_TIMEOUT_S) == 45
    page.thresholds.setText("150")
    qtbot.mouseClick(page.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "percentage" in page.status.text(), timeout=10_000)
    assert desk.wallet.pref(NOTIFY_THRESHOLDS) == (50, 90, 100)


def test_overview_shows_openrouter_credit_and_month_by_app(desk, qtbot):
    desk.wallet.add_provider(
        "router", kind="openrouter", api_key=OPENAI_KEY, base_url=desk.fake.base_url + "/v1"
    )
    _chat(desk, desk.app_key("alpha", None), 2)
    page = desk.app.window.overview
    desk.app.controller.mark_dirty()
    qtbot.waitUntil(lambda: "credit left" in page.balances_list.text(), timeout=15_000)
    assert "<b>$37.65</b> credit left of $50.00" in page.balances_list.text()
    assert OPENAI_KEY not in page.balances_list.text()
    texts = [w.text() for w in page.findChildren(QLabel)]
    from aiwallet.gui.widgets import money

    assert any(t.startswith("alpha · <b>" + money(_ledger_spend(desk.wallet))) for t in texts)


def test_settings_start_at_login_writes_the_autostart_entry(desk, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    entry = tmp_path / "config" / "autostart" / "aiwallet.desktop"
    window = desk.app.window
    window.show_page(window.pages.index(window.settings))
    page = window.settings
    qtbot.waitUntil(lambda: page.loads >= 1, timeout=10_000)
    assert not page.login.isChecked()
    page.login.setChecked(True)
    qtbot.mouseClick(page.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: entry.exists(), timeout=10_000)
    assert "--minimized" in entry.read_text()
    qtbot.waitUntil(lambda: page.status.text() == "Saved.", timeout=10_000)
    page.login.setChecked(False)
    qtbot.mouseClick(page.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not entry.exists(), timeout=10_000)


def test_settings_verifies_the_audit_log(desk, qtbot):
    window = desk.app.window
    window.show_page(window.pages.index(window.settings))
    page = window.settings
    qtbot.waitUntil(lambda: page.loads >= 1, timeout=10_000)
    assert "aiwallet" in page.about.text() and "models from" in page.about.text()
    qtbot.mouseClick(page.verify, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.audit_result.text().startswith("Intact"), timeout=10_000)
    import sqlite3

    db = sqlite3.connect(desk.wallet.data_dir.database)
    db.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 1")
    db.commit()
    db.close()
    qtbot.mouseClick(page.verify, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: page.audit_result.text().startswith("BROKEN at entry 1"), timeout=10_000
    )


def test_providers_page_warns_when_keys_are_in_the_sealed_file(qtbot, qloop, tmp_path, monkeypatch):
    import keyring.core

    from aiwallet.gui.app import DesktopApp
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    keyring.core._keyring_backend = None
    wallet = Wallet.open(DataDir(tmp_path / "w"), passphrase_provider=lambda: "correct horse")
    wallet.add_provider("openai", kind="openai", api_key="sk-sealed-" + "k" * 30)
    app = DesktopApp(wallet, use_tray=False)
    qtbot.addWidget(app.window)
    try:
        app.window.show()
        app.window.show_page(3)
        page = app.window.providers
        qtbot.waitUntil(lambda: page.loads >= 1, timeout=10_000)
        assert page.store_warning.isVisible()
        assert "passphrase-sealed file" in page.store_text.text()
    finally:
        app.shutdown()
        wait_for_gui_tasks(qtbot, qloop)
        wallet.close()
