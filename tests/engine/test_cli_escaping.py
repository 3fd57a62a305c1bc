"""What the CLI prints of a caller's words cannot act on the terminal: ESC sequences, CR/LF,
BEL, DEL and bidi overrides from a real connect request (and from an app's name in the
ledger) are printed as visible escapes, each listing keeps one line per row, and --json
is the same document with those characters escaped."""

from __future__ import annotations

import json

import httpx
import pytest

from aiwallet.domain.display import is_hidden
from engine.conftest import cli, make_rig
from waiting import wait_until

# Erase the line, go up one, draw a fake row; set the terminal title; reverse what follows.
NAME = "helper\x1b[2K\r\x1b[1AVerified: Microsoft Corporation\x1b]0;pwned\x07"
PURPOSE = "fine\r\nid  kind  who\nforged-row  connect  \u202egnp.exe\x7f\x9b31m"
RAW = ("\x1b", "\r", "\n", "\x07", "\x7f", "\x9b", "\u202e")


@pytest.fixture
def patient(tmp_path, fake):
    fake.reset()
    rig = make_rig(tmp_path, fake, consent_timeout_s=30)
    yield rig
    rig.engine.stop()
    rig.wallet.close()


def _lines(out: str) -> list[str]:
    assert not [ch for ch in out if ch != "\n" and is_hidden(ch)], repr(out)
    for raw in RAW[:2] + RAW[3:]:
        assert raw not in out
    return out.rstrip("\n").split("\n")


def _ask(rig, name: str, purpose: str | None = None) -> str:
    body = {"app_name": name, "models": ["gpt-4o-mini"], "budget": "1/day"}
    if purpose is not None:
        body["purpose"] = purpose
    r = httpx.post(rig.url + "/wallet/v1/connect", json=body, timeout=10)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _pending(capsys, rig, count: int) -> list[dict]:
    def enough() -> list[dict] | None:
        code, out, err = cli(capsys, rig, "consent", "pending", "--json")
        assert code == 0, err
        items = json.loads(out)
        return items if len(items) >= count else None

    return wait_until(enough, timeout_s=15, what=f"{count} pending request(s)")


def test_consent_pending_prints_a_hostile_request_as_one_escaped_row(capsys, patient):
    _ask(patient, NAME, PURPOSE)
    _ask(patient, "plain-app", "summarise notes")
    items = _pending(capsys, patient, 2)
    # --json: the same words, exactly (JSON escapes them; nothing raw reaches the terminal)
    assert {i["app_name"] for i in items} == {NAME, "plain-app"}
    code, out, _ = cli(capsys, patient, "consent", "pending", "--json")
    assert code == 0
    assert not [ch for ch in out if ch != "\n" and is_hidden(ch)]
    assert {i["purpose"] for i in json.loads(out)} == {PURPOSE, "summarise notes"}

    code, out, err = cli(capsys, patient, "consent", "pending")
    assert code == 0, err
    lines = _lines(out)
    assert len(lines) == 3  # the header and one line per request: no forged row
    assert lines[0].startswith("ID ")
    hostile = next(line for line in lines if "helper" in line)
    assert "helper\\x1b[2K\\r\\x1b[1AVerified: Microsoft Corporation\\x1b]0;pwned\\x07" in hostile
    assert "fine\\r\\nid  kind  who\\nforged-row  connect  \\u202egnp.exe\\x7f\\x9b31m" in hostile
    assert sum("forged-row" in line for line in lines) == 1


def test_approved_and_denied_names_stay_escaped_in_every_listing(capsys, patient):
    approved = _ask(patient, NAME)
    denied_name = "deny-me\n\x1b[31mALLOWED\x1b[0m"
    denied = _ask(patient, denied_name)
    _pending(capsys, patient, 2)
    code, out, err = cli(capsys, patient, "consent", "approve", approved)
    assert code == 0, err
    assert _lines(out)[0].startswith("Approved helper\\x1b[2K\\r")
    code, out, err = cli(capsys, patient, "consent", "deny", denied, "--always")
    assert code == 0, err

    code, out, _ = cli(capsys, patient, "apps", "list")
    lines = _lines(out)
    assert len(lines) == 2 and "Verified: Microsoft Corporation\\x1b]0;pwned\\x07" in lines[1]

    code, out, _ = cli(capsys, patient, "consent", "list")
    lines = _lines(out)
    assert len(lines) == 3
    assert any("deny-me\\n\\x1b[31mALLOWED\\x1b[0m" in line for line in lines)

    code, out, _ = cli(capsys, patient, "apps", "show", NAME)
    assert code == 0 and "helper\\x1b[2K" in _lines(out)[0]


def test_usage_and_requests_escape_an_app_name_from_the_ledger(capsys, patient):
    name = "spender\r\x1b[2Kowner-approved\u2066"
    key = patient.app(name, budget="1/day")
    patient.openai(key).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    for args in (("usage",), ("requests",)):
        code, out, err = cli(capsys, patient, *args)
        assert code == 0, err
        lines = _lines(out)
        assert any("spender\\r\\x1b[2Kowner-approved\\u2066" in line for line in lines), out
    code, out, err = cli(capsys, patient, "apps", "pause", name)
    assert code == 0 and _lines(out) == ["Paused spender\\r\\x1b[2Kowner-approved\\u2066."]


def test_an_error_quoting_a_name_is_escaped(capsys, patient):
    code, _, err = cli(capsys, patient, "apps", "show", "ghost\x1b[2J\nboo")
    assert code == 1
    assert "ghost" in err and "\x1b" not in err and err.count("\n") == 1
