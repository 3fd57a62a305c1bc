"""A connect request is bound to its requester: the poll secret from its 202 answer, and the
requester's OS user. A spy that knows the id (it shows in `ps` for `aiwallet consent approve
cr_...`) gets nothing; the key is handed out once; another OS user gets nothing, even with the
secret; a keyless program's remembered decision serves only the OS user it was made for."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from aiwallet.engine import peer
from aiwallet.engine.peer import ProcessInfo
from engine.conftest import cli, make_rig
from engine.other_user import SYSTEM_PYTHON, as_user, call, second_user
from waiting import wait_until

ASK = {"app_name": "notes", "purpose": "tests", "budget": "1/day"}


@pytest.fixture
def patient(tmp_path, fake):
    """An engine whose prompts wait long enough for a test to answer them."""
    fake.reset()
    rig = make_rig(tmp_path / "patient", fake, consent_timeout_s=30)
    yield rig
    rig.engine.stop()
    rig.wallet.close()


def ask(rig) -> dict:
    resp = httpx.post(rig.url + "/wallet/v1/connect", json=ASK)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["poll_secret"].startswith("aw_poll_") and len(body["poll_secret"]) >= 8 + 43
    return body


def poll(rig, req_id: str, secret: str | None = None, wait: float = 0) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.get(
        rig.url + f"/wallet/v1/connect/{req_id}", params={"wait": wait}, headers=headers
    )


def approve(capsys, rig, req_id: str) -> None:
    code, _out, err = cli(capsys, rig, "consent", "approve", req_id, "--budget", "1/day")
    assert code == 0, err


def assert_unknown(resp: httpx.Response, req_id: str) -> None:
    """The answer to an id nobody asked for: 404, no state, no key."""
    assert resp.status_code == 404, resp.text
    body = resp.json()
    assert body["error"]["code"] == "not_found"
    assert body["error"]["message"] == f"no consent request {req_id}"
    assert "key" not in resp.text and "pending" not in resp.text and "approved" not in resp.text


def test_a_spy_with_the_id_alone_gets_nothing_before_or_after_approval(capsys, patient):
    asked = ask(patient)
    req_id, secret = asked["id"], asked["poll_secret"]
    unknown = "cr_" + "0" * 32
    assert_unknown(poll(patient, unknown), unknown)
    for spy_secret in (
        None,
        "aw_poll_" + "A" * 43,
        secret[:-1] + ("B" if secret[-1] != "B" else "C"),
    ):
        assert_unknown(poll(patient, req_id, spy_secret), req_id)  # pending
    # the poll secret is not an app key: it opens nothing else
    me = httpx.get(patient.url + "/wallet/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 403
    approve(capsys, patient, req_id)
    assert_unknown(poll(patient, req_id), req_id)  # approved, before the app polls
    got = poll(patient, req_id, secret).json()
    assert got["status"] == "approved" and got["key"].startswith("aw_app_")
    assert_unknown(poll(patient, req_id), req_id)  # and after
    later = poll(patient, req_id, secret).json()
    assert later["status"] == "approved" and "key" not in later
    # the id is not a secret: the admin API answers with it (and never with the key)
    pending = cli(capsys, patient, "consent", "pending", "--json")
    assert pending[0] == 0 and json.loads(pending[1]) == []


def test_the_key_is_handed_out_once_to_concurrent_polls(capsys, patient):
    asked = ask(patient)
    req_id, secret = asked["id"], asked["poll_secret"]
    with ThreadPoolExecutor(6) as pool:
        polls = [pool.submit(poll, patient, req_id, secret, 20) for _ in range(6)]

        async def waiting() -> int:
            return patient.engine.consent.requests[req_id].waiters

        def all_waiting() -> bool:
            fut = asyncio.run_coroutine_threadsafe(waiting(), patient.engine.loop)
            return fut.result(5) == 6

        wait_until(all_waiting, what="six long-polls held")
        approve(capsys, patient, req_id)
        answers = [p.result(30).json() for p in polls]
    assert all(a["status"] == "approved" for a in answers)
    keys = [a["key"] for a in answers if "key" in a]
    assert len(keys) == 1
    assert (
        httpx.get(
            patient.url + "/wallet/v1/me", headers={"Authorization": f"Bearer {keys[0]}"}
        ).json()["app"]
        == "notes"
    )


def test_an_unclaimed_key_is_dropped_from_memory(capsys, patient, monkeypatch):
    import aiwallet.engine.consent as consent

    monkeypatch.setattr(consent, "KEEP_KEY_S", 0.05)
    asked = ask(patient)
    approve(capsys, patient, asked["id"])
    req = patient.engine.consent.requests[asked["id"]]
    wait_until(lambda: "key" not in req.answer, what="the unclaimed key dropped")
    late = poll(patient, asked["id"], asked["poll_secret"]).json()
    assert late["status"] == "approved" and "key" not in late and late["app"] == "notes"


def test_another_os_user_with_the_secret_gets_nothing(capsys, patient, caplog):
    user = second_user()
    asked = ask(patient)
    req_id, secret = asked["id"], asked["poll_secret"]
    path = f"/wallet/v1/connect/{req_id}?wait=0"
    caplog.set_level(logging.WARNING, logger="aiwallet.engine.consent")
    stolen = call(user, patient.url, "GET", path, token=secret)
    assert stolen["status"] == 404 and stolen["body"]["error"]["code"] == "not_found"
    approve(capsys, patient, req_id)
    stolen = call(user, patient.url, "GET", path, token=secret)
    assert stolen["status"] == 404 and "aw_app_" not in json.dumps(stolen)
    assert f"uid:{user.pw_uid}" in caplog.text and req_id in caplog.text  # the attempt is logged
    # the requester (this OS user, another process even) still gets its key
    mine = call(None, patient.url, "GET", path, token=secret)
    assert mine["status"] == 200 and str(mine["body"]["key"]).startswith("aw_app_")


def test_the_owner_comparison(capsys, patient, monkeypatch):
    """The uid check itself, with the poller's identity replaced: another uid, or a lookup
    that failed (unknown process), collects nothing from a request whose requester is known."""
    asked = ask(patient)
    req = patient.engine.consent.requests[asked["id"]]
    assert req.owner == f"uid:{os.getuid()}"
    approve(capsys, patient, asked["id"])
    real = patient.engine.consent.peers.lookup

    async def other_uid(transport):
        info = await real(transport)
        assert info is not None
        return ProcessInfo(info.pid, info.exe, info.cmdline, "mallory", os.getuid() + 1)

    async def unknown(transport):
        return None

    for impostor in (other_uid, unknown):
        monkeypatch.setattr(patient.engine.consent.peers, "lookup", impostor)
        assert_unknown(poll(patient, asked["id"], asked["poll_secret"]), asked["id"])
    assert "key" in req.answer  # nothing was handed out
    monkeypatch.setattr(patient.engine.consent.peers, "lookup", real)
    assert poll(patient, asked["id"], asked["poll_secret"]).json()["key"].startswith("aw_app_")


def test_process_identity_compares_user_and_process():
    me = ProcessInfo(10, "/usr/bin/python3", (), "ana", 1000)
    other_user = ProcessInfo(10, "/usr/bin/python3", (), "bob", 1001)
    windows = ProcessInfo(10, "C:/python.exe", (), "HOST\\ana", None)
    assert me.owner == "uid:1000" and other_user.owner == "uid:1001"
    assert windows.owner == "user:HOST\\ana"
    assert me.same_process(ProcessInfo(10, "/usr/bin/python3", ("x",), "ana", 1000))
    assert not me.same_process(other_user) and not me.same_process(None)
    assert not me.same_process(ProcessInfo(11, "/usr/bin/python3", (), "ana", 1000))
    assert me.rule_subject != other_user.rule_subject
    assert json.loads(me.rule_subject or "") == {
        "exe": "/usr/bin/python3",
        "owner": "uid:1000",
        "script": None,
    }
    assert ProcessInfo(10, None, (), "ana", 1000).rule_subject is None
    assert ProcessInfo(10, "/usr/bin/python3", (), None, None).rule_subject is None
    assert ProcessInfo(None, None, (), "ana", 1000).label == "unknown program"


KEYLESS = textwrap.dedent("""
    import http.client, json, sys
    conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=60)
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    print(json.dumps({"status": resp.status, "body": json.loads(resp.read())}))
""")


def keyless(rig, user) -> subprocess.Popen[str]:
    host, port = rig.url.removeprefix("http://").rsplit(":", 1)
    args = [SYSTEM_PYTHON, "-c", KEYLESS, host, port]
    return subprocess.Popen(as_user(user, args), stdout=subprocess.PIPE, text=True, cwd="/")


def pending(capsys, rig) -> list[dict]:
    code, out, err = cli(capsys, rig, "consent", "pending", "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_remembered_program_serves_only_its_own_os_user(capsys, patient):
    user = second_user()
    first = keyless(patient, None)
    [req] = wait_until(lambda: pending(capsys, patient), what="the first program's prompt")
    assert req["process"]["uid"] == os.getuid()
    approve(capsys, patient, req["id"])
    assert json.loads(first.communicate(timeout=60)[0])["status"] == 200
    again = keyless(patient, None)  # the same program, same user: let through
    assert json.loads(again.communicate(timeout=60)[0])["status"] == 200
    served = len(patient.fake.served)
    # the same program as another OS user: asked about separately, not served by the rule
    theirs = keyless(patient, user)
    [req2] = wait_until(lambda: pending(capsys, patient), what="the second user's prompt")
    assert req2["process"]["uid"] == user.pw_uid and req2["process"]["exe"] == req["process"]["exe"]
    cli(capsys, patient, "consent", "deny", req2["id"])
    out = json.loads(theirs.communicate(timeout=60)[0])
    assert out["status"] == 403 and out["body"]["error"]["code"] == "consent_denied"
    assert len(patient.fake.served) == served


def test_an_unknown_process_is_not_served_by_a_remembered_rule(capsys, patient, monkeypatch):
    """A lookup that took too long is "unknown process": it is prompted for (and may be
    refused), never let through by the rule remembered for the program it might be."""
    first = keyless(patient, None)
    [req] = wait_until(lambda: pending(capsys, patient), what="the program's prompt")
    approve(capsys, patient, req["id"])
    assert json.loads(first.communicate(timeout=60)[0])["status"] == 200
    gate = threading.Event()
    real_resolve = peer.resolve

    def stuck(pairs):
        gate.wait(30)
        return real_resolve(pairs)

    monkeypatch.setattr(peer, "resolve", stuck)
    patient.engine.consent.peers.timeout_s = 0.2
    try:
        blind = keyless(patient, None)
        [req2] = wait_until(lambda: pending(capsys, patient), what="an unknown process's prompt")
        assert req2["process"] is None and req2["process_label"] == "unknown process"
        cli(capsys, patient, "consent", "deny", req2["id"])
        out = json.loads(blind.communicate(timeout=60)[0])
        assert out["status"] == 403
    finally:
        gate.set()


def test_the_notebook_client_polls_with_its_secret(capsys, patient):
    from aiwallet.notebook.wallet import WalletClient

    client = WalletClient(patient.url)
    try:
        asked = client.ask("nb", purpose=None, models=None, budget="1/day", lifetime_s=None)
        assert asked.poll_secret and asked.status == "pending"
        assert client.answer(asked, 0).status == "pending"
        approve(capsys, patient, asked.id)
        got = client.answer(asked, 5)
        assert got.status == "approved" and (got.key or "").startswith("aw_app_")
    finally:
        client.close()
