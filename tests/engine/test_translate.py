"""OpenAI-SDK clients calling Claude models and Anthropic-SDK clients calling OpenAI-wire
models, through a real engine in front of the fake upstream: the SDKs' own parsers accept
every translated answer and event, the provider got its own wire format, and the ledger is
the provider's usage priced by the route's row."""

from __future__ import annotations

import anthropic
import openai
import pytest
from test_fault_matrix import TRANSPORT_ERRORS

from fakeupstream import ANTHROPIC_KEY, Script

SONNET_IN, SONNET_OUT = (
    3_000,
    15_000,
)  # $3 and $15 per 1M: claude-sonnet-4-5, nano-dollars per token
MINI_IN, MINI_OUT = 150, 600  # $0.15 and $0.60 per 1M: gpt-4o-mini, nano-dollars per token
REPLY = "".join(f"w{i} " for i in range(12))
CONVERSATION = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello there"},
]


MINI_CACHED = 80  # $0.08 per 1M (the catalog's row), a cached prompt token


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
    return uncached * MINI_IN + cached * MINI_CACHED + usage["completion_tokens"] * MINI_OUT


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
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hello there"}]}
    ]
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


# -- streams -----------------------------------------------------------------------------------
def test_openai_client_streams_claude_without_usage_chunk(rig):
    key = rig.app()
    chunks = list(
        rig.openai(key).chat.completions.create(
            model="anthropic/claude-sonnet-4-5", messages=CONVERSATION, stream=True
        )
    )
    assert all(c.object == "chat.completion.chunk" and c.usage is None for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    served = rig.fake.served[-1]
    assert served.path == "/v1/messages" and served.request_json["stream"] is True
    assert "stream_options" not in served.request_json
    [entry] = rig.ledger_rows()
    assert entry["amount_nano"] == sonnet_cost(served.reported) == 204_000
    assert entry["token_source"] == "provider"


def test_openai_client_stream_usage_chunk_when_asked(rig):
    key = rig.app()
    rig.fake.script(Script(cached_tokens=2, cache_write_tokens=3))
    chunks = list(
        rig.openai(key).chat.completions.create(
            model="claude-sonnet-4-5",
            messages=CONVERSATION,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    # OpenAI's prompt_tokens include every cached token: 3 uncached + 2 read + 3 written
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (8, 12)
    assert last.usage.prompt_tokens_details.cached_tokens == 2
    served = rig.fake.served[-1]
    assert served.reported["input_tokens"] == 3  # Anthropic's excludes them
    [entry] = rig.ledger_rows()
    # 3 × $3 + 2 × $0.30 + 3 × $3.75 + 12 × $15 per 1M
    assert entry["amount_nano"] == sonnet_cost(served.reported) == 200_850


def test_anthropic_client_streams_gpt(rig):
    key = rig.app()
    client = rig.anthropic(key)
    with client.messages.stream(
        model="gpt-4o-mini", max_tokens=50, system="be brief",
        messages=[{"role": "user", "content": "hello there"}],
    ) as stream:  # fmt: skip
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.content[0].text == REPLY and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (15, 12)
    served = rig.fake.served[-1]
    assert served.request_json["stream_options"] == {"include_usage": True}  # for the meter
    [entry] = rig.ledger_rows()
    assert entry["amount_nano"] == mini_cost(served.reported) == 9_450
    assert entry["token_source"] == "injected"


def test_anthropic_client_gets_cached_tokens_apart(rig):
    key = rig.app()
    rig.fake.script(Script(cached_tokens=5))
    with rig.anthropic(key).messages.stream(
        model="gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": "hello there"}]
    ) as stream:
        final = stream.get_final_message()
    # OpenAI: prompt 9 of which 5 cached; Anthropic's input excludes the cache reads
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (4, 5)
    [entry] = rig.ledger_rows()
    assert entry["amount_nano"] == mini_cost(rig.fake.served[-1].reported)


def test_cut_stream_is_billed_as_estimated_and_the_client_sees_it_cut(rig):
    key = rig.app()
    rig.fake.script(Script(cut_after_events=6))
    with pytest.raises((*TRANSPORT_ERRORS, openai.APIError)):
        list(
            rig.openai(key).chat.completions.create(
                model="claude-sonnet-4-5", messages=CONVERSATION, stream=True
            )
        )
    rig.fake.script(Script(cut_after_events=6))
    with (
        pytest.raises((*TRANSPORT_ERRORS, anthropic.APIError)),
        rig.anthropic(key).messages.stream(
            model="gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        stream.get_final_message()
    rows = rig.ledger_rows()
    assert [r["token_source"] for r in rows] == ["estimated", "estimated"]
    assert all(r["amount_nano"] > 0 for r in rows)


# -- tools -------------------------------------------------------------------------------------
WEATHER_OPENAI = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "the weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
WEATHER_ANTHROPIC = {
    "name": "weather",
    "description": "the weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.mark.parametrize("stream", [False, True])
def test_openai_client_tool_call_and_result_with_claude(rig, stream):
    key = rig.app()
    client = rig.openai(key)
    rig.fake.script(Script(tool_call="weather"))
    asked = {
        "model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "weather?"}],
        "tools": [WEATHER_OPENAI], "tool_choice": "required", "parallel_tool_calls": False,
    }  # fmt: skip
    if stream:
        chunks = list(client.chat.completions.create(**asked, stream=True))
        calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
        call_id, name = calls[0].id, calls[0].function.name
        arguments = "".join(tc.function.arguments or "" for tc in calls)
        finish = chunks[-1].choices[0].finish_reason
    else:
        r = client.chat.completions.create(**asked)
        [call] = r.choices[0].message.tool_calls
        call_id, name, arguments = call.id, call.function.name, call.function.arguments
        finish = r.choices[0].finish_reason
    assert (name, arguments, finish) == ("weather", '{"city":"Paris","days":2}', "tool_calls")
    sent = rig.fake.served[-1].request_json
    assert sent["tools"] == [WEATHER_ANTHROPIC]
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    # the tool result turn
    assistant = {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": call_id, "type": "function",
                        "function": {"name": name, "arguments": arguments}}],
    }  # fmt: skip
    result = {"role": "tool", "tool_call_id": call_id, "content": "sunny"}
    r2 = client.chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[*asked["messages"], assistant, result],
        tools=[WEATHER_OPENAI],
    )
    assert r2.choices[0].message.content == REPLY
    sent = rig.fake.served[-1].request_json
    assert sent["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": call_id, "name": "weather",
             "input": {"city": "Paris", "days": 2}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call_id,
             "content": [{"type": "text", "text": "sunny"}]}]},
    ]  # fmt: skip
    rows = rig.ledger_rows()
    assert [r["amount_nano"] for r in rows] == [sonnet_cost(s.reported) for s in rig.fake.served]


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_client_tool_use_and_result_with_gpt(rig, stream):
    key = rig.app()
    client = rig.anthropic(key)
    rig.fake.script(Script(tool_call="weather"))
    asked = {
        "model": "gpt-4o-mini", "max_tokens": 100,
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [WEATHER_ANTHROPIC], "tool_choice": {"type": "tool", "name": "weather"},
    }  # fmt: skip
    if stream:
        with client.messages.stream(**asked) as s:
            msg = s.get_final_message()
    else:
        msg = client.messages.create(**asked)
    assert msg.stop_reason == "tool_use"
    [text, use] = msg.content
    assert text.type == "text" and text.text == REPLY
    assert (use.type, use.name, use.input) == ("tool_use", "weather", {"city": "Paris", "days": 2})
    sent = rig.fake.served[-1].request_json
    assert sent["tools"] == [WEATHER_OPENAI]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    turn = [
        *asked["messages"],
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"},
            {"type": "text", "text": "and tomorrow?"}]},
    ]  # fmt: skip
    msg2 = client.messages.create(model="gpt-4o-mini", max_tokens=100, messages=turn,
                                  tools=[WEATHER_ANTHROPIC])  # fmt: skip
    assert msg2.content[0].text == REPLY and msg2.stop_reason == "end_turn"
    sent = rig.fake.served[-1].request_json
    assert sent["messages"][1:] == [
        {"role": "assistant", "content": REPLY, "tool_calls": [
            {"id": use.id, "type": "function",
             "function": {"name": "weather", "arguments": '{"city":"Paris","days":2}'}}]},
        {"role": "tool", "tool_call_id": use.id, "content": "sunny"},
        {"role": "user", "content": [{"type": "text", "text": "and tomorrow?"}]},
    ]  # fmt: skip
    rows = rig.ledger_rows()
    assert [r["amount_nano"] for r in rows] == [mini_cost(s.reported) for s in rig.fake.served]


