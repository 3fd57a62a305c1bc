"""Translating one way and back gives the same conversation, answer and stream (property
tests), and a stream is translated as it comes: each upstream event's output is out at once."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aiwallet.domain.translate import anthropic_to_openai as a2o
from aiwallet.domain.translate import openai_to_anthropic as o2a
from aiwallet.domain.translate.stream import AnthropicToChat, ChatToAnthropic, parse_sse, sse
from aiwallet.domain.usage import Usage

words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
names = st.from_regex(r"[a-z][a-z_]{0,9}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | words,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)
args = st.dictionaries(names, json_values, max_size=3)
images = st.sampled_from(
    [
        "data:image/png;base64,iVBORw0KGgo=",
        "data:image/jpeg;base64,/9j/4AAQ",
        "https://example.com/cat.png",
    ]
)


@st.composite
def conversations(draw: Any) -> list[dict[str, Any]]:
    """OpenAI chat messages: an optional system prompt, then user turns (text and images),
    assistant turns (text, tool calls or both) and the tool results that answer calls."""
    msgs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": draw(words)})
    for turn in range(draw(st.integers(1, 4))):
        parts = [{"type": "text", "text": draw(words)}]
        for url in draw(st.lists(images, max_size=2)):
            parts.append({"type": "image_url", "image_url": {"url": url}})
        msgs.append({"role": "user", "content": parts})
        calls = [
            {"id": f"call_{turn}_{i}", "type": "function",
             "function": {"name": draw(names), "arguments": json.dumps(draw(args))}}
            for i in range(draw(st.integers(0, 2)))
        ]  # fmt: skip
        said = draw(st.one_of(st.none(), words)) if calls else draw(words)
        assistant: dict[str, Any] = {"role": "assistant", "content": said}
        if calls:
            assistant["tool_calls"] = calls
        msgs.append(assistant)
        for call in calls:
            msgs.append({"role": "tool", "tool_call_id": call["id"], "content": draw(words)})
    return msgs


def _normal(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in msgs:
        m = dict(m)
        if m.get("tool_calls"):  # arguments as parsed JSON: spacing is not meaning
            m["tool_calls"] = [
                {
                    **c,
                    "function": {
                        **c["function"],
                        "arguments": json.loads(c["function"]["arguments"]),
                    },
                }
                for c in m["tool_calls"]
            ]
        out.append(m)
    return out


@settings(max_examples=200, deadline=None)
@given(conversations(), st.integers(1, 100_000))
def test_chat_request_round_trips_through_messages(msgs, max_tokens):
    chat = {"model": "x", "messages": msgs, "max_tokens": max_tokens, "stop": ["END"]}
    messages = o2a.messages_request(chat, model="claude", max_tokens=64_000)
    roles = [t["role"] for t in messages["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # turns alternate
    back = a2o.chat_request(messages, model="x")
    assert _normal(back["messages"]) == _normal(msgs)
    assert (back["max_completion_tokens"], back["stop"]) == (max_tokens, ["END"])


@st.composite
def anthropic_messages(draw: Any) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if draw(st.booleans()):
        content.append({"type": "text", "text": draw(words)})
    for i in range(draw(st.integers(0, 2))):
        content.append({"type": "tool_use", "id": f"toolu_{i}", "name": draw(names),
                        "input": draw(args)})  # fmt: skip
    stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else draw(
        st.sampled_from(["end_turn", "max_tokens"])
    )  # fmt: skip
    counts = st.integers(0, 10**6)
    usage = {"input_tokens": draw(counts), "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": draw(counts), "output_tokens": draw(counts)}  # fmt: skip
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


@settings(max_examples=200, deadline=None)
@given(anthropic_messages())
def test_message_answer_round_trips_through_chat(message):
    chat = a2o.chat_answer(message, created=1)
    usage = chat["usage"]
    # OpenAI's prompt_tokens count the cache reads that Anthropic's input_tokens leave out
    assert usage["prompt_tokens"] == message["usage"]["input_tokens"] + message["usage"][
        "cache_read_input_tokens"
    ]  # fmt: skip
    assert Usage.from_openai_chat(usage) == Usage.from_anthropic(message["usage"])
    assert o2a.message_answer(chat) == message


# -- streams -----------------------------------------------------------------------------------
@st.composite
def anthropic_streams(draw: Any) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    start = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
             "stop_reason": None, "stop_sequence": None,
             "usage": {"input_tokens": 5, "output_tokens": 1}}  # fmt: skip
    events.append(("message_start", {"message": start}))
    index = 0
    if draw(st.booleans()):
        events.append(
            ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        )
        for piece in draw(st.lists(words, min_size=1, max_size=5)):
            events.append(
                (
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "text_delta", "text": piece}},
                )
            )
        events.append(("content_block_stop", {"index": 0}))
        index = 1
    for i in range(draw(st.integers(0, 2))):
        block = {"type": "tool_use", "id": f"toolu_{i}", "name": draw(names), "input": {}}
        events.append(("content_block_start", {"index": index, "content_block": block}))
        text = json.dumps(draw(args))
        cut = draw(st.integers(0, len(text)))
        for piece in (text[:cut], text[cut:]):
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append(("content_block_delta", {"index": index, "delta": delta}))
        events.append(("content_block_stop", {"index": index}))
        index += 1
    stop = (
        "tool_use"
        if index and events[-2][1]["delta"].get("type") == "input_json_delta"
        else "end_turn"
    )
    events.append(("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": 9}}))  # fmt: skip
    events.append(("message_stop", {}))
    return events


def _accumulate(raw: bytes) -> dict[str, Any]:
    """An Anthropic stream's message, as the SDK builds it (text, tool inputs, stop)."""
    content: list[dict[str, Any]] = []
    stop = None
    for chunk in raw.split(b"\n\n"):
        _, data = parse_sse(chunk)
        if data is None:
            continue
        ev = json.loads(data)
        if ev["type"] == "content_block_start":
            content.append({**ev["content_block"], "_json": ""})
        elif ev["type"] == "content_block_delta":
            d = ev["delta"]
            block = content[ev["index"]]
            if d["type"] == "text_delta":
                block["text"] += d["text"]
            else:
                block["_json"] += d["partial_json"]
        elif ev["type"] == "message_delta":
            stop = ev["delta"]["stop_reason"]
    for block in content:
        text = block.pop("_json")
        if block["type"] == "tool_use":
            block["input"] = json.loads(text) if text else {}
    return {"content": content, "stop_reason": stop}


def _anthropic_sse(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join(sse({"type": kind, **payload}, kind) for kind, payload in events)


@settings(max_examples=200, deadline=None)
@given(anthropic_streams(), st.booleans())
def test_stream_round_trips_event_by_event(events, include_usage):
    to_chat = AnthropicToChat(include_usage=include_usage, created=1)
    to_messages = ChatToAnthropic()
    usage = Usage(input_tokens=5, output_tokens=9)
    back = b""
    for kind, payload in events:
        chunks = to_chat.feed(kind, json.dumps({"type": kind, **payload}), usage)
        if kind == "content_block_delta" and payload["delta"].get("text"):
            assert json.dumps(payload["delta"]["text"])[1:-1].encode() in chunks
        for chunk in chunks.split(b"\n\n"):
            if chunk:
                back += to_messages.feed(parse_sse(chunk)[1], usage)
    assert _accumulate(back) == _accumulate(_anthropic_sse(events))
    assert back.endswith(sse({"type": "message_stop"}, "message_stop"))
    assert b'"output_tokens":9' in back
