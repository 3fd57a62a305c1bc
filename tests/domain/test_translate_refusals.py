"""What one wire format cannot say in the other is refused, naming the field."""

from __future__ import annotations

import pytest

from aiwallet.domain.translate import Untranslatable
from aiwallet.domain.translate import anthropic_to_openai as a2o
from aiwallet.domain.translate import openai_to_anthropic as o2a

USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("chat", "param"),
    [
        ({"messages": [USER, {"role": "system", "content": "late"}]}, "messages[1]"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "hi", "name": "bob"}]}, "messages[0].name"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]}]},
         "messages[0].content[0].image_url.detail"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}]},
         "messages[0].content[0].image_url.url"),
        ({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]},
         "messages[0].content[0].type"),
        ({"messages": [USER], "tools": [{"type": "function", "function": {
            "name": "f", "strict": True}}]}, "tools[0].function.strict"),
        ({"messages": [USER], "tools": [{"type": "custom", "custom": {"name": "f"}}]},
         "tools[0].type"),
        ({"messages": [USER], "response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": [USER], "reasoning_effort": "high"}, "reasoning_effort"),
        ({"messages": [USER], "stream_options": {"include_obfuscation": True}},
         "stream_options.include_obfuscation"),
        ({"messages": [USER], "presence_penalty": 0.5}, "presence_penalty"),
        ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "f", "arguments": "not json"}}]}]},
         "messages[0].tool_calls[0].function.arguments"),
    ],
)  # fmt: skip
def test_chat_requests_claude_cannot_take(chat, param):
    with pytest.raises(Untranslatable) as err:
        o2a.messages_request({"model": "m", **chat}, model="m", max_tokens=10)
    assert err.value.param == param and err.value.code == "invalid_request"
    assert param in str(err.value) and "Leave it out" in str(err.value)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "thinking"),
        ({"top_k": 3}, "top_k"),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0].type"),
        ({"messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "data": "x"}}]}]},
         "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": "x", "is_error": True}]}]},
         "messages[0].content[0].is_error"),
        ({"messages": [{"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hm", "signature": "s"}]}]},
         "messages[0].content[0].type"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
        ({"mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]}, "mcp_servers"),
    ],
)  # fmt: skip
def test_messages_requests_gpt_cannot_take(body, param):
    request = {"model": "m", "max_tokens": 10, "messages": [USER], **body}
    with pytest.raises(Untranslatable) as err:
        a2o.chat_request(request, model="m")
    assert err.value.param == param and param in str(err.value)


def test_defaults_are_not_refusals():
    chat = {
        "model": "m",
        "messages": [USER],
        "n": 1,
        "logprobs": False,
        "store": False,
        "response_format": {"type": "text"},
        "frequency_penalty": 0,
        "modalities": ["text"],
    }
    assert o2a.messages_request(chat, model="m", max_tokens=7)["max_tokens"] == 7
    body = {"model": "m", "max_tokens": 5, "messages": [USER], "thinking": {"type": "disabled"}}
    assert a2o.chat_request(body, model="m", max_field="max_tokens")["max_tokens"] == 5


def test_tool_results_come_first_in_their_turn_and_parallel_calls_can_be_turned_off():
    chat = {
        "model": "m",
        "messages": [
            USER,
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "a", "content": "1"},
            {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "2"}]},
            {"role": "user", "content": "thanks"},
        ],
        "parallel_tool_calls": False,
    }  # fmt: skip
    out = o2a.messages_request(chat, model="m", max_tokens=10)
    last = out["messages"][-1]["content"]
    assert [b["type"] for b in last] == ["tool_result", "tool_result", "text"]
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
