"""Consent: keyless programs are named and held; apps connect; receipts; tokens."""

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import httpx
import openai
import pytest

from engine.conftest import cli, make_rig
from waiting import wait_until

MSGS = [{"role": "user", "content": "hi"}]

SCRIPT = textwrap.dedent("""
    import json, sys, openai
    client = openai.OpenAI(
        base_url=sys.argv[1], api_key="no-wallet-key-here", max_retries=0, timeout=30
    )
    try:
        msgs = [{"role": "user", "content": "hi"}]
        r = client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
        print(json.dumps({"ok": r.choices[0].message.content}))
    except openai.APIStatusError as e:
        print(json.dumps({"status": e.status_code, "body": e.body}))
""")


@pytest.fixture
def patient(tmp_path, fake):
    """An engine whose prompts wait long enough for a test to answer them."""
    fake.reset()
    rig = make_rig(tmp_path / "patient", fake, consent_timeout_s=20)
    yield rig
    rig.engine.stop()
    rig.wallet.close()


def pending(capsys, rig) -> list[dict]:
    """The pending consent requests, as the admin API lists them (``consent pending``)."""
    code, out, err = cli(capsys, rig, "consent", "pending", "--json")
    assert code == 0, err
    return json.loads(out)


def wait_pending(capsys, rig, count=1, timeout_s=15.0) -> list[dict]:
    """The pending consent requests, once there are at least ``count`` of them."""

    def enough() -> list[dict] | None:
        items = pending(capsys, rig)
        return items if len(items) >= count else None

    return wait_until(enough, timeout_s=timeout_s, what=f"{count} pending consent request(s)")


def held_calls(rig) -> int:
    """How many calls the pending consent requests hold (a call that joined a prompt counts
    for that prompt), read on the engine's loop, where they change."""

    async def count() -> int:
        return sum(r.waiters for r in rig.engine.consent.pending())

    return asyncio.run_coroutine_threadsafe(count(), rig.engine.loop).result(5)


def run_script(rig):
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, rig.url + "/v1"], stdout=subprocess.PIPE, text=True
    )


def test_keyless_script_is_named_held_and_approved(capsys, patient):
    proc = run_script(patient)
    [req] = wait_pending(capsys, patient)
    assert req["kind"] == "keyless" and req["process"]["pid"] == proc.pid
    assert os.path.realpath(req["process"]["exe"]) == os.path.realpath(sys.executable)
    assert "-c" in req["process"]["cmdline"]
    code, _out, err = cli(
        capsys,
        patient,
        "consent",
        "approve",
        req["id"],
        "--budget",
        "1/day",
        "--models",
        "gpt-4o-mini",
    )
    assert code == 0, err
    result = json.loads(proc.communicate(timeout=30)[0])
    assert result == {"ok": "".join(f"w{i} " for i in range(12))}
    # the decision is remembered: the same program is let through without asking again
    rules = json.loads(cli(capsys, patient, "consent", "list", "--json")[1])
    assert [(r["decision"], r["subject_kind"]) for r in rules] == [("allow", "program")]
    assert json.loads(rules[0]["subject"]) == {
        "exe": req["process"]["exe"],
        "owner": f"uid:{os.getuid()}",
        "script": "inline code",  # python -c: the interpreter with inline code, no script
    }
    again = run_script(patient)
    assert "ok" in json.loads(again.communicate(timeout=30)[0])
    # revoking the decision revokes the app: the next call asks again (and times out here)
    cli(capsys, patient, "consent", "revoke", str(rules[0]["id"]))
    third = run_script(patient)
    [req3] = wait_pending(capsys, patient)
    cli(capsys, patient, "consent", "deny", req3["id"])
    denied = json.loads(third.communicate(timeout=30)[0])
    assert denied["status"] == 403 and denied["body"]["code"] == "consent_denied"
    assert "this time" in denied["body"]["message"]


def test_keyless_deny_always_and_joining(capsys, patient):
    procs = [run_script(patient) for _ in range(2)]
    items = wait_pending(capsys, patient, count=2)
    assert len(items) == 2  # two processes: two prompts (joining is per process)
    assert sorted(i["process"]["pid"] for i in items) == sorted(p.pid for p in procs)
    for item in items:
        cli(
            capsys,
            patient,
            "consent",
            "deny",
            item["id"],
            *(["--always"] if item is items[0] else []),
        )
    outs = [json.loads(p.communicate(timeout=30)[0]) for p in procs]
    assert all(o["status"] == 403 for o in outs)
    assert patient.fake.served == []


