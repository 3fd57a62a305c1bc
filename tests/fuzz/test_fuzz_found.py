"""Inputs the fuzzers found that made the engine answer 500 ``internal_error``; each now gets a
4xx in the caller's wire format and costs nothing.

- a body nested deeper than Python's recursion limit (json.loads raised RecursionError), on
  the proxied routes and on /wallet/v1/connect;
- an unknown charset in Content-Type on /wallet/v1/connect (LookupError);
- a max-output field beyond any model (max_tokens: 10**30): its worst case did not fit a
  ledger integer (OverflowError in the reservation);
- a non-ASCII key or token (hashing a surrogate failed; hmac.compare_digest refuses non-ASCII
  text) on the proxied routes, /wallet/v1/token and the admin API;
- admin approve/deny bodies that are not objects, or carry a bad budget, models, lifetime or
  flag (AttributeError, InvalidInput, TypeError, OverflowError), and an enormous lifetime_s
  asked through /wallet/v1/connect (the approval overflowed the expiry date).
"""

from __future__ import annotations

import json

import pytest

from adminsign import signed
from aiwallet.engine.endpoints import ENDPOINTS
from fuzz.conftest import RawResponse, assert_wire_error, ledger_totals, raw_request

JSON = (b"Content-Type", b"application/json")
ANTHROPIC = (b"anthropic-version", b"2023-06-01")
MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture
def rig(make_engine):
    return make_engine(consent_timeout_s=30.0)