# -- images ------------------------------------------------------------------------------------
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def test_images_both_ways(rig):
    key = rig.app()
    parts = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    rig.openai(key).chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": parts}]
    )
    assert rig.fake.served[-1].request_json["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    blocks = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    rig.anthropic(key).messages.create(
        model="gpt-4o-mini", max_tokens=20, messages=[{"role": "user", "content": blocks}]
    )
    assert rig.fake.served[-1].request_json["messages"][0]["content"] == parts[1:]


# -- refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
         "response_format"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"seed": 7}, "seed"),
        ({"temperature": 1.5}, "temperature"),
    ],
)  # fmt: skip
def test_openai_fields_claude_cannot_take_are_refused_in_openai_shape(rig, extra, param):
    key = rig.app()
    with pytest.raises(openai.BadRequestError) as err:
        rig.openai(key).chat.completions.create(
            model="claude-sonnet-4-5", messages=CONVERSATION, **extra
        )
    body = err.value.body
    assert err.value.status_code == 400
    assert body["code"] == "invalid_request" and body["param"] == param and param in body["message"]
    assert rig.fake.served == [] and rig.ledger_rows() == []


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
        ({"top_k": 5}, "top_k"),
    ],
)
def test_anthropic_fields_gpt_cannot_take_are_refused_in_anthropic_shape(rig, extra, param):
    key = rig.app()
    with pytest.raises(anthropic.BadRequestError) as err:
        rig.anthropic(key).messages.create(
            model="gpt-4o-mini", max_tokens=20, messages=[{"role": "user", "content": "hi"}],
            extra_body=extra,
        )  # fmt: skip
    body = err.value.body
    assert err.value.status_code == 400 and body["type"] == "error"
    assert body["error"]["code"] == "invalid_request" and param in body["error"]["message"]
    assert rig.fake.served == [] and rig.ledger_rows() == []


