"""Bad input gets a clear error in the caller's wire format and costs nothing."""

import socket

import anthropic
import httpx
import openai
import pytest

from aiwallet.engine.client import AdminAuth
from aiwallet.engine.openapi import openapi_document
from engine.conftest import make_rig

MSGS = [{"role": "user", "content": "hi"}]


def post(rig, path, *, key=None, json=None, content=None, headers=None, anthropic_style=False):
    h = dict(headers or {})
    if key and anthropic_style:
        h.update({"x-api-key": key, "anthropic-version": "2023-06-01"})
    elif key:
        h["Authorization"] = f"Bearer {key}"
    return httpx.post(rig.url + path, json=json, content=content, headers=h, timeout=10)


def assert_openai_error(resp, status, code):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code and err["message"] and err["type"]
    assert resp.headers["x-aiwallet-error-code"] == code


def assert_anthropic_error(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["type"] == "error" and body["error"]["code"] == code and body["error"]["message"]


def test_no_key_unknown_key_and_revoked(rig):
    body = {"model": "gpt-4o-mini", "messages": MSGS}
    assert_openai_error(post(rig, "/v1/chat/completions", json=body), 403, "consent_required")
    # a key in the wallet's format that it never issued
    assert_openai_error(
        post(rig, "/v1/chat/completions", key="aw_app_" + "x" * 40, json=body),
        401,
        "invalid_app_key",
    )
    me = httpx.get(
        rig.url + "/wallet/v1/me", headers={"Authorization": "Bearer aw_app_" + "x" * 40}
    )
    assert_openai_error(me, 401, "invalid_app_key")
    assert "401" in openapi_document(60.0)["paths"]["/wallet/v1/me"]["get"]["responses"]
    claude = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": MSGS}
    assert_anthropic_error(
        post(rig, "/v1/messages", key="sk-ant-not-a-wallet-key", json=claude, anthropic_style=True),
        403,
        "consent_required",
    )
    # a keyless body the wallet cannot serve is refused before anyone is asked (gpt-4o-mini
    # is served to Anthropic clients translated, but not without Anthropic's max_tokens)
    assert_anthropic_error(
        post(rig, "/v1/messages", key="sk-ant-not-a-wallet-key", json=body, anthropic_style=True),
        400,
        "invalid_request",
    )
    key = rig.app("victim")
    assert post(rig, "/v1/chat/completions", key=key, json=body).status_code == 200
    rig.wallet.revoke_app("victim")  # the running engine is told at once
    assert_openai_error(
        post(rig, "/v1/chat/completions", key=key, json=body), 403, "consent_required"
    )
    assert len(rig.fake.served) == 1


def test_malformed_bodies(rig):
    key = rig.app()
    assert_openai_error(
        post(
            rig,
            "/v1/chat/completions",
            key=key,
            content=b"{nope",
            headers={"Content-Type": "application/json"},
        ),
        400,
        "invalid_request",
    )
    assert_openai_error(
        post(
            rig,
            "/v1/chat/completions",
            key=key,
            content=b"[1,2]",
            headers={"Content-Type": "application/json"},
        ),
        400,
        "invalid_request",
    )
    assert_openai_error(
        post(
            rig,
            "/v1/chat/completions",
            key=key,
            content=b"model=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        415,
        "unsupported_media_type",
    )
    assert_openai_error(
        post(rig, "/v1/chat/completions", key=key, json={"messages": MSGS}), 400, "invalid_request"
    )
    assert_anthropic_error(
        post(
            rig,
            "/v1/messages",
            key=key,
            json={"model": "claude-sonnet-4-5", "messages": MSGS},
            anthropic_style=True,
        ),
        400,
        "invalid_request",
    )
    assert rig.fake.served == [] and rig.ledger_rows() == []


def test_unknown_routes_and_methods_in_each_shape(rig):
    assert_openai_error(httpx.get(rig.url + "/v1/nothing-here"), 404, "not_found")
    assert_anthropic_error(
        httpx.post(rig.url + "/v1/messages/batches", headers={"anthropic-version": "2023-06-01"}),
        404,
        "not_found",
    )
    assert_openai_error(httpx.get(rig.url + "/v1/chat/completions"), 405, "method_not_allowed")
    assert httpx.get(rig.url + "/healthz").json() == {"ok": True}


def test_unknown_model_and_model_not_allowed(rig):
    key = rig.app(models=["gpt-4o-mini"])
    client = rig.openai(key)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-nonexistent-9", messages=MSGS)
    assert err.value.body["code"] == "unknown_model"
    with pytest.raises(openai.PermissionDeniedError) as err2:
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert err2.value.body["code"] == "model_not_allowed" and "gpt-4o-mini" in err2.value.message
    with pytest.raises(anthropic.PermissionDeniedError):
        rig.anthropic(key).messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MSGS)
    assert rig.fake.served == []


def test_body_over_limit(tmp_path, fake):
    small = make_rig(tmp_path, fake, max_body=64 * 1024)
    try:
        key = small.app()
        big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x " * 40_000}]}
        assert_openai_error(
            post(small, "/v1/chat/completions", key=key, json=big), 413, "payload_too_large"
        )
        chunked = post(
            small,
            "/v1/chat/completions",
            key=key,
            content=iter([b'{"model":', b'"x"' + b" " * 70_000 + b"}"]),
            headers={"Content-Type": "application/json"},
        )
        assert_openai_error(chunked, 413, "payload_too_large")
        assert small.ledger_rows() == []
    finally:
        small.engine.stop()


def test_paused_wallet_and_paused_app(rig):
    key = rig.app()
    rig.wallet.set_paused(True)
    with pytest.raises(openai.APIStatusError) as err:
        rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.status_code == 423 and err.value.body["code"] == "wallet_paused"
    rig.wallet.set_paused(False)
    rig.wallet.set_app_paused("script", True)
    with pytest.raises(openai.APIStatusError) as err:
        rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.status_code == 423 and "paused this app" in err.value.message
    rig.wallet.set_app_paused("script", False)
    assert (
        rig.openai(key)
        .chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        .usage.total_tokens
        == 20
    )


def test_provider_keys_never_reach_the_client(rig):
    from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY, Script

    key = rig.app()
    seen = []
    rig.fake.script(Script(status=500))
    seen.append(
        post(rig, "/v1/chat/completions", key=key, json={"model": "gpt-4o-mini", "messages": MSGS})
    )
    seen.append(
        post(
            rig,
            "/v1/chat/completions",
            key=key,
            json={"model": "gpt-4o-mini", "messages": MSGS, "stream": True},
        )
    )
    seen.append(
        post(
            rig,
            "/v1/messages",
            key=key,
            json={"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": MSGS},
            anthropic_style=True,
        )
    )
    seen.append(httpx.get(rig.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}))
    for resp in seen:
        blob = resp.content + str(resp.headers).encode()
        assert OPENAI_KEY.encode() not in blob and ANTHROPIC_KEY.encode() not in blob


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_upstream_refused_connection(rig):
    key = rig.app()
    rig.wallet.add_provider(
        "openai",
        kind="openai",
        api_key="sk-dead-000000000000000000000000",
        base_url=f"http://127.0.0.1:{_closed_port()}/v1",
        replace=True,
    )
    with pytest.raises(openai.APIStatusError) as err:
        rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.status_code == 502 and err.value.body["code"] == "upstream_unavailable"
    [req] = rig.requests()
    assert req["error_code"] == "upstream_unavailable" and req["cost_nano"] == 0
    assert rig.wallet.budgets.open_reservations() == []


