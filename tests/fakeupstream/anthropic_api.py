"""Anthropic: messages (with SSE), count_tokens, models."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from fakeupstream import tokens
from fakeupstream.common import Cut, Stream, apply_delays, dumps, stable_id, start_sse
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
    limits = () if script.ignore_max_tokens else (body["max_tokens"],)
    n = tokens.reply_count(script.reply_tokens, *limits)
    usage, generated = _usage(body, n, script)
    served.generated = generated
    mid, model = f"msg_{stable_id(body)}", body.get("model")
    stop = "max_tokens" if n < script.reply_tokens else "end_turn"
    if not body.get("stream"):
        msg: dict[str, Any] = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "".join(tokens.reply_words(n))}],
            "stop_reason": stop,
            "stop_sequence": None,
        }
        if script.usage != "missing":
            msg["usage"] = reported(usage, script)
            served.reported = msg["usage"]
        served.completed = True
        return web.Response(text=dumps(msg), content_type="application/json")
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
        await ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        await ev("ping", {})
        for i, word in enumerate(tokens.reply_words(n)):
            if script.error_event_mid_stream and i == n // 2:
                await ev("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
                await resp.write_eof()
                return resp
            await ev(
                "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word}}
            )
        await ev("content_block_stop", {"index": 0})
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


async def handle(
    request: web.Request, body: Any, script: Script, served: Served
) -> web.StreamResponse:
    await apply_delays(script)
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
        served.generated = {"prompt": tokens.anthropic_input(body), "completion": 0}
        return web.Response(
            text=dumps({"input_tokens": tokens.anthropic_input(body)}),
            content_type="application/json",
        )
    return await messages(request, body, script, served)