def test_provider_error_reaches_the_client_in_its_own_shape(rig):
    key = rig.app()
    rig.fake.script(Script(status=429, retry_after=120))  # past the retry cap: relayed
    with pytest.raises(openai.RateLimitError) as err:
        rig.openai(key).chat.completions.create(model="claude-sonnet-4-5", messages=CONVERSATION)
    assert "rate limit" in err.value.body["message"]
    rig.fake.script(Script(echo_key="error", status=404))
    with pytest.raises(anthropic.NotFoundError) as err2:
        rig.anthropic(key).messages.create(
            model="gpt-4o-mini", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
    assert err2.value.body["error"]["type"] == "not_found_error"
    assert "[redacted]" in err2.value.body["error"]["message"]  # the echoed key scrubbed


def test_other_endpoints_still_refuse_the_other_format(rig):
    key = rig.app()
    with pytest.raises(openai.InternalServerError) as err:
        rig.openai(key).responses.create(model="claude-sonnet-4-5", input="hi")
    assert err.value.status_code == 503 and err.value.body["code"] == "no_provider"


@pytest.mark.parametrize("echo", ["answer", "escaped", "split"])
def test_a_key_the_provider_echoes_never_reaches_the_client_translated(rig, echo):
    key = rig.app()
    client = rig.openai(key)
    rig.fake.script(Script(echo_key=echo), times=2)
    whole = client.chat.completions.create(model="claude-sonnet-4-5", messages=CONVERSATION)
    chunks = list(
        client.chat.completions.create(
            model="claude-sonnet-4-5", messages=CONVERSATION, stream=True
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    for text in (whole.choices[0].message.content, streamed):
        assert text.endswith("[redacted]") and ANTHROPIC_KEY not in text
        assert ANTHROPIC_KEY[:20] not in text
