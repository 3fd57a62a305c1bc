"""Tray menu, notifications (thresholds, coalescing) and the none_dealloc guard."""

from __future__ import annotations

import sys

import openai
import pytest
from PySide6.QtCore import QTimer

from aiwallet.gui.notify import COALESCE_S, Notifier
from aiwallet.gui.tray import Tray
from gui.conftest import wait_for_gui_tasks


def test_tray_menu_is_built_when_opened_and_pauses(desk, qtbot):
    c = desk.app.controller
    tray = Tray(c, open_window=lambda: None, show_prompt=lambda _: None, quit_app=lambda: None)
    tray.build_menu()
    texts = [a.text() for a in tray.menu.actions()]
    assert texts[0] == "Open aiwallet"
    assert texts[1] == "Pause all AI spending"
    assert "Recent prompts" in texts and texts[-1] == "Quit"
    tray.menu.actions()[1].trigger()
    qtbot.waitUntil(lambda: c.paused, timeout=10_000)
    tray.build_menu()  # rebuilt on every opening: now it offers to resume
    assert tray.menu.actions()[1].text() == "Resume AI spending"
    assert "PAUSED" in tray.toolTip() or c.today_nano >= 0
    tray.menu.actions()[1].trigger()
    qtbot.waitUntil(lambda: not c.paused, timeout=10_000)


def test_tray_tooltip_shows_todays_spend(desk, qtbot):
    c = desk.app.controller
    tray = Tray(c, open_window=lambda: None, show_prompt=lambda _: None, quit_app=lambda: None)
    key = desk.app_key()
    desk.openai(key).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    from aiwallet.gui.widgets import money

    spent = desk.wallet.ledger.total_spent()
    qtbot.waitUntil(lambda: money(spent) in tray.toolTip(), timeout=10_000)


def test_notifications_are_coalesced_per_kind():
    now = [1000.0]
    shown: list[str] = []
    n = Notifier(None, shown.append, clock=lambda: now[0])
    assert n.notify("budget80", "Budget", "a at 80%")
    assert not n.notify("budget80", "Budget", "b at 80%")  # same kind within a minute
    assert n.notify("paused", "Paused", "")  # another kind is not held back
    now[0] += COALESCE_S + 1
    assert n.notify("budget80", "Budget", "c at 80%")
    assert shown == ["Budget: a at 80%", "Paused", "Budget: c at 80%"]
    assert n.suppressed == 1


def test_budget_thresholds_notify_at_80_and_100_percent(desk, qtbot):
    c = desk.app.controller
    events: list[tuple[str, str]] = []
    desk.app.notifier.shown.connect(lambda kind, title, text: events.append((kind, text)))
    # Prime the levels (no notifications for what was already true at start).
    c.mark_dirty()
    qtbot.waitUntil(lambda: c._levels_primed, timeout=10_000)
    one = desk.openai(desk.app_key("probe", None))
    one.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    cost = desk.wallet.ledger.total_spent()
    assert cost > 0
    # A budget of about forty such requests (each reserves its worst case, the prompt's
    # bytes and framing and the clamped output, far above what it costs); the app loops until
    # the wallet stops it.
    from aiwallet.domain.money import BudgetSpec, Period

    budget = cost * 40
    _, key = desk.wallet.create_app("looper", budget=BudgetSpec(budget, Period.DAY), models=None)
    client = desk.openai(key)
    app_id = desk.wallet.apps.get("looper").id

    def call() -> None:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )

    for _ in range(39):  # up to 80 % and a little more
        call()
        if desk.wallet.ledger.total_spent(app_id=app_id) * 100 >= budget * 80:
            break
    qtbot.waitUntil(lambda: any(k == "budget80" for k, _ in events), timeout=10_000)
    assert any("looper has used 80%" in t for _, t in events)
    with pytest.raises(openai.APIStatusError) as info:
        for _ in range(60):
            call()
    assert info.value.body["code"] == "budget_exceeded"
    assert desk.wallet.ledger.total_spent(app_id=app_id) <= budget  # stopped within it
    qtbot.waitUntil(lambda: any(k == "budget100" for k, _ in events), timeout=10_000)
    assert any("looper reached its budget" in t for _, t in events)


def test_paused_notification(desk, qtbot):
    events: list[str] = []
    desk.app.notifier.shown.connect(lambda kind, title, text: events.append(kind))
    desk.wallet.set_paused(True)  # as from the command line: the engine tells the GUI
    qtbot.waitUntil(lambda: "paused" in events, timeout=10_000)
    assert desk.app.controller.paused


