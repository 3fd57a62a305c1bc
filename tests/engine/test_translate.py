"""OpenAI-SDK clients calling Claude models and Anthropic-SDK clients calling OpenAI-wire
models, through a real engine in front of the fake upstream: the SDKs' own parsers accept
every translated answer and event, the provider got its own wire format, and the ledger is
the provider's usage priced by the route's row."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from fakeupstream import Script

SONNET_IN, SONNET_OUT = 3_000, 15_000  # $3 and $15 per 1M: claude-sonnet-4-5, nano-dollars per token
MINI_IN, MINI_OUT = 150, 600  # $0.15 and $0.60 per 1M: gpt-4o-mini, nano-dollars per token
REPLY = "".join(f"w{i} " for i in range(12))
CONVERSATION = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello there"},
]


def sonnet_cost(usage: dict) -> int:
    """An Anthropic usage report priced at claude-sonnet-4-5's row (input excludes cache)."""
    return (
        usage["input_tokens"] * SONNET_IN
        + usage["cache_read_input_tokens"] * 300
        + usage["cache_creation_input_tokens"] * 3_750
        + usage["output_tokens"] * SONNET_OUT
    )


def mini_cost(usage: dict) -> int:
    """An OpenAI usage report priced at gpt-4o-mini's row (prompt includes cached tokens)."""
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    uncached = usage["prompt_tokens"] - cached
    return uncached * MINI_IN + cached * 75 + usage["completion_tokens"] * MINI_OUT


def test_openai_client_calls_claude(rig):
    key = rig.app()
    raw = rig.openai(key).chat.completions.with_raw_response.create(
        model="claude-sonnet-4-5", messages=CONVERSATION, temperature=0.5, stop=["END"]
    )
    r = raw.parse()
    served = rig.fake.served[-1]
    assert served.path == "/v1/messages" and served.api == "anthropic"
    sent = served.request_json
    assert sent["system"] == [{"type": "text", "text": "be brief"}]
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
    assert sent["max_tokens"] == 64_000  # the model's output limit: the client set none
    assert (sent["temperature"], sent["stop_sequences"]) == (0.5, ["END"])
    assert r.object == "chat.completion" and r.choices[0].message.content == REPLY
    assert r.choices[0].finish_reason == "stop"
    # Anthropic input: 2 words + 3 per message + 2 system words + 1 = 8; 12 out
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (8, 12, 20)
    [entry] = rig.ledger_rows()
    assert entry["amount_nano"] == sonnet_cost(served.reported) == 204_000
    assert entry["price_row_ref"].startswith("models.dev:anthropic/claude-sonnet-4-5@")
    assert raw.headers["x-aiwallet-cost-usd"] == "0.000204000"
    [req] = rig.requests()
    assert req["endpoint"] == "/v1/messages" and req["model"] == "claude-sonnet-4-5"


def test_anthropic_client_calls_gpt(rig):
    key = rig.app()
    msg = rig.anthropic(key).messages.create(
        model="gpt-4o-mini", max_tokens=50, system="be brief",
        messages=[{"role": "user", "content": "hello there"}], stop_sequences=["END"],
        extra_body={"temperature": 0.25},  # this SDK version has no sampling arguments
    )  # fmt: skip
    served = rig.fake.served[-1]
    assert served.path == "/v1/chat/completions" and served.api == "openai"
    sent = served.request_json
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"},
    ]
    assert (sent["max_completion_tokens"], sent["stop"], sent["temperature"]) == (50, ["END"], 0.25)
    assert msg.type == "message" and msg.content[0].text == REPLY
    assert msg.stop_reason == "end_turn"
    # OpenAI prompt: (2 + 4) × 2 messages + 3 = 15; 12 out
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (15, 12)
    [entry] = rig.ledger_rows()
    assert entry["amount_nano"] == mini_cost(served.reported) == 9_450
    assert entry["price_row_ref"].startswith("models.dev:openai/gpt-4o-mini@")
    [req] = rig.requests()
    assert req["endpoint"] == "/v1/chat/completions" and req["model"] == "gpt-4o-mini"
