"""One owner per request: who ended it, what it is billed, and that ledger row, request-log
row and event always agree, whatever ends it (answer, refusal, client gone, provider cut,
malformed input, absurd usage, an exception inside the engine)."""

from __future__ import annotations

import json
import socket
import struct
import threading
from typing import Any

import anthropic
import httpx
import openai
import pytest

from aiwallet.domain.cost import cost_of
from aiwallet.domain.usage import Usage
from engine.conftest import Rig
from fakeupstream import Script
from waiting import wait_until

MSGS = [{"role": "user", "content": "hi"}]
LONG = 5000  # reply tokens: a stream far larger than the socket buffers between us and it
TRIES = 100


class Events:
    """Everything the engine's event bus emits during a test (emitted on its loop thread)."""

    def __init__(self, rig: Rig) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.unsubscribe = rig.engine.events.subscribe(self._add)

    def _add(self, name: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.items.append((name, dict(payload)))

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p for n, p in self.items if n == name]


@pytest.fixture
def events(rig):
    ev = Events(rig)
    yield ev
    ev.unsubscribe()


def settled(rig: Rig, n: int) -> list[dict[str, Any]]:
    """Wait until ``n`` request rows exist and nothing is left to settle; the rows."""

    def done() -> list[dict[str, Any]] | None:
        rows = rig.requests()
        busy = rig.engine._proxy is not None and rig.engine._proxy.background
        return rows if len(rows) >= n and not busy else None

    return wait_until(done, what=f"{n} request rows, settled")


def no_open_reservation(rig: Rig) -> None:
    wait_until(
        lambda: rig.wallet.budgets.open_reservations() == [], what="every reservation closed"
    )


def agree(rig: Rig, events: Events) -> None:
    """Every committed row has exactly one request.logged event that says what it says."""
    rows = {r["id"]: r for r in rig.requests()}
    logged = {e["id"]: e for e in events.named("request.logged")}
    assert logged.keys() == rows.keys()
    for rid, ev in logged.items():
        row = rows[rid]
        assert (ev["status"], ev["cost_nano"], ev["error_code"]) == (
            row["status"],
            row["cost_nano"],
            row["error_code"],
        )
    ledger = {r["request_id"]: r for r in rig.ledger_rows() if r["kind"] == "spend"}
    for rid, row in rows.items():
        if rid in ledger:
            assert ledger[rid]["amount_nano"] == row["cost_nano"]
        else:
            assert row["cost_nano"] == 0