def test_no_none_refcount_leak_from_qt_dispatch(qapp, qtbot, qloop):
    """PySide6 6.12 on Python 3.11 drops a reference to None on every dispatch of a Python
    override of a void Qt virtual (see docs/architecture.md): a long-running app dies with
    ``none_dealloc``. Thousands of timer events, qasync callbacks and chart redraws must
    leave None's refcount where it was (None is immortal from 3.12: the check still holds)."""
    import asyncio

    import pyqtgraph as pg

    plot = pg.PlotWidget()
    qtbot.addWidget(plot)
    plot.show()
    curve = plot.plot([0, 1, 2], [0, 1, 0])
    count = {"ticks": 0, "callbacks": 0}

    def tick() -> None:
        count["ticks"] += 1
        curve.setData([0, 1, 2], [0, count["ticks"] % 7, 0])
        plot.repaint()

    timer = QTimer()
    timer.timeout.connect(tick)
    before = sys.getrefcount(None)
    timer.start(0)

    async def spin() -> None:
        for _ in range(1800):
            count["callbacks"] += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(spin())
    qtbot.waitUntil(lambda: task.done() and count["ticks"] >= 1200, timeout=60_000)
    timer.stop()
    delta = sys.getrefcount(None) - before
    # 6.12 + 3.11 loses ~0.8 per dispatch (~1,000 here, twice the bound); allow noise from
    # other objects.
    assert delta > -500, f"None lost {-delta} references over {count['ticks']} redraws"


def test_without_a_tray_the_window_opens_even_when_minimized(qtbot, qloop, tmp_path):
    from aiwallet.gui.app import DesktopApp
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet

    wallet = Wallet.open(DataDir(tmp_path / "w"))
    app = DesktopApp(wallet, use_tray=False)
    qtbot.addWidget(app.window)
    try:
        task = app.start(minimized=True, port=0)
        assert app.tray is None
        assert app.window.isVisible()  # nowhere else to show the wallet
        assert not app.window.hide_on_close  # closing the window quits
        qtbot.waitUntil(task.done, timeout=20_000)
        assert app.controller.engine is not None, app.controller.engine_error
    finally:
        app.shutdown()
        wait_for_gui_tasks(qtbot, qloop)
        wallet.close()


def test_a_failing_provider_is_notified(desk, qtbot):
    events: list[tuple[str, str]] = []
    desk.app.notifier.shown.connect(lambda kind, title, text: events.append((kind, text)))
    desk.wallet.add_provider(
        "openai", kind="openai", api_key="sk-x", base_url="http://127.0.0.1:9/v1", replace=True
    )
    key = desk.app_key()
    with pytest.raises(openai.APIStatusError) as info:
        desk.openai(key).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.body["code"] == "upstream_unavailable"
    qtbot.waitUntil(lambda: any(k == "upstream" for k, _ in events), timeout=10_000)
    assert any("Provider openai is failing" in t for _, t in events)
    assert "sk-x" not in " ".join(t for _, t in events)


def test_a_second_instance_brings_the_first_ones_window_up(qtbot, tmp_path):
    from aiwallet.gui.single import InstanceServer, instance_name, signal_running
    from aiwallet.paths import DataDir

    name = instance_name(DataDir(tmp_path / "wallet"))
    assert not signal_running(name)  # nobody there yet: this one starts the app
    shown: list[bool] = []
    server = InstanceServer(name, lambda: shown.append(True))
    try:
        assert server.listening
        assert signal_running(name)
        qtbot.waitUntil(lambda: shown == [True], timeout=5_000)
        # Another data dir is another wallet: it does not reach this one.
        assert not signal_running(instance_name(DataDir(tmp_path / "other")))
    finally:
        server.close()


def test_a_busy_port_is_explained_and_the_engine_can_be_started_again(qtbot, qloop, tmp_path):
    import socket

    from PySide6.QtCore import Qt

    from aiwallet.gui.app import DesktopApp
    from aiwallet.paths import DataDir
    from aiwallet.preferences import PORT
    from aiwallet.service import Wallet

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    wallet = Wallet.open(DataDir(tmp_path / "w"))
    wallet.set_pref(PORT, port)  # another program holds the wallet's port
    app = DesktopApp(wallet, use_tray=False)
    qtbot.addWidget(app.window)
    try:
        page = app.window.overview
        qtbot.waitUntil(app.start().done, timeout=20_000)
        assert app.controller.engine is None and app.controller.engine_error is not None
        assert f"port {port} is in use" in page.engine_status.text()
        assert page.retry.isVisible()
        blocker.close()  # the other program went away
        # The page shows the outcome when the controller says the engine changed, which is
        # after it has set controller.engine (it asks the new engine for pending prompts in
        # between): wait for that signal, not for controller.engine.
        with qtbot.waitSignal(app.controller.engine_changed, timeout=20_000):
            qtbot.mouseClick(page.retry, Qt.MouseButton.LeftButton)
        assert app.controller.engine is not None, app.controller.engine_error
        assert app.controller.engine.port == port
        assert not page.retry.isVisible()
        assert "running" in page.engine_status.text()
    finally:
        blocker.close()
        app.shutdown()
        wait_for_gui_tasks(qtbot, qloop)
        wallet.close()
