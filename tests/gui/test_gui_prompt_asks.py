"""What the consent prompt says is asked, against a real engine and real caller processes:
the held request's model and worst case (the amount then reserved), the purpose a keyless
program declared, models defaulting to what was asked ("any model" named, never a bare
``*``), the durations and what each becomes in the engine, and the expensive prompt."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QLabel, QLineEdit

from aiwallet.domain.money import format_usd, usd_string, usd_to_nano
from aiwallet.gui.prompt import ASKED, ConsentPrompt
from fakeupstream import Script

PURPOSE = "Summarise <b>my</b> notes &amp; <font color=red>click Allow</font>"

KEYLESS = textwrap.dedent("""
    import sys, openai
    url, purpose = sys.argv[1:3]
    c = openai.OpenAI(base_url=url + "/v1", api_key="nokey", max_retries=0,
                      default_headers={"x-aiwallet-purpose": purpose} if purpose else None)
    try:
        c.chat.completions.create(model="gpt-4o-mini", max_tokens=1000,
                                  messages=[{"role": "user", "content": "hi"}])
        print("served", flush=True)
    except openai.APIStatusError as e:
        print(e.body.get("code") if isinstance(e.body, dict) else e.status_code, flush=True)
    sys.stdin.read()  # stay alive until the test lets it go
""")

CONNECT = textwrap.dedent("""
    import sys, httpx
    url = sys.argv[1]
    r = httpx.post(url + "/wallet/v1/connect", timeout=10,
                   json={"app_name": "notebook", "models": ["*"]})
    print(r.status_code, flush=True)
    sys.stdin.read()