def _post(rig, path, body: bytes, headers) -> object:
    return raw_request(rig.engine.port, "POST", path, [JSON, *headers], body)


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/v1/chat/completions", "openai"),
        ("/v1/responses", "openai"),
        ("/v1/embeddings", "openai"),
        ("/v1/messages", "anthropic"),
        ("/v1/messages/count_tokens", "anthropic"),
    ],
)
def test_deep_nesting_and_huge_max_output(rig, path, api):
    key = rig.app()
    extra = [ANTHROPIC] if api == "anthropic" else []
    auth = [(b"Authorization", b"Bearer " + key.encode()), *extra]
    for body in (b"[" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        assert assert_wire_error(api, _post(rig, path, body, auth), 400) == "invalid_request"
    model = "claude-sonnet-4-5" if api == "anthropic" else "gpt-4o-mini"
    for budget in ("2/day", None):
        name = f"k{budget is None}"
        key2 = rig.app(name, budget=budget)
        auth2 = [(b"Authorization", b"Bearer " + key2.encode()), *extra]
        for field in ENDPOINTS[path].max_fields:
            body = json.dumps({"model": model, "messages": MSGS, field: 10**30}).encode()
            resp = _post(rig, path, body, auth2)
            assert assert_wire_error(api, resp, 400) == "invalid_request"
    assert ledger_totals(rig) == (0, 0) and rig.wallet.budgets.open_reservations() == []
    assert rig.fake.served == []


def test_huge_max_tokens_is_refused_by_name(rig):
    key = rig.app(budget=None)
    auth = [(b"Authorization", b"Bearer " + key.encode())]
    body = json.dumps({"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 10**30})
    resp = _post(rig, "/v1/chat/completions", body.encode(), auth)
    assert assert_wire_error("openai", resp, 400) == "invalid_request"
    assert resp.json()["error"]["param"] == "max_tokens"
    ok = json.dumps({"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 2**31 - 1})
    assert _post(rig, "/v1/chat/completions", ok.encode(), auth).status == 200


@pytest.mark.parametrize(
    "value",
    [
        b"Bearer aw_sess_abc.\xc3\xa9\xc3\xa9",
        b"Bearer aw_app_\xff\xfe0123456789abcdefghijklmn",
        b"Bearer aw_app_\xc3\xa90123456789abcdefghijklmn",
    ],
)
def test_non_ascii_keys_and_tokens(make_engine, value):
    rig = make_engine(consent_timeout_s=0.0)
    port = rig.engine.port
    body = json.dumps({"model": "gpt-4o-mini", "messages": MSGS}).encode()
    auth = (b"Authorization", value)
    resp = raw_request(port, "POST", "/v1/chat/completions", [JSON, auth], body)
    assert assert_wire_error("openai", resp, 403) == "consent_required"
    resp = raw_request(port, "POST", "/wallet/v1/token", [(b"Authorization", value)])
    assert assert_wire_error("openai", resp, 403) == "consent_required"
    resp = raw_request(port, "GET", "/wallet/v1/me", [(b"Authorization", value)])
    assert assert_wire_error("openai", resp, 403) == "consent_required"
    resp = raw_request(port, "GET", "/admin/v1/status", [(b"Authorization", value)])
    assert resp.status == 401 and resp.json()["error"]["code"] == "admin_token_required"
    xkey = value.removeprefix(b"Bearer ")
    # a body the wallet can serve: a keyless call's body is checked before it is held
    claude = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": MSGS})
    resp = raw_request(
        port, "POST", "/v1/messages", [JSON, ANTHROPIC, (b"x-api-key", xkey)], claude.encode()
    )
    assert assert_wire_error("anthropic", resp, 403) == "consent_required"


def test_connect_deep_body_unknown_charset_and_endless_lifetime(rig):
    port = rig.engine.port
    for headers, body in [
        ([JSON], b"[" * 100_000),
        ([(b"Content-Type", b"application/json; charset=no-such-charset")], b'{"app_name":"x"}'),
        ([JSON], json.dumps({"app_name": "x", "lifetime_s": 10**20}).encode()),
        ([JSON], json.dumps({"app_name": "x", "lifetime_s": True}).encode()),
    ]:
        resp = raw_request(port, "POST", "/wallet/v1/connect", headers, body)
        assert assert_wire_error("openai", resp, 400) == "invalid_request"
    assert rig.engine.consent is not None and rig.engine.consent.pending() == []


BAD_APPROVALS = [
    b"[1]",
    b"{bad",
    b'"text"',
    b'{"budget": "nope"}',
    b'{"budget": 5}',
    b'{"lifetime_s": "x"}',
    b'{"lifetime_s": 99999999999999}',
    b'{"lifetime_s": 0}',
    b'{"models": "abc"}',
    b'{"models": [1]}',
    b'{"models": [""]}',
    b'{"once": "false"}',
]


def test_admin_bad_bodies_are_refused_and_change_nothing(rig):
    port, token = rig.engine.port, rig.engine.admin_token

    def admin(path: str, body: bytes) -> RawResponse:
        auth = (b"Authorization", signed(rig.url, token, "POST", path, body).encode())
        return raw_request(port, "POST", path, [JSON, auth], body)

    connect = json.dumps({"app_name": "asker", "budget": "1/day"}).encode()
    req_id = raw_request(port, "POST", "/wallet/v1/connect", [JSON], connect).json()["id"]
    apps_before = len(rig.wallet.apps.list())
    for body in BAD_APPROVALS:
        resp = admin(f"/admin/v1/consent/{req_id}/approve", body)
        assert assert_wire_error("openai", resp, 400) == "invalid_request", body
    for body in (b"[]", b"{bad", b'{"always": 1}'):
        resp = admin(f"/admin/v1/consent/{req_id}/deny", body)
        assert assert_wire_error("openai", resp, 400) == "invalid_request", body
    assert len(rig.wallet.apps.list()) == apps_before
    # still pending: a good answer goes through
    good = json.dumps({"budget": "0.50/day", "models": ["gpt-4o-mini"], "lifetime_s": 3600})
    resp = admin(f"/admin/v1/consent/{req_id}/approve", good.encode())
    assert resp.status == 200, resp.body
    assert resp.json()["answer"]["budget"] == "0.50/day"


def test_a_route_answers_in_its_own_shape_whatever_the_headers(rig):
    """The guard and the middleware used to pick Anthropic's shape for any request saying
    anthropic-version, while the proxy answered the same route in OpenAI's."""
    port, key = rig.engine.port, rig.app()
    auth = (b"Authorization", b"Bearer " + key.encode())
    evil = (b"Origin", b"http://evil.example")
    for path, api in (("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")):
        for extra in ([ANTHROPIC], []):
            resp = raw_request(port, "POST", path, [JSON, auth, evil, *extra], b"{}")
            assert assert_wire_error(api, resp, 403) == "forbidden_origin"
            resp = raw_request(port, "POST", path, [JSON, auth, *extra], b"{nope")
            assert assert_wire_error(api, resp, 400) == "invalid_request"
    # elsewhere anthropic-version still chooses Anthropic's shape
    resp = raw_request(port, "GET", "/v1/nothing", [ANTHROPIC])
    assert assert_wire_error("anthropic", resp, 404) == "not_found"
