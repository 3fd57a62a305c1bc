"""OpenAI: chat completions, responses, embeddings, models."""

from __future__ import annotations

import base64
import struct
from typing import Any

from aiohttp import web

from fakeupstream import hostile, tokens
from fakeupstream.common import (
    CREATED,
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

MODELS = ["gpt-4o-mini", "gpt-4o", "o3", "o4-mini", "text-embedding-3-small"]


def error(
    status: int,
    message: str,
    etype: str,
    code: str | None = None,
    headers: dict | None = None,
    param: str | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": etype, "param": param, "code": code}}
    return web.Response(
        status=status, text=dumps(body), content_type="application/json", headers=headers
    )


def scripted_error(script: Script) -> web.Response | None:
    if script.status == 200:
        return None
    if script.status == 429:
        headers = (
            {"Retry-After": str(script.retry_after)} if script.retry_after is not None else None
        )
        return error(
            429, "Rate limit reached for requests", "requests", "rate_limit_exceeded", headers
        )
    return error(
        script.status, "The server had an error while processing your request.", "server_error"
    )


def _usage_chat(prompt: int, completion: int, script: Script) -> dict[str, Any]:
    prompt += script.hidden_prompt_tokens
    completion *= script.output_multiplier
    cached = min(script.cached_tokens, prompt)
    reasoning = min(script.reasoning_tokens, completion)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


ABSURD = 10**20  # a usage no model could have: a provider's bug, never a bill


def _too_long(served: Served, message: str, param: str) -> web.Response:
    """A prompt past the model's context window (hostile mode): refused, as OpenAI does."""
    served.status = 400
    served.completed = True
    return error(400, message, "invalid_request_error", "context_length_exceeded", param=param)


def reported(usage: dict[str, Any], script: Script) -> Any:
    if script.usage == "absurd":
        return {**usage, "prompt_tokens": ABSURD}
    if script.usage == "malformed":
        return {"prompt_tokens": "many", "completion_tokens": -1}
    if script.usage == "wrong":
        return {**usage, "prompt_tokens": usage.get("prompt_tokens", 0) * 10}
    return usage


async def chat(
    request: web.Request, body: dict[str, Any], script: Script, served: Served
) -> web.StreamResponse:
    if script.hostile:
        bill = hostile.chat(body)
        served.generated = bill.record()
        if bill.too_long is not None:
            return _too_long(served, bill.too_long, "messages")
        words, choices = hostile.stream_pieces(bill.per_choice), bill.choices
        usage, finish = hostile.chat_usage(bill), "length"
    else:
        prompt = tokens.openai_chat_prompt(body)
        limits = (
            () if script.ignore_max_tokens
            else (body.get("max_tokens"), body.get("max_completion_tokens"))
        )  # fmt: skip
        n = tokens.reply_count(script.reply_tokens, *limits)
        choices = body.get("n") if isinstance(body.get("n"), int) and body["n"] > 0 else 1
        served.generated = {
            "prompt": prompt,
            "completion": n * choices,
            "cached": min(script.cached_tokens, prompt),
            "reasoning": min(script.reasoning_tokens, n),
        }
        usage = _usage_chat(prompt, n * choices, script)
        words = tokens.reply_words(n)
        finish = "length" if n < script.reply_tokens else "stop"
    words = [*words, *echo_word(script)]
    cid, created, model = f"chatcmpl-{stable_id(body)}", CREATED, body.get("model")
    call_id = f"call_{stable_id(body, 16)}"
    if script.tool_call:
        finish = "tool_calls"
    if not body.get("stream"):
        msg = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": i,
                    "message": {
                        "role": "assistant",
                        "content": "".join(words),
                        "refusal": None,
                        "annotations": [],
                        **_tool_calls(script, call_id),
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                }
                for i in range(choices)
            ],
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        if script.usage != "missing":
            msg["usage"] = reported(usage, script)
            served.reported = msg["usage"]
        served.completed = True
        return answer(served, script, dumps(msg))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    resp = await start_sse_or_none(request)
    stream = Stream(resp, request, script, served)
    base = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }

    def chunk(choices: list[Any], **extra: Any) -> str:
        obj = {**base, "choices": choices, **extra}
        if include_usage and "usage" not in obj:
            obj["usage"] = None
        return dumps(obj)

    try:
        await stream.send(
            chunk(
                [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": "", "refusal": None},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ]
            )
        )
        for word in words:
            for i in range(choices):
                await stream.send(
                    chunk(
                        [
                            {
                                "index": i,
                                "delta": {"content": word},
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ]
                    )
                )
        for delta in _tool_call_deltas(script, call_id):
            await stream.send(
                chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])
            )
        await stream.send(
            chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}])
        )
        if include_usage and script.usage != "missing":
            served.reported = reported(usage, script)
            await stream.send(chunk([], usage=served.reported))
        await stream.send("[DONE]", last=True)
        await resp.write_eof()
    except (Cut, ConnectionResetError):
        pass
    return resp


