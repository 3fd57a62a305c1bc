"""Anthropic: messages (with SSE), count_tokens, models."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from fakeupstream import hostile, tokens
from fakeupstream.common import (
    ECHO_MARK,
    ERROR_ECHOES,
    TOOL_INPUT,
    Cut,
    Stream,
    answer,
    apply_delays,
    dumps,
    echo_message,
    echo_status,
    echo_word,
    stable_id,
    start_sse,
    tool_input_pieces,
)
from fakeupstream.script import Script, Served

MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]


def error(status: int, etype: str, message: str, headers: dict | None = None) -> web.Response:
    body = {
        "type": "error",
        "error": {"type": etype, "message": message},
        "request_id": f"req_{uuid.uuid4().hex[:20]}",
    }
    return web.Response(
        status=status, text=dumps(body), content_type="application/json", headers=headers
    )


# Anthropic's error type for each status an echoing provider answers with.
_ECHO_TYPES = {404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error"}


def scripted_error(script: Script) -> web.Response | None:
    if script.status == 200:
        return None
    if script.status == 429:
        headers = (
            {"retry-after": str(script.retry_after)} if script.retry_after is not None else None
        )
        return error(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your rate limit.",
            headers,
        )
    if script.status == 529:
        return error(529, "overloaded_error", "Overloaded")
    return error(script.status, "api_error", "Internal server error")


def _usage(body: dict[str, Any], n: int, script: Script) -> tuple[dict[str, Any], dict[str, int]]:
    total_in = tokens.anthropic_input(body) + script.hidden_prompt_tokens
    cache_read = min(script.cached_tokens, total_in)
    cache_write = min(script.cache_write_tokens, total_in - cache_read)
    uncached = total_in - cache_read - cache_write
    usage = {
        "input_tokens": uncached,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": n * script.output_multiplier,
        "service_tier": "standard",
    }
    searches = _searches(body, script)
    if searches:
        usage["server_tool_use"] = {"web_search_requests": searches}
    return usage, {
        "prompt": uncached,
        "completion": n,
        "cached": cache_read,
        "cache_write": cache_write,
    }


def _searches(body: dict[str, Any], script: Script) -> int:
    """The web searches run: the script's number, at most the web_search tool's max_uses."""
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and str(tool.get("type", "")).startswith("web_search"):
            cap = tool.get("max_uses")
            return min(script.web_searches, cap) if isinstance(cap, int) else script.web_searches
    return 0


ABSURD = 10**20  # a usage no model could have: a provider's bug, never a bill


def reported(usage: dict[str, Any], script: Script) -> Any:
    if script.usage == "absurd":
        return {**usage, "input_tokens": ABSURD}
    if script.usage == "malformed":
        return {"input_tokens": None, "output_tokens": "lots"}
    if script.usage == "wrong":
        return {**usage, "output_tokens": usage["output_tokens"] * 10}
    return usage


async def messages(
    request: web.Request, body: dict[str, Any], script: Script, served: Served
) -> web.StreamResponse:
    if not isinstance(body.get("max_tokens"), int):
        served.status = 400
        return error(400, "invalid_request_error", "max_tokens: Field required")
    mid, model = f"msg_{stable_id(body)}", body.get("model")
    searches: list[dict[str, Any]] = []  # server tool blocks before the text
    deltas = 0  # of their queries, how many stream as input_json_delta events
    if script.hostile:
        bill = hostile.messages(body)
        served.generated = bill.record()
        if bill.too_long is not None:
            served.status = 400
            served.completed = True
            return error(400, "invalid_request_error", bill.too_long)
        usage, words = hostile.anthropic_usage(bill), hostile.stream_pieces(bill.output)
        searches = hostile.anthropic_search_blocks(bill, stable_id(body, 8))
        stop = "max_tokens"
        # each query streamed as a delta is output: no more output events than reported
        deltas = max(0, bill.output - len(words))
    else:
        limits = () if script.ignore_max_tokens else (body["max_tokens"],)
        n = tokens.reply_count(script.reply_tokens, *limits)
        usage, generated = _usage(body, n, script)
        served.generated = generated
        words = tokens.reply_words(n)
        stop = "max_tokens" if n < script.reply_tokens else "end_turn"
    words = [*words, *echo_word(script)]
    tool = {"type": "tool_use", "id": f"toolu_{stable_id(body, 16)}", "name": script.tool_call}
    if script.tool_call:
        stop = "tool_use"
    if not body.get("stream"):
        msg: dict[str, Any] = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [
                *searches,
                {"type": "text", "text": "".join(words)},
                *([{**tool, "input": TOOL_INPUT}] if script.tool_call else []),
            ],
            "stop_reason": stop,
            "stop_sequence": None,
        }
        if script.usage != "missing":
            msg["usage"] = reported(usage, script)
            served.reported = msg["usage"]
        served.completed = True
        return answer(served, script, dumps(msg))
    resp = await start_sse(request)
    stream = Stream(resp, request, script, served)

    async def ev(etype: str, payload: dict[str, Any], last: bool = False) -> None:
        await stream.send(dumps({"type": etype, **payload}), event=etype, last=last)

    start_usage = {**usage, "output_tokens": 1}
    final_usage = reported(usage, script)
    try:
        start_msg = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }
        if script.usage != "missing":
            start_msg["usage"] = start_usage if script.usage != "malformed" else final_usage
        await ev("message_start", {"message": start_msg})
        for index, block in enumerate(searches):
            await _search_block_events(ev, index, block, as_delta=index // 2 < deltas)
        text_index = len(searches)
        await ev(
            "content_block_start",
            {"index": text_index, "content_block": {"type": "text", "text": ""}},
        )
        await ev("ping", {})
        for i, word in enumerate(words):
            echo_event = script.echo_key == "error_event"
            if (script.error_event_mid_stream or echo_event) and i == len(words) // 2:
                message = f"invalid x-api-key: {ECHO_MARK}" if echo_event else "Overloaded"
                await ev("error", {"error": {"type": "overloaded_error", "message": message}})
                await resp.write_eof()
                return resp
            await ev(
                "content_block_delta",
                {"index": text_index, "delta": {"type": "text_delta", "text": word}},
            )
        await ev("content_block_stop", {"index": text_index})
        if script.tool_call:
            start = {"index": text_index + 1, "content_block": {**tool, "input": {}}}
            await ev("content_block_start", start)
            for piece in tool_input_pieces():
                partial = {"type": "input_json_delta", "partial_json": piece}
                await ev("content_block_delta", {"index": text_index + 1, "delta": partial})
            await ev("content_block_stop", {"index": text_index + 1})
        delta: dict[str, Any] = {"delta": {"stop_reason": stop, "stop_sequence": None}}
        if script.usage != "missing":
            delta["usage"] = (
                {k: v for k, v in final_usage.items() if k != "service_tier"}
                if isinstance(final_usage, dict)
                else final_usage
            )
            served.reported = delta["usage"]
        await ev("message_delta", delta)
        await ev("message_stop", {}, last=True)
        await resp.write_eof()
    except (Cut, ConnectionResetError):
        pass
    return resp


async def _search_block_events(
    ev: Any, index: int, block: dict[str, Any], *, as_delta: bool
) -> None:
    """A server tool block streams as its start and stop; a query, as Anthropic sends it, as
    an empty input and then its JSON in one delta (``as_delta``), or whole in the start."""
    if block["type"] == "server_tool_use" and as_delta:
        await ev("content_block_start", {"index": index, "content_block": {**block, "input": {}}})
        delta = {"type": "input_json_delta", "partial_json": dumps(block["input"])}
        await ev("content_block_delta", {"index": index, "delta": delta})
    else:
        await ev("content_block_start", {"index": index, "content_block": block})
    await ev("content_block_stop", {"index": index})


async def handle(
    request: web.Request, body: Any, script: Script, served: Served
) -> web.StreamResponse:
    await apply_delays(script)
    if script.echo_key in ERROR_ECHOES:
        served.status = status = echo_status(script)
        return error(status, _ECHO_TYPES.get(status, "invalid_request_error"), echo_message(served))
    if (err := scripted_error(script)) is not None:
        served.status = err.status
        return err
    if request.path == "/v1/models":
        served.completed = True
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in MODELS
        ]
        return web.Response(
            text=dumps(
                {
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"],
                    "last_id": data[-1]["id"],
                }
            ),
            content_type="application/json",
        )
    if not isinstance(body, dict):
        served.status = 400
        return error(400, "invalid_request_error", "Request body is not valid JSON")
    if request.path == "/v1/messages/count_tokens":
        served.completed = True
        counted = tokens.anthropic_input(body)
        if script.hostile:
            bill = hostile.messages(body, counting=True)
            served.generated, counted = bill.record(), bill.prompt
        else:
            served.generated = {"prompt": counted, "completion": 0}
        return web.Response(text=dumps({"input_tokens": counted}), content_type="application/json")
    return await messages(request, body, script, served)
