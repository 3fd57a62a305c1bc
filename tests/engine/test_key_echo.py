"""Issue 12, deliverable 1: a provider that echoes the wallet's key reaches no app with it.

Each test reproduces one break an adversarial tester found (the fake upstream echoes the
provider key it received: ``Script(echo_key=...)``) and shows what the app receives now: no
form of the key (as is, a long fragment, JSON-escaped, URL-encoded), still valid JSON in the
caller's error shape, and the request log and ledger as they would be without the echo; the
engine says it (an ``upstream.echoed_secret`` event, a warning in its log, and a note on the
ledger row when the request was billed). The leak scan (tests/leakscan.py) also scans every
response these tests received.
"""

from __future__ import annotations

import json
import logging

import anthropic
import httpx
import openai
import pytest

import leakscan
from aiwallet.engine import relay
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY, Script
from fakeupstream.common import json_escaped

MSGS = [{"role": "user", "content": "hello there"}]
ECHO_STATUSES = (400, 404, 408, 409, 413, 422, 429)

APIS = {
    "chat": (
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": MSGS},
        OPENAI_KEY,
    ),
    "responses": ("/v1/responses", {"model": "gpt-4o-mini", "input": "hello there"}, OPENAI_KEY),
    "messages": (
        "/v1/messages",
        {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": MSGS},
        ANTHROPIC_KEY,
    ),
}


def auth(api: str, key: str) -> dict[str, str]:
    if api == "messages":
        return {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return {"Authorization": f"Bearer {key}"}


def secret_forms(key: str) -> list[bytes]:
    """What must not reach an app: the key, a long fragment of it, and its encodings."""
    return [
        key.encode(),
        key[len(key) // 2 - 10 : len(key) // 2 + 10].encode(),  # 20 characters of its body
        json_escaped(key).encode(),
        "".join(f"%{b:02X}" for b in key.encode()).encode(),
    ]


def assert_clean(resp: httpx.Response, key: str) -> None:
    blob = resp.content + "".join(f"{k}: {v}\n" for k, v in resp.headers.items()).encode()
    for form in secret_forms(key):
        assert form not in blob
    for text in _strings(resp):
        assert key not in text  # nor once its JSON escapes are decoded


def _strings(resp: httpx.Response) -> list[str]:
    """Every JSON document the body holds, decoded (one, or one per SSE data line)."""
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        docs = [
            line[6:]
            for line in resp.text.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]
        return [json.dumps(json.loads(d), ensure_ascii=False) for d in docs]
    return [json.dumps(resp.json(), ensure_ascii=False)]


def post(rig, api: str, key: str, *, stream: bool = False, **extra) -> httpx.Response:
    path, body, _ = APIS[api]
    return httpx.post(
        rig.url + path,
        json={**body, **({"stream": True} if stream else {}), **extra},
        headers=auth(api, key),
        timeout=10,
    )


def only_request(rig) -> dict:
    rows = rig.requests()
    assert len(rows) == 1, rows
    assert rig.wallet.budgets.open_reservations() == []
    return rows[0]


def echo_note(rig, provider: str) -> bool:
    """The billed request's ledger row says the provider echoed its key."""
    note = rig.ledger_rows()[-1]["note"] or ""
    return f"the provider echoed the key of provider {provider!r}" in note


def echo_events(rig) -> list[dict]:
    return [p for name, p in rig.engine.events.history if name == "upstream.echoed_secret"]


# -- error answers of every relayed status ----------------------------------------------------
@pytest.mark.parametrize("api", list(APIS))
def test_error_bodies_echoing_the_key_are_scrubbed_for_every_relayed_status(rig, api, caplog):
    app_key = rig.app()
    _, _, provider_key = APIS[api]
    provider = "anthropic" if api == "messages" else "openai"
    caplog.set_level(logging.WARNING, logger="aiwallet.engine.proxy")
    for n, status in enumerate(ECHO_STATUSES):
        # a 429 is retried (engine/attempts.py): every attempt answers it
        rig.fake.script(Script(echo_key="error", status=status), times=3 if status == 429 else 1)
        resp = post(rig, api, app_key)
        assert resp.status_code == status
        assert_clean(resp, provider_key)
        body = resp.json()  # still valid JSON, in the provider's own error shape
        if api == "messages":
            assert body["type"] == "error" and "[redacted]" in body["error"]["message"]
        else:
            assert body["error"]["code"] == "echo" and "[redacted]" in body["error"]["message"]
        assert body == json.loads(resp.content)  # Content-Length matched the scrubbed body
        assert int(resp.headers["content-length"]) == len(resp.content)
        row = rig.requests()[0]
        assert row["status"] == status and row["error_code"] == "upstream_status"
        assert echo_events(rig)[-1] == {
            "request_id": row["id"],
            "provider": provider,
            "secrets": [f"the key of provider {provider!r}"],
        }
        assert len(rig.requests()) == n + 1
    assert rig.ledger_rows() == [] and rig.wallet.budgets.open_reservations() == []
    warnings = [r for r in caplog.records if "echoed" in r.getMessage()]
    assert len(warnings) == len(ECHO_STATUSES)
    assert all(
        provider in r.getMessage()
        and "awreq_" in r.getMessage()
        and provider_key not in r.getMessage()
        for r in warnings
    )


@pytest.mark.parametrize("mode", ["auth_header", "urlencoded", "masked"])
def test_other_forms_of_an_echoed_key_are_scrubbed(rig, mode):
    app_key = rig.app()
    rig.fake.script(Script(echo_key=mode, status=400))
    resp = post(rig, "chat", app_key)
    assert resp.status_code == 400
    assert_clean(resp, OPENAI_KEY)
    assert "[redacted]" in resp.json()["error"]["message"]
    assert echo_events(rig)[-1]["request_id"] == only_request(rig)["id"]


def test_a_masked_hint_of_the_key_is_not_a_secret_and_passes(rig):
    """OpenAI's "Incorrect API key provided: sk-abc…wxyz": a prefix and four characters."""
    app_key = rig.app()
    rig.fake.script(Script(echo_key="hint", status=400))
    resp = post(rig, "chat", app_key)
    message = resp.json()["error"]["message"]
    assert (
        message.startswith("Incorrect API key provided: sk-fake-") and "[redacted]" not in message
    )
    assert OPENAI_KEY[-4:] in message and OPENAI_KEY not in message
    assert only_request(rig)["error_code"] == "upstream_status" and echo_events(rig) == []


def test_the_sdks_see_the_scrubbed_error(rig):
    app_key = rig.app()
    rig.fake.script(Script(echo_key="error", status=400))
    with pytest.raises(openai.BadRequestError) as oa:
        rig.openai(app_key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert "[redacted]" in oa.value.message and OPENAI_KEY not in str(oa.value.body)
    rig.fake.script(Script(echo_key="error", status=429), times=3)  # each attempt
    with pytest.raises(anthropic.RateLimitError) as an:
        rig.anthropic(app_key).messages.create(
            model="claude-sonnet-4-5", max_tokens=20, messages=MSGS
        )
    assert "[redacted]" in an.value.message and ANTHROPIC_KEY not in an.value.message


# -- headers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("api", list(APIS))
@pytest.mark.parametrize("stream", [False, True])
def test_a_request_id_header_carrying_the_key_is_dropped(rig, api, stream):
    app_key = rig.app()
    _, _, provider_key = APIS[api]
    rig.fake.script(Script(echo_key="header"))
    resp = post(rig, api, app_key, stream=stream)
    assert resp.status_code == 200
    assert_clean(resp, provider_key)
    assert "x-request-id" not in resp.headers and "request-id" not in resp.headers
    # the other allow-listed headers still pass, and the answer is billed as usual
    limit = (
        "anthropic-ratelimit-requests-limit" if api == "messages" else "x-ratelimit-limit-requests"
    )
    assert resp.headers[limit]
    row = only_request(rig)
    assert (
        row["status"] == 200
        and row["error_code"] is None
        and row["token_source"] in ("provider", "injected")
    )
    assert echo_note(rig, "anthropic" if api == "messages" else "openai")
    assert rig.ledger_rows()[0]["amount_nano"] > 0


# -- 200 answers, whole and streamed ----------------------------------------------------------
@pytest.mark.parametrize("api", list(APIS))
@pytest.mark.parametrize("mode", ["answer", "escaped"])
def test_a_whole_answer_echoing_the_key_is_scrubbed_and_billed(rig, api, mode):
    app_key = rig.app()
    _, _, provider_key = APIS[api]
    rig.fake.script(Script(echo_key=mode))
    resp = post(rig, api, app_key)
    assert resp.status_code == 200
    assert_clean(resp, provider_key)
    assert "[redacted]" in json.dumps(resp.json())
    served = rig.fake.served[-1]
    assert served.key == provider_key  # the fake did echo the wallet's key
    row = only_request(rig)
    assert row["token_source"] in ("provider", "injected") and row["error_code"] is None
    assert echo_note(rig, "anthropic" if api == "messages" else "openai")
    ledger = rig.ledger_rows()[0]
    assert resp.headers["x-aiwallet-cost-usd"] and ledger["amount_nano"] == row["cost_nano"]
    reported = served.reported
    assert reported is not None
    assert row["output_tokens"] == reported.get("completion_tokens", reported.get("output_tokens"))


def test_the_sdks_read_a_scrubbed_answer(rig):
    app_key = rig.app()
    rig.fake.script(Script(echo_key="answer"))
    r = rig.openai(app_key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert r.choices[0].message.content.endswith(" [redacted]")
    rig.fake.script(Script(echo_key="escaped"))
    m = rig.anthropic(app_key).messages.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=MSGS
    )
    assert m.content[0].text.endswith(" [redacted]")


@pytest.mark.parametrize("api", list(APIS))
@pytest.mark.parametrize("mode", ["answer", "escaped", "split"])
def test_a_streamed_delta_echoing_the_key_is_scrubbed(rig, api, mode):
    app_key = rig.app()
    _, _, provider_key = APIS[api]
    rig.fake.script(Script(echo_key=mode))
    resp = post(rig, api, app_key, stream=True)
    assert resp.status_code == 200
    assert_clean(resp, provider_key)  # every data line is still a JSON document
    assert b"[redacted]" in resp.content
    row = only_request(rig)
    assert (
        row["status"] == 200
        and row["error_code"] is None
        and row["token_source"] in ("provider", "injected")
    )
    assert echo_note(rig, "anthropic" if api == "messages" else "openai")
    assert rig.ledger_rows()[0]["amount_nano"] == row["cost_nano"] > 0


def test_a_key_split_across_two_tcp_chunks_is_scrubbed(rig, monkeypatch):
    """The engine really read the key in two pieces (a spy on the real splitter sees a chunk
    end inside it), and the client still never sees it: events are scrubbed whole."""
    chunks: list[bytes] = []

    class SpySplitter(relay.SSESplitter):
        def feed(self, chunk: bytes):
            chunks.append(bytes(chunk))
            return super().feed(chunk)

    monkeypatch.setattr(relay, "SSESplitter", SpySplitter)
    app_key = rig.app()
    rig.fake.script(Script(echo_key="split"))
    with rig.openai(app_key).chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, stream=True
    ) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.endswith(" [redacted]") and OPENAI_KEY not in text
    half = OPENAI_KEY[: len(OPENAI_KEY) // 2].encode()
    assert any(c.endswith(half) for c in chunks), "the key did not arrive split"
    assert not any(OPENAI_KEY.encode() in c for c in chunks)
    row = only_request(rig)
    assert row["token_source"] in ("provider", "injected") and echo_note(rig, "openai")


def test_an_anthropic_error_event_echoing_the_key_is_scrubbed(rig):
    app_key = rig.app()
    rig.fake.script(Script(echo_key="error_event"))
    resp = post(rig, "messages", app_key, stream=True)
    assert_clean(resp, ANTHROPIC_KEY)
    events = [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "invalid x-api-key: [redacted]"},
    }
    row = only_request(rig)
    assert row["error_code"] == "upstream_unavailable" and row["token_source"] == "estimated"
    assert echo_note(rig, "anthropic")
    # and through the SDK: its error carries the scrubbed message
    rig.fake.script(Script(echo_key="error_event"))
    with (
        pytest.raises(anthropic.APIStatusError) as err,
        rig.anthropic(app_key).messages.stream(
            model="claude-sonnet-4-5", max_tokens=50, messages=MSGS
        ) as s,
    ):
        for _ in s:
            pass
    assert ANTHROPIC_KEY not in str(err.value) and "[redacted]" in str(err.value.body)


# -- what the scrubber cannot read is not relayed -----------------------------------------------
def test_an_answer_compressed_against_the_wallets_ask_is_refused(rig):
    app_key = rig.app()
    rig.fake.script(Script(echo_key="answer", gzip=True))
    resp = post(rig, "chat", app_key)
    assert resp.status_code == 502 and resp.json()["error"]["code"] == "upstream_unavailable"
    assert "encoding" in resp.json()["error"]["message"]
    sent = {k.lower(): v for k, v in rig.fake.served[-1].headers.items()}
    assert sent["accept-encoding"] == "identity"  # the wallet asked for none
    assert rig.wallet.budgets.open_reservations() == []


def test_the_engine_scrubs_every_secret_the_wallet_holds(rig):
    """Not only the provider keys used so far: every key configured, the vault's other
    entries (the receipt-signing key, in its hex and base64 forms), the admin token and the
    session-token key, loaded at start and on reload."""
    spare = "sk-spare-" + "q" * 40
    leakscan.register_key(spare)
    rig.wallet.add_provider("spare", kind="openai", api_key=spare, base_url=rig.fake.base_url)
    rig.wallet.signing_key()  # made once, kept in the vault
    assert rig.engine.reload_soon()
    labels = set(rig.engine.state.scrubber.matcher.labels)
    assert {
        "the key of provider 'openai'",
        "the key of provider 'anthropic'",
        "the key of provider 'spare'",
        "the vault secret 'wallet:receipt-signing-key'",
        "the admin token",
        "the session-token key",
    } <= labels
    scrub = rig.engine.state.scrubber.scrub_bytes
    token = rig.engine.admin_token
    assert scrub(f'{{"t":"{token}"}}'.encode()) == b'{"t":"[redacted]"}'
    assert b"q" * 40 not in scrub(b"x sk-spare-" + b"q" * 40 + b" y")