def _request_bytes(rig: Rig, key: str, path: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{rig.engine.port}\r\n"
        f"Authorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def raw_leave(rig: Rig, key: str, *, reset: bool) -> None:
    """A raw-socket client: send a streamed request, read the first bytes of the answer,
    hang up (``reset``: with RST, as a killed process does; else a plain close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", rig.engine.port))
        body = {"model": "gpt-4o-mini", "messages": MSGS, "stream": True}
        s.sendall(_request_bytes(rig, key, "/v1/chat/completions", body))
        assert s.recv(64).startswith(b"HTTP/1.1 200")
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        s.close()


def test_raw_socket_clients_leaving_a_zero_delay_stream_are_client_closed(rig, events):
    key = rig.app(budget="100/day")
    rig.fake.set_default(Script(reply_tokens=LONG))
    try:
        for i in range(TRIES):
            raw_leave(rig, key, reset=i % 2 == 0)
            settled(rig, i + 1)
    finally:
        rig.fake.set_default(Script())
    rows = settled(rig, TRIES)
    assert [(r["status"], r["error_code"]) for r in rows] == [(499, "client_closed")] * TRIES
    assert all(r["token_source"] == "estimated" for r in rows)
    assert events.named("upstream.failed") == []  # the provider did nothing wrong
    no_open_reservation(rig)
    agree(rig, events)


def test_httpx_clients_leaving_a_zero_delay_stream_are_client_closed(rig, events):
    key = rig.app(budget="100/day")
    rig.fake.set_default(Script(reply_tokens=LONG))
    opts = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
    body = {"model": "gpt-4o-mini", "messages": MSGS, "stream": True}
    try:
        for i in range(TRIES):
            transport = httpx.HTTPTransport(socket_options=opts)
            with httpx.Client(transport=transport, timeout=10) as client:
                url = rig.url + "/v1/chat/completions"
                headers = {"Authorization": f"Bearer {key}"}
                with client.stream("POST", url, json=body, headers=headers) as resp:
                    assert resp.status_code == 200
                    next(resp.iter_raw())  # the first bytes, then leave
            settled(rig, i + 1)
    finally:
        rig.fake.set_default(Script())
    rows = settled(rig, TRIES)
    assert [(r["status"], r["error_code"]) for r in rows] == [(499, "client_closed")] * TRIES
    assert events.named("upstream.failed") == []
    no_open_reservation(rig)
    agree(rig, events)


def test_aborted_anthropic_stream_bills_message_start_input_and_the_relayed_output(rig, events):
    key = rig.app(budget="100/day")
    rig.fake.script(Script(reply_tokens=LONG))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 8000, "messages": MSGS, "stream": True}
    deltas = 0
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", rig.url + "/v1/messages", json=body, headers=headers) as resp,
    ):
        for line in resp.iter_lines():
            if line == "event: content_block_delta":
                deltas += 1
                if deltas == 40:
                    break  # hang up just after 40 text deltas
    [row] = settled(rig, 1)
    served = rig.fake.served[-1]
    start = json.loads(served.raw_out.split(b"\n\n")[0].split(b"data: ", 1)[1])
    said = start["message"]["usage"]
    assert (row["status"], row["error_code"]) == (499, "client_closed")
    assert row["input_tokens"] == said["input_tokens"] > 0  # exact, from message_start
    assert row["output_tokens"] >= deltas  # at least what the client saw
    assert row["token_source"] == "estimated"
    [spend] = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    route = rig.engine.state.router.resolve("claude-sonnet-4-5", _anthropic_wire())
    usage = Usage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"])
    assert spend["amount_nano"] == cost_of(usage, route.row).nano == row["cost_nano"]
    assert events.named("upstream.failed") == []
    agree(rig, events)


def _anthropic_wire():
    from aiwallet.domain.providers import WireFormat

    return WireFormat.ANTHROPIC


def test_a_stream_the_provider_cuts_is_the_providers_failure(rig, events):
    key = rig.app()
    rig.fake.script(Script(cut_after_events=6))
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for _ in rig.openai(key).chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, stream=True
        ):
            pass
    [row] = settled(rig, 1)
    assert (row["status"], row["error_code"]) == (200, "upstream_unavailable")
    assert [e["provider"] for e in events.named("upstream.failed")] == ["openai"]
    agree(rig, events)


# -- malformed input and misbehaving providers: never a 500, never an open reservation -------


def _post(rig: Rig, key: str, path: str, raw: bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if path.startswith("/v1/messages"):
        headers["anthropic-version"] = "2023-06-01"
    return httpx.post(rig.url + path, content=raw, headers=headers, timeout=30)


def _body(path: str, stream: bool, content: Any) -> dict[str, Any]:
    if path == "/v1/embeddings":
        return {"model": "text-embedding-3-small", "input": content}
    if path == "/v1/responses":
        return {"model": "gpt-4o-mini", "input": content, "stream": stream}
    if path.startswith("/v1/messages"):
        return {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": content}],
            "stream": stream,
        }
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}],
            "stream": stream}  # fmt: skip


PATHS = ["/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/messages",
         "/v1/messages/count_tokens"]  # fmt: skip


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", PATHS)
def test_malformed_unicode_and_deep_nesting_end_cleanly(rig, events, path):
    key = rig.app(budget="1/day")
    n = 0
    for stream in (False, True):
        lone = json.dumps(_body(path, stream, "hi \ud800 there")).encode()  # \\ud800 escape
        bad_utf8 = json.dumps(_body(path, stream, "PLACEHOLDER")).encode()
        bad_utf8 = bad_utf8.replace(b"PLACEHOLDER", b"\xff\xfe")
        cases = [lone, bad_utf8]
        for depth in (500, 900, 990, 2000, 100_000):
            text = json.dumps(_body(path, stream, "X")).replace('"X"', _nested(depth))
            cases.append(text.encode())
        for raw in cases:
            resp = _post(rig, key, path, raw)
            n += 1
            assert resp.status_code != 500 and resp.status_code < 500, resp.text[:300]
            assert resp.headers.get("x-aiwallet-error-code") != "internal_error"
            if resp.status_code >= 400:  # in the wire shape of the API called
                body = resp.json()
                if path.startswith("/v1/messages"):
                    assert body["type"] == "error" and "message" in body["error"]
                else:
                    assert "message" in body["error"] and "code" in body["error"]
    no_open_reservation(rig)
    budget = rig.wallet.budgets.app_budget(rig.wallet.apps.get("script").id)
    assert budget is not None
    settled(rig, 0)
    agree(rig, events)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_absurd_usage_is_broken_not_a_bill(rig, events, api, stream):
    key = rig.app(budget="1/day")
    rig.fake.script(Script(usage="absurd"))
    if api == "openai":
        result = rig.openai(key).chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, stream=stream
        )
    else:
        result = rig.anthropic(key).messages.create(
            model="claude-sonnet-4-5", max_tokens=50, messages=MSGS, stream=stream
        )
    if stream:
        for _ in result:
            pass
    [row] = settled(rig, 1)
    assert row["status"] == 200 and row["token_source"] == "estimated"
    assert 0 < row["cost_nano"] < 10_000_000  # a cent, not 10^20 tokens' worth
    [spend] = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    assert "beyond any model's limits" in spend["note"]
    no_open_reservation(rig)
    agree(rig, events)


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_an_oversized_stream_event_is_a_provider_cut(rig, events, api):
    key = rig.app(budget="1/day")
    rig.fake.script(Script(huge_event_bytes=17 * 1024 * 1024))
    with pytest.raises(Exception):  # noqa: B017 - each SDK says "broken stream" its own way
        if api == "openai":
            for _ in rig.openai(key).chat.completions.create(
                model="gpt-4o-mini", messages=MSGS, stream=True
            ):
                pass
        else:
            for _ in rig.anthropic(key).messages.create(
                model="claude-sonnet-4-5", max_tokens=50, messages=MSGS, stream=True
            ):
                pass
    [row] = settled(rig, 1)
    assert (row["status"], row["error_code"]) == (200, "upstream_unavailable")
    no_open_reservation(rig)
    agree(rig, events)


def test_an_exception_inside_the_engine_releases_and_is_logged(rig, events, monkeypatch):
    key = rig.app(budget="1/day")
    proxy = rig.engine._proxy
    assert proxy is not None

    def broken(*a: Any, **kw: Any) -> Any:
        raise RuntimeError("a bug between reserving and forwarding")

    monkeypatch.setattr(proxy.session, "post", broken)
    with pytest.raises(openai.InternalServerError) as err:
        rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.body["code"] == "internal_error"
    [row] = settled(rig, 1)
    assert (row["status"], row["error_code"], row["cost_nano"]) == (500, "internal_error", 0)
    no_open_reservation(rig)
    app = rig.wallet.apps.get("script")
    budget = rig.wallet.budgets.app_budget(app.id)
    assert budget is not None
    from datetime import UTC, datetime

    state = rig.wallet.budgets.state(budget, datetime.now(UTC), rig.wallet.timezone)
    assert (state.spent_nano, state.reserved_nano) == (0, 0)
    agree(rig, events)


def test_a_settlement_that_cannot_be_written_bills_the_reserved_worst_case(
    rig, events, monkeypatch
):
    key = rig.app(budget="1/day")
    budgets = rig.engine.state.budgets
    real = budgets.settle_in
    calls = []

    def refuses_the_real_cost(conn: Any, res_id: str, amount: int, spend: Any, *rest: Any) -> bool:
        calls.append(amount)
        if "reserved worst case" not in (spend.note or ""):
            raise OverflowError("the database refused the figure")  # the batch and its retry
        return real(conn, res_id, amount, spend, *rest)

    monkeypatch.setattr(budgets, "settle_in", refuses_the_real_cost)
    rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    [row] = settled(rig, 1)
    no_open_reservation(rig)
    [spend] = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    assert spend["amount_nano"] == calls[-1] > calls[0]  # billed at the reserved worst case
    assert row["cost_nano"] == spend["amount_nano"]
    assert "reserved worst case" in spend["note"] and spend["token_source"] == "estimated"
    agree(rig, events)


# -- keys ----------------------------------------------------------------------------------


def test_unknown_wallet_keys_and_bad_session_tokens_are_401_at_once(rig, events):
    rig.app()
    never = "aw_app_" + "x" * 40
    for key in (never, "aw_sess_garbage.mac"):
        with pytest.raises(openai.AuthenticationError) as err:
            rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        assert err.value.status_code == 401 and err.value.body["code"] == "invalid_app_key"
        with pytest.raises(anthropic.AuthenticationError) as aerr:
            rig.anthropic(key).messages.create(
                model="claude-sonnet-4-5", max_tokens=10, messages=MSGS
            )
        assert aerr.value.body["error"]["type"] == "authentication_error"
    assert events.named("consent.requested") == []  # nobody was asked: refused at once


@pytest.mark.parametrize("key", ["sk-proj-not-a-wallet-key-0123456789", "DUMMY_KEY"])
def test_a_bearer_that_is_not_a_wallet_key_is_keyless_and_told_so(rig, events, key):
    with pytest.raises(openai.PermissionDeniedError) as err:
        rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.body["code"] == "consent_required"
    assert "not a wallet app key" in err.value.body["message"]
    assert len(events.named("consent.requested")) == 1  # keyless: the owner was asked
    assert key not in json.dumps(events.items)  # and the key itself is never repeated


# -- pass-through -------------------------------------------------------------------------


def test_models_retrieve_in_both_sdks_filtered_by_the_grant(rig):
    key = rig.app(models=["gpt-4o-mini", "claude-sonnet-4-5"])
    model = rig.openai(key).models.retrieve("gpt-4o-mini")
    assert (model.id, model.owned_by) == ("gpt-4o-mini", "openai")
    assert rig.openai(key).models.retrieve("openai/gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        rig.openai(key).models.retrieve("gpt-4o")  # a real model, outside the grant
    amodel = rig.anthropic(key).models.retrieve("claude-sonnet-4-5")
    assert amodel.id == "claude-sonnet-4-5" and amodel.type == "model"
    with pytest.raises(anthropic.NotFoundError):
        rig.anthropic(key).models.retrieve("claude-opus-4-1")


def test_upstream_request_ids_rate_limits_and_content_type_reach_the_client(rig):
    key = rig.app()
    chat = rig.openai(key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSGS
    )
    served = rig.fake.served[-1]
    assert chat.parse()._request_id == served.request_id != ""
    assert chat.headers["x-ratelimit-remaining-requests"] == "9999"
    assert chat.headers["openai-processing-ms"] == "7"
    assert "openai-organization" not in chat.headers  # not on the allow-list
    msg = rig.anthropic(key).messages.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=MSGS
    )
    assert msg._request_id == rig.fake.served[-1].request_id != ""
    with rig.openai(key).chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MSGS, stream=True
    ) as stream:
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert stream.headers["x-request-id"] == rig.fake.served[-1].request_id
        for _ in stream.iter_lines():
            pass
    with rig.anthropic(key).messages.with_streaming_response.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=MSGS, stream=True
    ) as astream:
        assert astream.headers["request-id"] == rig.fake.served[-1].request_id
        assert "anthropic-organization-id" not in astream.headers
        for _ in astream.iter_lines():
            pass


def test_query_strings_are_forwarded(rig):
    key = rig.app()
    rig.anthropic(key).messages.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=MSGS, extra_query={"beta": "true"}
    )
    assert rig.fake.served[-1].query == "beta=true"
    rig.openai(key).chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, extra_query={"api-version": "2024-10-21"}
    )
    assert rig.fake.served[-1].query == "api-version=2024-10-21"
