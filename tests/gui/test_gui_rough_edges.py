"""Issue 13 item 9, the desktop's rough edges, each on a real engine and wallet: sub-cent
costs keep their digits, "1 request", the charts follow the filters and the selected app's
own budget window, a used-up budget says so with burn rate and run-out, a refusal's reason
shows in Activity, copy buttons confirm, a resume clears the paused notice at once, closing
to the tray says so once, the status bar does not repeat a title, filters are not clipped,
the Base URL placeholder fits the kind."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import openai
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel

from aiwallet.cli_commands.requests import STATUS_CHOICES
from aiwallet.domain.burn import BURN_WINDOW
from aiwallet.domain.money import format_usd_short, parse_budget_spec
from aiwallet.domain.windows import window_for
from aiwallet.engine.errors import CODES
from aiwallet.gui import texts
from aiwallet.gui.dialogs import ProviderDialog
from aiwallet.gui.main_window import CLOSED_TO_TRAY_TELL, CLOSED_TO_TRAY_TOLD
from aiwallet.gui.notify import Notifier, status_line
from aiwallet.gui.pages.activity import STATUSES
from aiwallet.gui.pages.apps import AppCol
from aiwallet.gui.request_model import Col
from aiwallet.gui.widgets import COPIED, money_short
from aiwallet.summaries import overview

REFUSALS = ("consent_denied", "expensive_request_denied", "too_many_pending")


def _chat(desk, key: str, n: int = 1, model: str = "gpt-4o-mini") -> None:
    client = desk.openai(key)
    for _ in range(n):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def _claude(desk, key: str) -> None:
    import anthropic

    anthropic.Anthropic(base_url=desk.url, api_key=key, max_retries=0).messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "x"}]
    )


def _reload(page, qtbot) -> None:
    before = page.loads
    page.reload()
    qtbot.waitUntil(lambda: page.loads > before, timeout=10_000)


def _activity(desk, qtbot):
    window = desk.app.window
    window.show_page(2)
    page = window.activity
    qtbot.waitUntil(lambda: page.loads >= 1, timeout=10_000)
    return page


def _choose(page, qtbot, combo, index: int) -> None:
    """Choose a filter: the charts reload with it by themselves (and then the log)."""
    before = page.loads
    combo.setCurrentIndex(index)
    qtbot.waitUntil(
        lambda: page.loads > before and page.drawn_for == page.chart_choices(), timeout=10_000
    )


def test_one_request_is_singular_and_small_costs_keep_their_digits(desk, qtbot):
    key = desk.app_key("alpha", "5/day")
    _chat(desk, key)
    page = desk.app.window.overview
    _reload(page, qtbot)
    assert page.today_note.text() == "1 request"
    activity = _activity(desk, qtbot)
    qtbot.waitUntil(lambda: activity.log.rowCount() == 1, timeout=10_000)
    assert activity.count.text() == "1 request shown"
    row = activity.log.rows[0]
    assert 0 < row.cost_nano < 10_000_000  # under a cent
    shown_cost = activity.log.data(activity.log.index(0, Col.COST))
    assert shown_cost == format_usd_short(row.cost_nano) == money_short(row.cost_nano)
    assert any(c in "123456789" for c in shown_cost)  # not $0.0000 nor <$0.01
    assert money_short(1_050_000) == "$0.00105"


def test_a_refusals_reason_is_shown_and_every_refusal_can_be_filtered(desk, qtbot):
    key = desk.app_key("alpha", "5/day")
    desk.wallet.set_paused(True)
    with pytest.raises(openai.APIStatusError):
        _chat(desk, key)
    desk.wallet.set_paused(False)
    page = _activity(desk, qtbot)
    qtbot.waitUntil(lambda: page.log.rowCount() == 1, timeout=10_000)
    reason = page.log.data(page.log.index(0, Col.REASON))
    assert reason == CODES["wallet_paused"].description
    tip = page.log.data(page.log.index(0, Col.STATUS), Qt.ItemDataRole.ToolTipRole)
    assert "wallet_paused" in tip and "paused" in reason
    assert page.log.headerData(Col.REASON, Qt.Orientation.Horizontal, 0) == "Reason"
    codes = [code for _, code in STATUSES]
    for code in REFUSALS:
        assert code in codes and code in STATUS_CHOICES
        page.status_filter.setCurrentIndex(page.status_filter.findData(code))
        qtbot.waitUntil(lambda: page.log.rowCount() == 0, timeout=10_000)


def test_charts_follow_the_filters_and_the_apps_own_budget_window(desk, qtbot):
    a, b = desk.app_key("alpha", "5/day"), desk.app_key("beta", None)
    desk.wallet.set_budget(parse_budget_spec("40/month"))  # the wallet's: another window
    _chat(desk, a, 2)
    _chat(desk, b, 1)
    _claude(desk, b)
    page = _activity(desk, qtbot)
    tz = desk.wallet.timezone
    now = datetime.now(UTC)
    assert page.stacked.x_label and page.cumulative.x_label == "day of this month"
    assert page.stacked.getAxis("bottom").labelText == page.stacked.x_label
    qtbot.waitUntil(lambda: page.app_filter.count() == 3, timeout=10_000)
    # alpha: its own daily budget and window, not the wallet's month.
    _choose(page, qtbot, page.app_filter, page.app_filter.findText("alpha"))
    alpha = desk.wallet.apps.get("alpha").id
    day = window_for(parse_budget_spec("5/day").period, now, tz)
    spent = desk.wallet.ledger.total_spent(since=day.start, until=day.end, app_id=alpha)
    assert spent > 0 and page.cumulative.points[-1] == spent
    assert page.cumulative.x_label == "hour of today (local time)"
    assert "this app's budget is $5.00 per day" in page.cumulative_note.text()
    assert set(page.series.keys) == {"gpt-4o-mini"}
    # beta and one model: both charts hold only that model's spend of beta.
    _choose(page, qtbot, page.app_filter, page.app_filter.findText("beta"))
    assert set(page.series.keys) == {"gpt-4o-mini", "claude-sonnet-4-5"}
    assert "has no budget" in page.cumulative_note.text()
    _choose(page, qtbot, page.model_filter, page.model_filter.findData("claude-sonnet-4-5"))
    qtbot.waitUntil(lambda: page.log.rowCount() == 1, timeout=10_000)
    claude = page.log.rows[0].cost_nano
    assert set(page.series.keys) == {"claude-sonnet-4-5"}
    assert page.series.total_nano == claude == page.cumulative.points[-1]
    assert "on claude-sonnet-4-5" in page.cumulative_note.text()


def test_a_total_budget_draws_everything_spent(desk, qtbot):
    key = desk.app_key("alpha", "5 total")
    _chat(desk, key, 2)
    page = _activity(desk, qtbot)
    qtbot.waitUntil(lambda: page.app_filter.count() == 2, timeout=10_000)
    _choose(page, qtbot, page.app_filter, page.app_filter.findText("alpha"))
    assert page.cumulative.points[-1] == desk.wallet.ledger.total_spent()
    assert page.cumulative.x_label == "day (last 30 days)"
    assert "in total" in page.cumulative_note.text()


def test_apps_and_overview_show_used_up_burn_rate_and_run_out(desk, qtbot):
    a, b = desk.app_key("alpha", "5/day"), desk.app_key("beta", "5/day")
    _chat(desk, a, 2)
    _chat(desk, b, 1)
    desk.wallet.set_budget(parse_budget_spec("0.000001/day"), "alpha")  # now used up
    desk.wallet.set_budget(parse_budget_spec("10/day"))
    window = desk.app.window
    window.show_page(1)
    page = window.apps
    _reload(page, qtbot)
    rows = {app.name: i for i, app in enumerate(page.model.apps)}
    outlook = {n: page.model.data(page.model.index(i, AppCol.OUTLOOK)) for n, i in rows.items()}
    assert outlook["alpha"].startswith("used up, resets in ")
    now = datetime.now(UTC)
    beta = desk.wallet.apps.get("beta").id
    burn = desk.wallet.ledger.total_spent(since=now - BURN_WINDOW, app_id=beta)
    assert burn > 0
    assert outlook["beta"] == f"{format_usd_short(burn)}/h · lasts to reset"
    assert page.model.headerData(AppCol.OUTLOOK, Qt.Orientation.Horizontal, 0).startswith(
        "Last hour"
    )
    ov_page = window.overview
    window.show_page(0)
    _reload(ov_page, qtbot)
    total_burn = desk.wallet.ledger.total_spent(since=now - BURN_WINDOW)
    assert overview(desk.wallet).burn_nano_per_hour == total_burn
    assert ov_page.budget_outlook.text() == (
        f"Last hour: {format_usd_short(total_burn)}/h · lasts to reset"
    )
    # Per app on Overview too, under each of this month's spenders.
    lines = [w.text() for w in ov_page.findChildren(QLabel) if w.objectName() == "muted"]
    assert outlook["alpha"] in lines and outlook["beta"] in lines


def test_copy_buttons_confirm_for_two_seconds(desk, qtbot):
    page = desk.app.window.overview
    button = page.copy_url
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert button.text() == COPIED
    assert QGuiApplication.clipboard().text() == desk.url
    qtbot.waitUntil(lambda: button.text() == "Copy URL", timeout=5_000)


def test_a_resume_clears_the_paused_notice_at_once(desk, qtbot):
    page = desk.app.window.overview
    _reload(page, qtbot)
    stale = overview(desk.wallet)
    qtbot.mouseClick(page.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: desk.app.controller.paused and page.banner.isVisible(), timeout=10_000)
    bar = desk.app.window.statusBar()
    qtbot.waitUntil(lambda: bar.currentMessage().startswith(texts.NOTIFY_PAUSED), timeout=10_000)
    # The status bar says it once, not "title: title. ...".
    assert bar.currentMessage() == texts.PAUSED_BANNER
    qtbot.mouseClick(page.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.banner.isVisible(), timeout=10_000)
    qtbot.waitUntil(lambda: not desk.app.controller.paused, timeout=10_000)
    assert not bar.currentMessage().startswith(texts.NOTIFY_PAUSED)
    # A read begun while paused, landing after the resume, does not bring the notice back.
    page.show_overview(replace(stale, paused=True), [])
    assert not page.banner.isVisible()


def test_a_resume_is_notified_even_right_after_a_pause():
    clock = [0.0]
    shown: list[str] = []
    n = Notifier(None, shown.append, clock=lambda: clock[0])
    assert n.notify("paused", texts.NOTIFY_PAUSED, texts.PAUSED_BANNER)
    clock[0] = 5.0
    assert n.notify("paused", texts.NOTIFY_RESUMED, "")  # reverses the pause: shown
    assert not n.notify("paused", texts.NOTIFY_RESUMED, "")  # the same again: held back
    assert shown == [texts.PAUSED_BANNER, texts.NOTIFY_RESUMED]
    assert status_line("Budget: a", "a used 80%") == "Budget: a: a used 80%"
    assert status_line("Title", "") == "Title"


def test_closing_to_the_tray_says_so_once(desk, qtbot):
    window = desk.app.window
    told: list[tuple[str, str, str]] = []
    desk.app.controller.notice.connect(lambda *n: told.append(n))
    window.hide_on_close = True
    window.show()
    window.close()
    assert not window.isVisible()
    qtbot.waitUntil(lambda: desk.wallet.settings.get(CLOSED_TO_TRAY_TOLD) is True, timeout=10_000)
    assert [kind for kind, _, _ in told] == ["closed_to_tray"]
    assert told[0][2] == CLOSED_TO_TRAY_TELL
    # Another session (the setting remembered): no second notice.
    window._tray_told = False
    window.show()
    window.close()
    task = window.tray_notice_task
    assert task is not None
    qtbot.waitUntil(task.done, timeout=10_000)
    assert len(told) == 1


def test_the_app_filter_fits_a_long_name(desk, qtbot):
    name = "a-rather-long-app-name-for-the-filter"
    desk.app_key(name, None)
    page = _activity(desk, qtbot)
    _reload(page, qtbot)
    qtbot.waitUntil(lambda: page.app_filter.count() == 2, timeout=10_000)
    combo = page.app_filter
    needed = combo.fontMetrics().horizontalAdvance(name)
    assert combo.sizeHint().width() > needed


@pytest.mark.parametrize(
    ("kind", "placeholder"),
    [
        ("openai", "https://api.openai.com/v1 (the default)"),
        ("anthropic", "https://api.anthropic.com (the default)"),
        ("ollama", "http://localhost:11434/v1 (the default)"),
        ("openai-compatible", "required, like https://llm.example/v1"),
        ("anthropic-compatible", "required, like https://llm.example"),
    ],
)
def test_the_base_url_placeholder_fits_the_kind(qtbot, kind, placeholder):
    dialog = ProviderDialog(None)
    qtbot.addWidget(dialog)
    dialog.kind.setCurrentIndex(dialog.kind.findData(kind))
    assert dialog.base_url.placeholderText() == placeholder
