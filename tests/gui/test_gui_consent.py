"""The consent prompt against a real engine: a keyless program is held until the user
answers in the prompt."""

from __future__ import annotations

import json

import openai
from PySide6.QtCore import Qt

from aiwallet.domain.money import BudgetSpec, Period


def _prompt(desk, qtbot):
    qtbot.waitUntil(lambda: desk.app.prompts.current is not None, timeout=10_000)
    return desk.app.prompts.current


def test_approve_with_edited_budget_creates_exactly_that_grant(desk, qtbot):
    out = desk.call_in_thread("sk-not-a-wallet-key")
    prompt = _prompt(desk, qtbot)
    # It names the calling program: this test process.
    assert prompt.request["process"]["pid"] > 0
    assert not prompt.remember.isChecked()  # remember is never pre-checked
    # this test runs as "python -m pytest" or as the pytest script: what the interpreter
    # runs is shown, and widening to any script is not chosen
    script = prompt.request["process"]["script"]
    assert prompt.script is not None and (script == "-m pytest" or script.endswith("/pytest"))
    assert not prompt.any_script.isChecked()
    prompt.budget.amount.setText("$0.75")
    prompt.budget.period.setCurrentIndex(prompt.budget.period.findData("week"))
    prompt.models.setText("gpt-4o-mini")
    prompt.lifetime.setCurrentIndex(prompt.lifetime.findData("1h"))
    qtbot.mouseClick(prompt.allow_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "response" in out or "error" in out, timeout=10_000)
    assert "response" in out, out.get("error")
    apps = desk.wallet.apps.list()
    assert len(apps) == 1 and apps[0].name == "pytest"
    [rule] = desk.wallet.consent_rules.list()
    assert json.loads(rule.subject)["script"] == script  # this one only, not any script
    budget = desk.wallet.budgets.app_budget(apps[0].id)
    assert BudgetSpec(budget.amount_nano, budget.period) == BudgetSpec(750_000_000, Period.WEEK)
    grant = desk.wallet.apps.grant(apps[0].id)
    assert grant.scopes == ("gpt-4o-mini",)
    lifetime = grant.expires_at - grant.issued_at
    assert 3_599 <= lifetime.total_seconds() <= 3_601
    assert desk.app.prompts.current is None


def test_escape_denies_once_and_remembers_nothing(desk, qtbot):
    out = desk.call_in_thread("sk-not-a-wallet-key")
    prompt = _prompt(desk, qtbot)
    qtbot.keyClick(prompt, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: "error" in out or "response" in out, timeout=10_000)
    err = out.get("error")
    assert isinstance(err, openai.PermissionDeniedError)
    assert err.body["code"] == "consent_denied"
    assert desk.wallet.consent_rules.list() == []
    assert desk.wallet.apps.list() == []


def test_close_denies_once(desk, qtbot):
    out = desk.call_in_thread("sk-not-a-wallet-key")
    prompt = _prompt(desk, qtbot)
    prompt.close()
    qtbot.waitUntil(lambda: "error" in out, timeout=10_000)
    assert out["error"].body["code"] == "consent_denied"
    assert desk.wallet.consent_rules.list() == []


def test_deny_with_remember_is_listed_on_the_apps_page(desk, qtbot):
    out = desk.call_in_thread("sk-not-a-wallet-key")
    prompt = _prompt(desk, qtbot)
    qtbot.mouseClick(prompt.remember, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(prompt.deny_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "error" in out, timeout=10_000)
    rules = desk.wallet.consent_rules.list()
    assert [r.decision for r in rules] == ["deny"]
    window = desk.app.window
    window.show_page(1)
    page = window.apps
    qtbot.waitUntil(lambda: page.rules.rowCount() == 1, timeout=10_000)
    assert page.rules.data(page.rules.index(0, 1)) == "always deny"
    # Forgetting it from the page revokes the rule.
    page.rules_view.selectRow(0)
    qtbot.mouseClick(page.forget, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: desk.wallet.consent_rules.list() == [], timeout=10_000)


def test_interaction_stops_the_countdown(desk, qtbot):
    desk.call_in_thread("sk-not-a-wallet-key")
    prompt = _prompt(desk, qtbot)
    assert prompt.counting
    qtbot.mouseClick(prompt.models, Qt.MouseButton.LeftButton)
    assert not prompt.counting
    shown = prompt.remaining
    qtbot.wait(1300)
    assert prompt.remaining == shown
    qtbot.keyClick(prompt, Qt.Key.Key_Escape)


def _keyless_program(url: str):
    import subprocess
    import sys

    code = (
        "import openai,sys;"
        f"c=openai.OpenAI(base_url='{url}/v1',api_key='nokey',max_retries=0);"
        "\ntry:\n c.chat.completions.create(model='gpt-4o-mini',"
        "messages=[{'role':'user','content':'x'}])"
        "\nexcept openai.PermissionDeniedError as e: print(e.body['code'])"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_a_request_whose_client_left_is_withdrawn(desk, qtbot):
    proc = _keyless_program(desk.url)
    try:
        prompt = _prompt(desk, qtbot)
        assert prompt.request["process"]["pid"] == proc.pid
    finally:
        proc.kill()  # the program goes away while its prompt is open
        proc.wait()
    qtbot.waitUntil(lambda: desk.app.prompts.current is None, timeout=10_000)
    assert desk.app.prompts.waiting == 0
    assert desk.wallet.apps.list() == []


def test_requests_queue_one_prompt_at_a_time(desk, qtbot):
    # A second program (another process) calls while the first prompt is open.
    first = desk.call_in_thread("sk-not-a-wallet-key")
    _prompt(desk, qtbot)
    proc = _keyless_program(desk.url)
    try:
        qtbot.waitUntil(lambda: desk.app.prompts.waiting == 2, timeout=15_000)
        assert "1 more waiting" in desk.app.prompts.current.position.text()
        qtbot.keyClick(desk.app.prompts.current, Qt.Key.Key_Escape)
        qtbot.waitUntil(lambda: "error" in first, timeout=10_000)
        qtbot.waitUntil(lambda: desk.app.prompts.current is not None, timeout=10_000)
        second = desk.app.prompts.current
        assert second.request["process"]["pid"] == proc.pid
        qtbot.keyClick(second, Qt.Key.Key_Escape)
        qtbot.waitUntil(lambda: proc.poll() is not None, timeout=20_000)  # the GUI loop spins
        out, _ = proc.communicate(timeout=5)
        assert out.strip() == "consent_denied"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