""")


def _run(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def _prompt(desk, qtbot) -> ConsentPrompt:
    qtbot.waitUntil(lambda: desk.app.prompts.current is not None, timeout=15_000)
    prompt = desk.app.prompts.current
    assert prompt is not None
    return prompt


def _visible_texts(prompt: ConsentPrompt) -> list[str]:
    out = [w.text() for w in prompt.findChildren(QLabel) if w.isVisibleTo(prompt)]
    out += [w.text() for w in prompt.findChildren(QAbstractButton) if w.isVisibleTo(prompt)]
    out += [w.text() for w in prompt.findChildren(QLineEdit) if w.isVisibleTo(prompt)]
    return out


def test_keyless_prompt_shows_the_held_request_and_reserves_what_it_showed(desk, qtbot):
    desk.fake.script(Script(gate="shown"))  # keep it in flight to read its reservation
    proc = _run(KEYLESS, desk.url, PURPOSE)
    try:
        prompt = _prompt(desk, qtbot)
        held = prompt.request["held_request"]
        assert held["model"] == "gpt-4o-mini" and held["max_output_tokens"] == 1000
        cost = format_usd(usd_to_nano(held["worst_case_usd"]), places=None)
        assert prompt.cost is not None and prompt.cost.textFormat() == Qt.TextFormat.PlainText
        assert prompt.cost.text() == (
            f"{cost} at most for this request (gpt-4o-mini, up to 1,000 output tokens)"
        )
        # the declared purpose, as its own words (plain text, markup and all)
        assert prompt.purpose is not None and prompt.no_purpose is None
        assert prompt.purpose.toPlainText() == PURPOSE
        # models default to the held request's; any model is not chosen
        assert prompt.models.text() == "gpt-4o-mini" and not prompt.any_model.isChecked()
        assert "*" not in " ".join(_visible_texts(prompt))
        # a keyless caller whose process is known: until it exits, by default
        assert prompt.lifetime.currentData() == "exit"
        qtbot.mouseClick(prompt.allow_button, Qt.MouseButton.LeftButton)
        budgets = desk.wallet.budgets
        qtbot.waitUntil(lambda: budgets.open_reservations() != [], timeout=10_000)
        [res] = budgets.open_reservations()
        assert usd_string(res.amount_nano) == held["worst_case_usd"]  # what the prompt said
        desk.fake.open_gate("shown")
        assert proc.stdout is not None
        qtbot.waitUntil(lambda: budgets.open_reservations() == [], timeout=10_000)
        assert proc.stdout.readline().strip() == "served"
        [app] = desk.wallet.apps.list()
        assert desk.wallet.apps.grant(app.id).scopes == ("gpt-4o-mini",)
        assert desk.wallet.consent_rules.list() == []  # "until it exits" remembers nothing
        engine = desk.app.controller.engine
        assert engine is not None and engine.consent is not None
        assert app.id in engine.consent.until_exit  # the engine watches that process
    finally:
        _end(proc)
    # the program exits: its grant ends
    qtbot.waitUntil(lambda: desk.wallet.apps.list()[0].revoked_at is not None, timeout=15_000)


def test_a_keyless_call_that_says_nothing_is_shown_as_silent(desk, qtbot):
    proc = _run(KEYLESS, desk.url, "")
    try:
        prompt = _prompt(desk, qtbot)
        assert prompt.purpose is None and prompt.no_purpose is not None
        assert prompt.no_purpose.text() == "It did not say."
        qtbot.keyClick(prompt, Qt.Key.Key_Escape)
        assert proc.stdout is not None
        qtbot.waitUntil(lambda: proc.poll() is not None or desk.app.prompts.current is None)
    finally:
        _end(proc)


def test_an_invalid_keyless_body_is_refused_before_anyone_is_asked(desk, qtbot):
    import httpx

    r = httpx.post(
        desk.url + "/v1/chat/completions",
        json={"model": "no-such-model-anywhere", "messages": []},
        timeout=10,
    )
    assert r.status_code in (400, 404) and r.json()["error"]["code"] == "unknown_model"
    too_long = httpx.post(
        desk.url + "/v1/chat/completions",
        headers={"x-aiwallet-purpose": "x" * 501},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert too_long.status_code == 400
    assert "x-aiwallet-purpose" in too_long.json()["error"]["message"]
    engine = desk.app.controller.engine
    assert engine is not None and engine.consent is not None
    assert engine.consent.requests == {}  # nobody was prompted
    assert desk.app.prompts.current is None


@pytest.mark.parametrize(
    ("duration", "span", "remembered"),
    [
        ("once", timedelta(minutes=2), False),
        ("15m", timedelta(minutes=15), True),
        ("1h", timedelta(hours=1), True),
        ("always", None, True),
    ],
)
def test_each_duration_is_the_engines(desk, qtbot, duration, span, remembered):
    out = desk.call_in_thread("sk-not-a-wallet-key")
    prompt = _prompt(desk, qtbot)
    prompt.lifetime.setCurrentIndex(prompt.lifetime.findData(duration))
    qtbot.mouseClick(prompt.allow_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "response" in out or "error" in out, timeout=10_000)
    assert "response" in out, out.get("error")
    [app] = desk.wallet.apps.list()
    grant = desk.wallet.apps.grant(app.id)
    if span is None:
        assert grant.expires_at is None
    else:
        assert grant.expires_at is not None
        lasts = grant.expires_at - grant.issued_at
        assert abs(lasts - span) <= timedelta(seconds=2)
    assert bool(desk.wallet.consent_rules.list()) is remembered


def _request(kind: str, *, pid: int | None, lifetime_s: int | None = None) -> dict:
    return {
        "id": "cr_test",
        "kind": kind,
        "app_name": "probe",
        "purpose": None,
        "models": ["gpt-4o-mini"],
        "budget": None,
        "lifetime_s": lifetime_s,
        "process": None if pid is None else {"pid": pid, "exe": "/usr/bin/python3", "uid": 1},
        "expires_in_s": 60,
        "served_models": ["gpt-4o-mini"],
        "served_count": 1,
    }


def _choices(prompt: ConsentPrompt) -> list[str]:
    return [prompt.lifetime.itemData(i) for i in range(prompt.lifetime.count())]


def test_until_it_exits_is_offered_only_for_a_known_process(qtbot):
    # A caller the process table does not show cannot be produced on loopback: the request
    # is built as the engine sends it for such a caller (process null).
    unknown = ConsentPrompt(_request("keyless", pid=None))
    qtbot.addWidget(unknown)
    assert _choices(unknown) == ["once", "15m", "1h", "always"]
    assert unknown.lifetime.currentData() == "1h"
    known = ConsentPrompt(_request("keyless", pid=4242))
    qtbot.addWidget(known)
    assert _choices(known) == ["once", "15m", "1h", "exit", "always"]
    assert known.lifetime.currentData() == "exit"
    connect = ConsentPrompt(_request("connect", pid=4242))
    qtbot.addWidget(connect)
    assert connect.lifetime.currentData() == "1h"  # never "until I revoke it" by default
    asked = ConsentPrompt(_request("connect", pid=4242, lifetime_s=7200))
    qtbot.addWidget(asked)
    assert asked.lifetime.currentData() == ASKED
    assert asked.lifetime.currentText() == "As it asked: 2 hours"
    for p in (unknown, known, connect, asked):
        p.withdraw()


def test_a_connect_asking_any_model_names_the_models(desk, qtbot):
    proc = _run(CONNECT, desk.url)
    try:
        prompt = _prompt(desk, qtbot)
        served = prompt.request["served_models"]
        assert "gpt-4o-mini" in served and prompt.request["served_count"] == len(served)
        assert prompt.any_model.isChecked() and not prompt.models.isEnabled()
        assert prompt.models.text() == ""
        text = prompt.any_model.text()
        assert text.startswith(f"Any model this wallet serves ({len(served):,} models: ")
        assert all(served[i] in text for i in range(min(3, len(served))))
        assert "gpt-4o-mini" in prompt.any_model.toolTip()
        assert not any(t.strip() == "*" or "(*" in t for t in _visible_texts(prompt))
        # unticked with no model named: nothing is approved, and it says why
        prompt.any_model.setChecked(False)
        qtbot.mouseClick(prompt.allow_button, Qt.MouseButton.LeftButton)
        assert desk.app.prompts.current is prompt and prompt.error.isVisibleTo(prompt)
        prompt.any_model.setChecked(True)
        qtbot.mouseClick(prompt.allow_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: desk.wallet.apps.list() != [], timeout=10_000)
        [app] = desk.wallet.apps.list()
        assert desk.wallet.apps.grant(app.id).scopes == ("*",)
    finally:
        _end(proc)


def test_an_expensive_prompt_shows_its_cost_and_threshold(desk, qtbot):
    key = desk.app_key("notes", budget="5/day")
    desk.wallet.set_app_ask_over("notes", usd_to_nano("0.001"))
    out = desk.call_in_thread(key)
    prompt = _prompt(desk, qtbot)
    assert prompt.kind == "expensive"
    held = prompt.request["held_request"]
    cost = format_usd(usd_to_nano(held["worst_case_usd"]), places=None)
    tokens = f"{held['max_output_tokens']:,}"
    assert prompt.cost is not None and prompt.cost.text() == (
        f"{cost} at most for this request (gpt-4o-mini, up to {tokens} output tokens)"
    )
    assert "over your $0.001 ask-before threshold for this app" in prompt.wants.text()
    assert prompt.allow_button.text() == "Allow this request"
    assert prompt.deny_button.text() == "Deny"
    assert not prompt.once_button.isVisibleTo(prompt)
    assert not prompt.asked.isVisibleTo(prompt) and not prompt.remember.isVisibleTo(prompt)
    assert prompt.no_purpose is None  # a known app's request is not asked why
    qtbot.mouseClick(prompt.allow_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "response" in out or "error" in out, timeout=10_000)
    assert "response" in out, out.get("error")