def _tool_calls(script: Script, call_id: str) -> dict[str, Any]:
    if not script.tool_call:
        return {}
    fn = {"name": script.tool_call, "arguments": dumps(TOOL_INPUT)}
    return {"tool_calls": [{"id": call_id, "type": "function", "function": fn}]}


def _tool_call_deltas(script: Script, call_id: str) -> list[dict[str, Any]]:
    """A scripted tool call as OpenAI streams it: id and name first, then the arguments."""
    if not script.tool_call:
        return []
    first = {"index": 0, "id": call_id, "type": "function",
             "function": {"name": script.tool_call, "arguments": ""}}  # fmt: skip
    rest = [{"index": 0, "function": {"arguments": p}} for p in tool_input_pieces()]
    return [{"tool_calls": [c]} for c in (first, *rest)]


async def start_sse_or_none(request: web.Request) -> web.StreamResponse:
    return await start_sse(request)


async def responses(
    request: web.Request, body: dict[str, Any], script: Script, served: Served
) -> web.StreamResponse:
    rid, msg_id, created = f"resp_{stable_id(body)}", f"msg_{stable_id(body, 32)}", CREATED
    tool_items: list[dict[str, Any]] = []
    if script.hostile:
        bill = hostile.responses(body)
        served.generated = bill.record()
        if bill.too_long is not None:
            return _too_long(served, bill.too_long, "input")
        usage = hostile.responses_usage(bill)
        words = hostile.stream_pieces(bill.per_choice)
        tool_items = hostile.responses_tool_items(bill, stable_id(body, 8))
        status = "incomplete"
    else:
        prompt = tokens.responses_input(body) + script.hidden_prompt_tokens
        limits = () if script.ignore_max_tokens else (body.get("max_output_tokens"),)
        n = tokens.reply_count(script.reply_tokens, *limits)
        cached, reasoning = min(script.cached_tokens, prompt), min(script.reasoning_tokens, n)
        served.generated = {
            "prompt": prompt,
            "completion": n,
            "cached": cached,
            "reasoning": reasoning,
        }
        usage = {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": n * script.output_multiplier,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + n * script.output_multiplier,
        }
        words = tokens.reply_words(n)
        status = "incomplete" if n < script.reply_tokens else "completed"
    words = [*words, *echo_word(script)]
    text = "".join(words)
    first = len(tool_items)  # the message's output_index

    def response_obj(state: str, with_output: bool, with_usage: bool) -> dict[str, Any]:
        out = (
            [
                *tool_items,
                {
                    "id": msg_id,
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                },
            ]
            if with_output
            else []
        )
        obj: dict[str, Any] = {
            "id": rid,
            "object": "response",
            "created_at": created,
            "status": state,
            "model": body.get("model"),
            "output": out,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": (body.get("tools") or []) if script.hostile else [],
            "incomplete_details": {"reason": "max_output_tokens"}
            if state == "incomplete"
            else None,
            "error": None,
            "instructions": None,
            "metadata": {},
            "temperature": 1.0,
            "top_p": 1.0,
            "max_output_tokens": body.get("max_output_tokens"),
            "text": {"format": {"type": "text"}},
            "usage": None,
        }
        if with_usage and script.usage != "missing":
            obj["usage"] = (
                reported(usage, script) if script.usage != "malformed" else {"input_tokens": "x"}
            )
            served.reported = obj["usage"]
        return obj

    if not body.get("stream"):
        served.completed = True
        return answer(served, script, dumps(response_obj(status, True, True)))
    resp = await start_sse(request)
    stream = Stream(resp, request, script, served)
    seq = 0

    async def ev(etype: str, payload: dict[str, Any], last: bool = False) -> None:
        nonlocal seq
        await stream.send(
            dumps({"type": etype, "sequence_number": seq, **payload}), event=etype, last=last
        )
        seq += 1

    try:
        await ev("response.created", {"response": response_obj("in_progress", False, False)})
        await ev("response.in_progress", {"response": response_obj("in_progress", False, False)})
        for index, tool_item in enumerate(tool_items):
            await _tool_item_events(ev, index, tool_item)
        item = {
            "id": msg_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        await ev("response.output_item.added", {"output_index": first, "item": item})
        part = {"type": "output_text", "text": "", "annotations": []}
        await ev(
            "response.content_part.added",
            {"item_id": msg_id, "output_index": first, "content_index": 0, "part": part},
        )
        for word in words:
            await ev(
                "response.output_text.delta",
                {
                    "item_id": msg_id,
                    "output_index": first,
                    "content_index": 0,
                    "delta": word,
                    "logprobs": [],
                },
            )
        await ev(
            "response.output_text.done",
            {
                "item_id": msg_id,
                "output_index": first,
                "content_index": 0,
                "text": text,
                "logprobs": [],
            },
        )
        done_part = {"type": "output_text", "text": text, "annotations": []}
        await ev(
            "response.content_part.done",
            {"item_id": msg_id, "output_index": first, "content_index": 0, "part": done_part},
        )
        done_item = {**item, "status": "completed", "content": [done_part]}
        await ev("response.output_item.done", {"output_index": first, "item": done_item})
        final = "response.incomplete" if status == "incomplete" else "response.completed"
        await ev(final, {"response": response_obj(status, True, True)}, last=True)
        await resp.write_eof()
    except (Cut, ConnectionResetError):
        pass
    return resp


# The events a built-in tool call streams between its output_item.added and .done.
_TOOL_EVENTS = {
    "web_search_call": ("in_progress", "searching", "completed"),
    "file_search_call": ("in_progress", "searching", "completed"),
    "image_generation_call": ("in_progress", "generating", "completed"),
    "code_interpreter_call": ("in_progress", "interpreting", "completed"),
}


async def _tool_item_events(ev: Any, index: int, item: dict[str, Any]) -> None:
    kind = item["type"]
    await ev(
        "response.output_item.added",
        {"output_index": index, "item": {**item, "status": "in_progress"}},
    )
    for phase in _TOOL_EVENTS[kind]:
        await ev(f"response.{kind}.{phase}", {"output_index": index, "item_id": item["id"]})
    await ev("response.output_item.done", {"output_index": index, "item": item})


async def embeddings(
    request: web.Request, body: dict[str, Any], script: Script, served: Served
) -> web.Response:
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    if script.hostile:
        bill = hostile.embeddings(body)
        served.generated = bill.record()
        if bill.too_long is not None:
            return _too_long(served, bill.too_long, "input")
        prompt = bill.prompt
        if items and all(isinstance(i, int) for i in items):
            items = [items]  # one token array: one embedding
    else:
        prompt = sum(tokens.words(str(i)) for i in items)
        served.generated = {"prompt": prompt, "completion": 0}
    data = []
    for i, item in enumerate(items):
        vec = [round(((hash(str(item)) >> k) % 1000) / 1000.0, 3) for k in range(8)]
        emb: Any = vec
        if body.get("encoding_format") == "base64":
            emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    usage = {"prompt_tokens": prompt, "total_tokens": prompt}
    msg: dict[str, Any] = {"object": "list", "data": data, "model": body.get("model")}
    if script.usage != "missing":
        msg["usage"] = reported(usage, script)
        served.reported = msg["usage"]
    served.completed = True
    return answer(served, script, dumps(msg))


def models() -> web.Response:
    data = [
        {"id": m, "object": "model", "created": 1700000000, "owned_by": "openai"} for m in MODELS
    ]
    return web.Response(
        text=dumps({"object": "list", "data": data}), content_type="application/json"
    )


async def handle(
    request: web.Request, body: Any, script: Script, served: Served
) -> web.StreamResponse:
    await apply_delays(script)
    if script.echo_key in ERROR_ECHOES:
        served.status = echo_status(script)
        return error(served.status, echo_message(served), "invalid_request_error", "echo")
    if (err := scripted_error(script)) is not None:
        served.status = err.status
        return err
    if request.path == "/v1/models":
        served.completed = True
        return models()
    if not isinstance(body, dict):
        served.status = 400
        return error(
            400, "We could not parse the JSON body of your request.", "invalid_request_error"
        )
    if request.path == "/v1/chat/completions":
        return await chat(request, body, script, served)
    if request.path == "/v1/responses":
        return await responses(request, body, script, served)
    return await embeddings(request, body, script, served)
