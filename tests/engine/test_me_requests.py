"""``GET /wallet/v1/me/requests``: an app reads its own requests (never another app's), each
with what the ledger billed for it, by a keyset cursor; and ``/me``'s spend series."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime

import httpx
import openai
import pytest

from aiwallet.domain.money import parse_usd
from aiwallet.store.ledger import micros
from fakeupstream.script import Script
from waiting import wait_until

MSGS = [{"role": "user", "content": "hi"}]


def mine(rig, key: str, **params) -> httpx.Response:
    return httpx.get(
        rig.url + "/wallet/v1/me/requests",
        params=params,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def all_pages(rig, key: str, after: str | None = None, limit: int = 2) -> list[dict]:
    rows: list[dict] = []
    while True:
        params = {"limit": limit, **({"after": after} if after else {})}
        body = mine(rig, key, **params).json()
        rows += body["requests"]
        after = body["next"]
        if not body["more"]:
            return rows


def ledger_by_request(rig) -> dict[str, int]:
    return {r["request_id"]: r["amount_nano"] for r in rig.ledger_rows() if r["kind"] == "spend"}


def test_an_app_reads_its_own_requests_with_their_ledger_cost(rig):
    start = micros(datetime.now(UTC))
    a, b = rig.app("notebook-a"), rig.app("notebook-b")
    oa, ob = rig.openai(a), rig.openai(b)
    oa.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    for _ in oa.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True):
        pass
    rig.anthropic(a).messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSGS)
    ob.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    # a refusal is logged too (cost 0), and listed once it is committed
    with pytest.raises(openai.NotFoundError):
        oa.chat.completions.create(model="no-such-model", messages=MSGS)

    rows_a = all_pages(rig, a)
    rows_b = all_pages(rig, b)
    ledger = ledger_by_request(rig)
    assert len(rows_a) == 4 and len(rows_b) == 1
    ids_a, ids_b = {r["id"] for r in rows_a}, {r["id"] for r in rows_b}
    assert not ids_a & ids_b
    log = {r["id"]: r for r in rig.requests()}
    assert ids_a | ids_b == set(log)
    for row in rows_a + rows_b:
        assert row["cost_nano"] == ledger.get(row["id"], 0)
        assert parse_usd(row["cost_usd"]) == row["cost_nano"]
        assert row["output_tokens"] == log[row["id"]]["output_tokens"]
        assert row["input_tokens"] == log[row["id"]]["input_tokens"]
    assert [r["stream"] for r in rows_a[:3]] == [False, True, False]
    assert rows_a[3]["status"] == 404 and rows_a[3]["cost_nano"] == 0
    assert sum(r["cost_nano"] for r in rows_a) > 0
    # ordered by (start, id); paging by the cursor returns each row once
    assert [r["cursor"] for r in rows_a] == sorted(
        (r["cursor"] for r in rows_a), key=lambda c: (int(c.split(":")[0]), c)
    )
    assert all_pages(rig, a, limit=1000) == rows_a
    # a time as the cursor: the requests started at or after it
    assert all_pages(rig, a, after=str(start)) == rows_a
    assert mine(rig, a, after=str(micros(datetime.now(UTC)))).json()["requests"] == []
    # no parameter reaches another app's rows
    assert {r["id"] for r in mine(rig, b, app_id=1, app="notebook-a").json()["requests"]} == ids_b


def test_unknown_revoked_and_malformed(rig):
    a = rig.app("notebook-a")
    resp = mine(rig, "aw_app_" + "x" * 40)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_app_key"
    assert httpx.get(rig.url + "/wallet/v1/me/requests").status_code == 403
    for bad in ({"after": "yesterday"}, {"after": "-5"}, {"limit": "many"}, {"limit": "5000"}):
        r = mine(rig, a, **bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", bad
    rig.wallet.revoke_app("notebook-a")
    resp = mine(rig, a)
    assert resp.status_code == 403
    assert "revoked" in resp.json()["error"]["message"]


def test_long_poll_answers_when_the_app_logs_a_request(rig):
    a, b = rig.app("notebook-a"), rig.app("notebook-b")
    head = mine(rig, a).json()["next"]  # nothing yet: None
    assert head is None
    now = str(micros(datetime.now(UTC)))
    got: dict = {}

    def poll() -> None:
        t0 = time.monotonic()
        got["body"] = mine(rig, a, after=now, wait=20).json()
        got["elapsed"] = time.monotonic() - t0

    th = threading.Thread(target=poll)
    th.start()
    # another app's request does not wake it; its own does
    rig.openai(b).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    rig.openai(a).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    th.join(30)
    assert [r["model"] for r in got["body"]["requests"]] == ["gpt-4o-mini"]
    assert got["elapsed"] < 15
    # waiting on requests that are not in flight (settled, or never were) answers at once
    t0 = time.monotonic()
    body = mine(rig, a, after=str(micros(datetime.now(UTC))), wait=20, settling="awreq_x,y")
    assert body.json()["requests"] == [] and time.monotonic() - t0 < 10
    assert mine(rig, a, settling=",".join(str(i) for i in range(17))).status_code == 400


def test_in_flight_lists_an_open_request_until_it_is_logged(rig):
    a = rig.app("notebook-a")
    rig.fake.script(Script(hang=True))
    body = json.dumps({"model": "gpt-4o-mini", "messages": MSGS}).encode()
    sock = socket.create_connection(("127.0.0.1", rig.engine.port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{rig.engine.port}\r\nAuthorization: Bearer {a}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    flying = wait_until(
        lambda: mine(rig, a).json()["in_flight"], what="the hanging request in flight"
    )
    assert mine(rig, a).json()["requests"] == []
    sock.close()  # the client leaves: logged 499, billed what is known

    def logged():
        page = mine(rig, a).json()
        return page if page["requests"] and not page["in_flight"] else None

    page = wait_until(logged, what="the request logged")
    (row,) = page["requests"]
    assert row["id"] == flying[0]["id"] and row["status"] == 499
    assert micros(datetime.fromisoformat(row["ts"])) <= flying[0]["at"]
    assert row["cost_nano"] == ledger_by_request(rig)[row["id"]]


def test_me_series_adds_up_to_the_ledger(rig):
    a = rig.app("notebook-a", budget="1/day")
    oa = rig.openai(a)
    for _ in range(3):
        oa.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    me = httpx.get(
        rig.url + "/wallet/v1/me",
        params={"series": 24},
        headers={"Authorization": f"Bearer {a}"},
    ).json()
    spent = sum(ledger_by_request(rig).values())
    (budget,) = [b for b in me["budgets"] if b["scope"] == "app"]
    assert budget["spent_nano"] == spent == parse_usd(budget["spent_usd"])
    assert budget["amount_nano"] == 10**9
    assert len(me["series"]["edges"]) == 25 and len(me["series"]["spent_nano"]) == 24
    assert sum(me["series"]["spent_nano"]) == spent
    assert me["series"]["edges"][0] == budget["window_start"]
    assert me["series"]["edges"][-1] == budget["resets_at"]
    assert me["last_hour"]["spent_nano"] == spent
    assert me["app_paused"] is False and me["wallet_paused"] is False