def test_a_wallet_error_in_a_handler_keeps_its_status(tmp_path, fake):
    """Admin approve with a blank model name gets past the route's own checks and is refused by
    Wallet.create_app (InvalidInput): a 400 with its code, not a 500; the request stays
    pending and a good answer still works."""
    patient = make_rig(tmp_path, fake, consent_timeout_s=20)
    try:
        asked = httpx.post(patient.url + "/wallet/v1/connect", json={"app_name": "blank"})
        assert asked.status_code == 202, asked.text
        req_id = asked.json()["id"]
        admin = AdminAuth(patient.engine.admin_token)
        url = f"{patient.url}/admin/v1/consent/{req_id}/approve"
        resp = httpx.post(url, json={"models": [" "]}, auth=admin)
        assert_openai_error(resp, 400, "invalid_request")
        assert resp.json()["error"]["type"] == "invalid_request_error"
        resp = httpx.post(
            url, json={"models": [" "]}, headers={"anthropic-version": "2023-06-01"}, auth=admin
        )
        assert_anthropic_error(resp, 400, "invalid_request")
        assert resp.json()["error"]["type"] == "invalid_request_error"
        assert httpx.post(url, json={"models": ["gpt-4o-mini"]}, auth=admin).status_code == 200
    finally:
        patient.engine.stop()
        patient.wallet.close()


def test_anthropic_budget_refusal_is_a_billing_error(rig):
    key = rig.app(budget="0.000001 total")
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1000, "messages": MSGS}
    resp = post(rig, "/v1/messages", key=key, json=body, anthropic_style=True)
    assert_anthropic_error(resp, 402, "budget_exceeded")
    assert resp.json()["error"]["type"] == "billing_error"
    with pytest.raises(anthropic.APIStatusError) as err:
        rig.anthropic(key).messages.create(
            model="claude-sonnet-4-5", max_tokens=1000, messages=MSGS
        )
    assert err.value.status_code == 402 and err.value.body["error"]["type"] == "billing_error"
    assert rig.fake.served == []


def test_a_long_query_is_answered_in_the_callers_shape(rig):
    """Past aiohttp's 8 KiB request-line default its parser answers in plain text; the
    engine's own limit is higher, so such a request reaches a route and its wire shape."""
    key = rig.app()
    ids = ",".join(f"awreq_{i:032x}" for i in range(240))  # ~9.3 KB of query
    resp = httpx.get(
        rig.url + f"/wallet/v1/me/requests?settling={ids}",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert resp.headers["content-type"].startswith("application/json"), resp.text[:200]
    assert resp.status_code < 500