def test_timeout_denies_once_and_remembers_nothing(rig):
    # rig's prompts time out after 0.3 s
    resp = httpx.post(
        rig.url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSGS}
    )
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "consent_required"
    assert rig.wallet.consent_rules.list() == [] and rig.wallet.apps.list() == []


def test_connect_flow_approved_with_less(capsys, patient):
    ask = {
        "app_name": "notes-plugin",
        "purpose": "summarise my notes",
        "models": ["gpt-4o-mini", "gpt-4o"],
        "budget": "5/day",
        "lifetime_s": 86400,
    }
    r = httpx.post(patient.url + "/wallet/v1/connect", json=ask)
    assert r.status_code == 202
    req_id = r.json()["id"]
    auth = {"Authorization": f"Bearer {r.json()['poll_secret']}"}
    [pending] = wait_pending(capsys, patient)
    assert pending["app_name"] == "notes-plugin" and pending["purpose"] == "summarise my notes"
    assert pending["process"]["pid"] == os.getpid()
    cli(
        capsys,
        patient,
        "consent",
        "approve",
        req_id,
        "--budget",
        "0.0001/day",
        "--models",
        "gpt-4o-mini",
    )
    status = httpx.get(
        patient.url + f"/wallet/v1/connect/{req_id}", params={"wait": 5}, headers=auth
    ).json()
    assert status["status"] == "approved" and status["budget"] == "0.0001/day"
    assert status["models"] == ["gpt-4o-mini"] and status["key"].startswith("aw_app_")
    again = httpx.get(
        patient.url + f"/wallet/v1/connect/{req_id}", params={"wait": 0}, headers=auth
    ).json()
    assert again["status"] == "approved" and "key" not in again
    client = patient.openai(status["key"])
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
    with pytest.raises(openai.APIStatusError) as err:
        for _ in range(50):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=40)
    assert err.value.status_code == 402
    assert sum(r["amount_nano"] for r in patient.ledger_rows()) <= 100_000
    me = httpx.get(
        patient.url + "/wallet/v1/me", headers={"Authorization": f"Bearer {status['key']}"}
    ).json()
    assert me["app"] == "notes-plugin" and me["budgets"][0]["budget"] == "0.0001/day"
    assert me["receipt"]["receipt"]["app"] == "notes-plugin"


def poll(rig, asked: dict, wait: float = 0) -> dict:
    """The answer to a connect request, polled with its secret."""
    return httpx.get(
        rig.url + f"/wallet/v1/connect/{asked['id']}",
        params={"wait": wait},
        headers={"Authorization": f"Bearer {asked['poll_secret']}"},
    ).json()


