"""The official SDKs, sync and async, streaming and not, work unmodified through the wallet,
and receive exactly what the upstream sent."""

import asyncio

import httpx

from aiwallet.domain.money import usd_string
from fakeupstream import OPENAI_KEY

MSGS = [{"role": "user", "content": "tell me something short"}]


def test_openai_chat_sync(rig):
    key = rig.app()
    raw = rig.openai(key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSGS
    )
    r = raw.parse()
    # prompt: 4 words + 4 + 3 = 11 tokens; reply 12 tokens
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (11, 12)
    # 11 × $0.15/1M + 12 × $0.60/1M = $0.00000165 + $0.0000072 = $0.00000885
    assert raw.headers["x-aiwallet-cost-usd"] == "0.000008850"
    assert raw.headers["x-aiwallet-budget-remaining-usd"] == usd_string(2_000_000_000 - 8_850)
    assert raw.headers["x-aiwallet-request-id"].startswith("awreq_")
    served = rig.fake.served[-1]
    assert (
        served.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    )  # the wallet's key went upstream
    assert served.headers["x-aiwallet-request-id"] == raw.headers["x-aiwallet-request-id"]
    [entry] = rig.ledger_rows()
    assert entry["amount_nano"] == 8_850 and entry["token_source"] == "provider"
    assert entry["price_row_ref"].startswith("models.dev:openai/gpt-4o-mini@")
    [req] = rig.requests()
    assert (req["input_tokens"], req["output_tokens"], req["status"]) == (11, 12, 200)


def test_openai_chat_stream_is_byte_identical_to_direct(rig):
    key = rig.app()
    body = {"model": "gpt-4o-mini", "messages": MSGS, "stream": True}
    direct = httpx.post(
        rig.fake.base_url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {OPENAI_KEY}"},
    ).content
    via = httpx.post(
        rig.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert via.status_code == 200
    # the wallet asked upstream for usage (include_usage) and stripped it again
    upstream = rig.fake.served[-1]
    assert upstream.request_json["stream_options"] == {"include_usage": True}
    assert b'"usage"' in upstream.raw_out and b'"usage"' not in via.content
    assert via.content == direct
    [entry] = rig.ledger_rows()
    assert entry["token_source"] == "injected" and entry["amount_nano"] == 8_850


def test_openai_stream_with_client_usage_passes_it_through(rig):
    key = rig.app()
    chunks = list(
        rig.openai(key).chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage.total_tokens == 23
    assert rig.ledger_rows()[0]["token_source"] == "provider"


def test_openai_async_stream_and_non_stream(rig):
    key = rig.app()

    async def main():
        client = rig.async_openai(key)
        r = await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await client.close()
        return r, text

    r, text = asyncio.run(main())
    assert r.choices[0].message.content == text == "".join(f"w{i} " for i in range(12))
    assert len(rig.ledger_rows()) == 2


def test_responses_embeddings_models(rig):
    key = rig.app()
    client = rig.openai(key)
    events = list(client.responses.create(model="o3", input="hello there friend", stream=True))
    assert events[-1].type == "response.completed"
    r = client.responses.create(model="o3", input="hello there friend")
    assert r.usage.input_tokens == 6
    e = client.embeddings.create(model="text-embedding-3-small", input=["one two three"])
    assert e.usage.prompt_tokens == 3
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids and "claude-sonnet-4-5" not in ids
    rows = rig.ledger_rows()
    # o3: 6 × $2 + 12 × $8 per 1M = 108 µ$ each; embedding 3 × $0.02 per 1M = 0.06 µ$ → 60 nano
    assert [r["amount_nano"] for r in rows] == [108_000, 108_000, 60]


def test_anthropic_sync_async_stream_and_count_tokens(rig):
    key = rig.app()
    client = rig.anthropic(key)
    rig.fake.script(__import__("fakeupstream").Script(cached_tokens=2, cache_write_tokens=3))
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=MSGS) as s:
        final = s.get_final_message()
    assert final.usage.output_tokens == 12 and final.usage.cache_read_input_tokens == 2
    msg = client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=MSGS)
    assert msg.usage.input_tokens == 8  # 4 words + 3 per message + 1

    async def amain():
        ac = rig.async_anthropic(key)
        r = await ac.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MSGS)
        await ac.close()
        return r

    short = asyncio.run(amain())
    assert short.usage.output_tokens == 5 and short.stop_reason == "max_tokens"
    assert client.messages.count_tokens(model="claude-sonnet-4-5", messages=MSGS).input_tokens == 8
    rows = rig.ledger_rows()
    # stream (per 1M): input 3 × $3 + cache read 2 × $0.30 + cache write 3 × $3.75
    #   + output 12 × $15 = 200.85 µ$
    # plain: 8 × $3 + 12 × $15 = 204 µ$; short: 8 × $3 + 5 × $15 = 99 µ$; count_tokens is free
    assert [r["amount_nano"] for r in rows] == [200_850, 204_000, 99_000]


def test_anthropic_stream_bytes_unchanged(rig):
    key = rig.app()
    body = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": MSGS, "stream": True}
    via = httpx.post(
        rig.url + "/v1/messages",
        json=body,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    )
    assert via.status_code == 200 and via.content == rig.fake.served[-1].raw_out


def test_request_body_forwarded_byte_for_byte_unless_policy_changes_it(rig):
    key = rig.app()
    raw = b'{"messages": [{"role": "user", "content": "spacing  kept"}], "model": "gpt-4o-mini"}'
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    assert (
        httpx.post(rig.url + "/v1/chat/completions", content=raw, headers=headers).status_code
        == 200
    )
    assert rig.fake.served[-1].raw_in == raw
    # with a provider prefix the model name must change: then the body is re-encoded
    prefixed = raw.replace(b'"gpt-4o-mini"', b'"openai/gpt-4o-mini"')
    assert (
        httpx.post(rig.url + "/v1/chat/completions", content=prefixed, headers=headers).status_code
        == 200
    )
    assert rig.fake.served[-1].request_json["model"] == "gpt-4o-mini"
