"""The Settings page saves with one ``Wallet.set_prefs`` call on the worker pool: one audit
entry per changed preference, none for the ones left alone."""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import Qt

from aiwallet.preferences import PROMPT_TIMEOUT_S


def _settings_rows(wallet) -> list[Any]:
    return [e for e in wallet.audit.entries() if e.action == "settings.set"]


def test_changing_one_setting_writes_one_audit_entry(desk, qtbot, monkeypatch):
    wallet = desk.wallet
    calls: list[tuple[dict[str, Any], threading.Thread]] = []
    set_prefs = wallet.set_prefs

    def spy(values: dict[Any, Any]) -> dict[str, Any]:
        calls.append(({p.key: v for p, v in values.items()}, threading.current_thread()))
        return set_prefs(values)

    monkeypatch.setattr(wallet, "set_prefs", spy)
    window = desk.app.window
    window.show_page(window.pages.index(window.settings))
    page = window.settings
    qtbot.waitUntil(lambda: page.loads >= 1, timeout=10_000)
    before = _settings_rows(wallet)

    page.timeout.setValue(45)
    loads = page.loads
    qtbot.mouseClick(page.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.status.text() == "Saved.", timeout=10_000)

    new = _settings_rows(wallet)[len(before) :]
    assert [(e.subject, e.details) for e in new] == [("setting:prompt_timeout_s", {"value": 45})]
    assert wallet.pref(PROMPT_TIMEOUT_S) == 45
    assert len(calls) == 1  # one call for every preference on the page
    assert set(calls[0][0]) == {
        "port",
        "prompt_timeout_s",
        "notify_thresholds",
        "notify_upstream_failures",
        "low_balance_usd",
        "balance_refresh_min",
        "key_rotation_days",
    }
    assert calls[0][1] is not threading.main_thread()  # on the worker pool, not the GUI

    # Saving again (after the page reloaded what was stored) writes nothing.
    qtbot.waitUntil(lambda: page.loads > loads, timeout=10_000)
    assert page.timeout.value() == 45
    page.status.setText("")
    qtbot.mouseClick(page.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.status.text() == "Saved.", timeout=10_000)
    assert len(calls) == 2
    assert _settings_rows(wallet)[len(before) :] == new
    assert wallet.verify_audit().ok