def test_connect_denied_and_expired(capsys, patient, rig):
    r = httpx.post(patient.url + "/wallet/v1/connect", json={"app_name": "pushy"}).json()
    [p] = wait_pending(capsys, patient)
    cli(capsys, patient, "consent", "deny", p["id"], "--always")
    assert poll(patient, r)["status"] == "denied"
    again = httpx.post(patient.url + "/wallet/v1/connect", json={"app_name": "pushy"}).json()
    assert poll(patient, again, wait=1)["status"] == "denied"
    short = httpx.post(rig.url + "/wallet/v1/connect", json={"app_name": "slow"}).json()
    assert poll(rig, short, wait=5)["status"] == "expired"
    bad = httpx.post(rig.url + "/wallet/v1/connect", json={"purpose": "no name"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"


def test_receipt_verifies_and_tampering_is_found(capsys, rig, tmp_path):
    rig.app("signed", budget="1/day", models=["gpt-4o-mini"])
    code, out, _ = cli(capsys, rig, "apps", "receipt", "signed")
    receipt = json.loads(out)
    f = tmp_path / "receipt.json"
    f.write_text(out)
    code, out, _ = cli(capsys, rig, "receipts", "verify", str(f))
    assert code == 0 and "valid receipt" in out and "gpt-4o-mini" in out
    code, out, _ = cli(
        capsys, rig, "receipts", "verify", str(f), "--public-key", rig.wallet.public_key
    )
    assert code == 0
    receipt["receipt"]["budget"] = "100.00/day"
    f.write_text(json.dumps(receipt))
    code, out, _ = cli(capsys, rig, "receipts", "verify", str(f))
    assert code == 2 and "altered" in out


def test_revoked_grant_fails_next_request_and_session_tokens(rig):
    key = rig.app("tok", budget="1/day")
    tok = httpx.post(
        rig.url + "/wallet/v1/token", headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert tok["token"].startswith("aw_sess_") and 300 <= tok["expires_in"] <= 900
    via_token = rig.openai(tok["token"])
    assert (
        via_token.chat.completions.create(model="gpt-4o-mini", messages=MSGS).usage.total_tokens
        == 20
    )
    assert (
        httpx.post(
            rig.url + "/wallet/v1/token", headers={"Authorization": f"Bearer {tok['token']}"}
        ).status_code
        == 403
    )
    forged = tok["token"][:-3] + ("aaa" if not tok["token"].endswith("aaa") else "bbb")
    with pytest.raises(openai.AuthenticationError) as forged_err:  # 401 at once
        rig.openai(forged).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert forged_err.value.body["code"] == "invalid_app_key"
    rig.wallet.revoke_app("tok")
    for client in (rig.openai(key), via_token):
        with pytest.raises(openai.PermissionDeniedError) as err:
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        assert err.value.body["code"] == "consent_required"


def test_expired_session_token_is_refused():
    from aiwallet.engine.errors import ProxyError
    from aiwallet.engine.tokens import SessionTokens

    tokens = SessionTokens()
    tokens.ttl_s = -1  # issue one that is already expired
    tok, _ = tokens.issue(1, 1)
    with pytest.raises(ProxyError, match="expired"):
        tokens.check(tok)
    with pytest.raises(ProxyError):
        SessionTokens().check(tok)  # another engine's key: refused too


JOIN_SCRIPT = textwrap.dedent("""
    import json, sys, threading, openai
    client = openai.OpenAI(base_url=sys.argv[1], api_key="none", max_retries=0, timeout=30)
    out = []
    def call():
        try:
            msgs = [{"role": "user", "content": "hi"}]
            client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
            out.append("ok")
        except openai.APIStatusError as e:
            out.append(e.status_code)
    threads = [threading.Thread(target=call) for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(json.dumps(out))
""")


def test_calls_from_one_process_join_one_prompt(capsys, patient):
    proc = subprocess.Popen(
        [sys.executable, "-c", JOIN_SCRIPT, patient.url + "/v1"], stdout=subprocess.PIPE, text=True
    )
    wait_pending(capsys, patient)
    # all three calls have arrived and are held (by one prompt if they joined, else by three)
    wait_until(lambda: held_calls(patient) == 3, what="the three calls to be held")
    items = pending(capsys, patient)
    assert len(items) == 1 and items[0]["process"]["pid"] == proc.pid
    cli(capsys, patient, "consent", "approve", items[0]["id"], "--once")
    assert json.loads(proc.communicate(timeout=30)[0]) == ["ok", "ok", "ok"]
    assert patient.wallet.consent_rules.list() == []  # "once" remembers nothing


def test_events_and_withdrawal_when_the_client_leaves(capsys, patient):
    seen = []
    patient.engine.events.subscribe(lambda name, payload: seen.append((name, payload.get("state"))))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            patient.url + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MSGS},
            timeout=1.0,
        )
    wait_until(
        lambda: ("consent.cancelled", "cancelled") in seen,
        timeout_s=5,
        what="the prompt to be withdrawn (consent.cancelled)",
    )
    assert ("consent.requested", "pending") in seen and ("consent.cancelled", "cancelled") in seen
    assert pending(capsys, patient) == []


def test_answered_requests_are_forgotten_after_a_while(rig):
    from datetime import timedelta

    expired: set[str] = set()

    def on_event(name: str, payload: dict) -> None:
        if name == "consent.answered" and payload.get("state") == "expired":
            expired.add(payload["id"])

    rig.engine.events.subscribe(on_event)
    ids = [
        httpx.post(rig.url + "/wallet/v1/connect", json={"app_name": f"a{i}"}).json()["id"]
        for i in range(3)
    ]
    consent = rig.engine.consent
    # rig's prompts expire after 0.3 s
    wait_until(lambda: expired >= set(ids), what="the three requests to expire")
    assert all(consent.requests[i].state == "expired" for i in ids)
    for i in ids:
        consent.requests[i].created_at -= timedelta(hours=1)
    httpx.post(rig.url + "/wallet/v1/connect", json={"app_name": "new"})
    assert not any(i in consent.requests for i in ids) and len(consent.requests) == 1
