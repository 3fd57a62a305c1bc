"""Anthropic shapes into OpenAI ones: a Messages request into a Chat Completions request (an
Anthropic client calling an OpenAI-wire model), a Message into a Chat Completion (an OpenAI
client served by a Claude model)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.translate import (
    check_fields,
    items,
    obj,
    openai_finish,
    openai_usage,
    refuse,
    text,
)
from aiwallet.domain.usage import Usage

REQUEST_FIELDS = frozenset(
    {
        "model", "messages", "system", "max_tokens", "temperature", "top_p", "stop_sequences",
        "stream", "tools", "tool_choice", "metadata", "thinking", "service_tier",
    }
)  # fmt: skip
MAX_STOPS = 4  # OpenAI's limit on ``stop``
# ``cache_control`` marks are accepted: OpenAI caches long prompts by itself, no mark needed.
_CACHE = "cache_control"


def chat_request(
    body: Mapping[str, Any], *, model: str, max_field: str = "max_completion_tokens"
) -> dict[str, Any]:
    """The Chat request for the Messages request ``body``, to run ``model``; the output limit
    goes in ``max_field`` (``max_tokens`` for servers that know no other)."""
    check_fields(body, REQUEST_FIELDS)
    if body.get("max_tokens") is None:  # as Anthropic's API would answer it
        raise InvalidInput("max_tokens: Field required", param="max_tokens")
    thinking = body.get("thinking")
    if thinking is not None and not (
        isinstance(thinking, Mapping) and thinking.get("type") == "disabled"
    ):
        raise refuse("thinking", "Chat Completions answers carry no thinking blocks")
    if body.get("service_tier") not in (None, "auto"):
        raise refuse("service_tier", "OpenAI's service tiers are not Anthropic's")
    messages = _system(body.get("system"))
    for i, raw in enumerate(items(body.get("messages"), "messages")):
        messages += _turn(obj(raw, f"messages[{i}]"), f"messages[{i}]")
    out: dict[str, Any] = {"model": model, "messages": messages}
    if body.get("max_tokens") is not None:
        out[max_field] = body["max_tokens"]
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            out[name] = body[name]
    stops = body.get("stop_sequences")
    if stops:
        stops = [text(s, "stop_sequences") for s in items(stops, "stop_sequences")]
        if len(stops) > MAX_STOPS:
            raise refuse("stop_sequences", f"OpenAI takes at most {MAX_STOPS} stop sequences")
        out["stop"] = stops
    _tools(body, out)
    meta = body.get("metadata")
    if meta is not None:
        check_fields(obj(meta, "metadata"), frozenset({"user_id"}), "metadata.")
        if meta.get("user_id") is not None:
            out["user"] = text(meta["user_id"], "metadata.user_id")
    return out


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    return [{"role": "system", "content": _plain_text(system, "system")}]


def _plain_text(blocks: Any, where: str) -> str:
    """Text blocks as one string (a system prompt, a tool result)."""
    if isinstance(blocks, str):
        return blocks
    out = []
    for i, raw in enumerate(items(blocks, where)):
        block = obj(raw, f"{where}[{i}]")
        if block.get("type") != "text":
            raise refuse(f"{where}[{i}].type", "only text blocks can go here")
        check_fields(block, frozenset({"type", "text", _CACHE, "citations"}), f"{where}[{i}].")
        if block.get("citations"):
            raise refuse(f"{where}[{i}].citations", "OpenAI has no citations")
        out.append(text(block.get("text"), f"{where}[{i}].text"))
    return "\n".join(out)


def _turn(msg: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    check_fields(msg, frozenset({"role", "content"}), f"{where}.")
    role, content = msg.get("role"), msg.get("content")
    if role == "user":
        return _user(content, f"{where}.content")
    if role == "assistant":
        return [_assistant(content, f"{where}.content")]
    raise refuse(f"{where}.role", f"the role {role!r} has no counterpart")


def _user(content: Any, where: str) -> list[dict[str, Any]]:
    """A user turn: its tool results as ``tool`` messages (first, right after the assistant
    turn that called them), the rest as one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, raw in enumerate(items(content, where)):
        at = f"{where}[{i}]"
        block = obj(raw, at)
        kind = block.get("type")
        if kind == "tool_result":
            results.append(_tool_result(block, at))
        elif kind == "text":
            check_fields(block, frozenset({"type", "text", _CACHE}), f"{at}.")
            parts.append({"type": "text", "text": text(block.get("text"), f"{at}.text")})
        elif kind == "image":
            check_fields(block, frozenset({"type", "source", _CACHE}), f"{at}.")
            parts.append(_image(obj(block.get("source"), f"{at}.source"), f"{at}.source"))
        else:
            raise refuse(f"{at}.type", f"OpenAI's Chat Completions take no {kind!r} block")
    if parts:
        results.append({"role": "user", "content": parts})
    return results


def _tool_result(block: Mapping[str, Any], at: str) -> dict[str, Any]:
    check_fields(block, frozenset({"type", "tool_use_id", "content", "is_error", _CACHE}), f"{at}.")
    if block.get("is_error"):
        raise refuse(f"{at}.is_error", "OpenAI's tool messages cannot be marked as errors; "
                     "say the error in the result's content")  # fmt: skip
    content = block.get("content")
    return {
        "role": "tool",
        "tool_call_id": text(block.get("tool_use_id"), f"{at}.tool_use_id"),
        "content": "" if content is None else _plain_text(content, f"{at}.content"),
    }


def _image(source: Mapping[str, Any], where: str) -> dict[str, Any]:
    kind = source.get("type")
    if kind == "base64":
        check_fields(source, frozenset({"type", "media_type", "data"}), f"{where}.")
        media = text(source.get("media_type"), f"{where}.media_type")
        url = f"data:{media};base64,{text(source.get('data'), f'{where}.data')}"
    elif kind == "url":
        check_fields(source, frozenset({"type", "url"}), f"{where}.")
        url = text(source.get("url"), f"{where}.url")
    else:
        raise refuse(f"{where}.type", f"OpenAI takes images by URL or base64, not {kind!r}")
    return {"type": "image_url", "image_url": {"url": url}}


def _assistant(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, raw in enumerate(items(content, where)):
        at = f"{where}[{i}]"
        block = obj(raw, at)
        kind = block.get("type")
        if kind == "text":
            check_fields(block, frozenset({"type", "text", _CACHE, "citations"}), f"{at}.")
            texts.append(text(block.get("text"), f"{at}.text"))
        elif kind == "tool_use":
            check_fields(block, frozenset({"type", "id", "name", "input", _CACHE}), f"{at}.")
            args = json.dumps(obj(block.get("input"), f"{at}.input"), separators=(",", ":"))
            calls.append({
                "id": text(block.get("id"), f"{at}.id"),
                "type": "function",
                "function": {"name": text(block.get("name"), f"{at}.name"), "arguments": args},
            })  # fmt: skip
        else:
            raise refuse(f"{at}.type", f"OpenAI's assistant messages take no {kind!r} block")
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _tools(body: Mapping[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        out["tools"] = [
            _tool(obj(t, f"tools[{i}]"), i) for i, t in enumerate(items(tools, "tools"))
        ]
    choice = body.get("tool_choice")
    if choice is None:
        return
    choice = obj(choice, "tool_choice")
    check_fields(choice, frozenset({"type", "name", "disable_parallel_tool_use"}), "tool_choice.")
    kind = choice.get("type")
    mapped: Any
    if kind in ("auto", "none"):
        mapped = kind
    elif kind == "any":
        mapped = "required"
    elif kind == "tool":
        mapped = {
            "type": "function",
            "function": {"name": text(choice.get("name"), "tool_choice.name")},
        }
    else:
        raise refuse("tool_choice.type", f"OpenAI has no tool choice {kind!r}")
    out["tool_choice"] = mapped
    if choice.get("disable_parallel_tool_use") and out.get("tools"):
        out["parallel_tool_calls"] = False


def _tool(tool: Mapping[str, Any], i: int) -> dict[str, Any]:
    if tool.get("type") not in (None, "custom"):
        raise refuse(f"tools[{i}].type", f"{tool.get('type')!r} is an Anthropic server or "
                     "built-in tool, which OpenAI-wire models do not run")  # fmt: skip
    check_fields(
        tool, frozenset({"type", "name", "description", "input_schema", _CACHE}), f"tools[{i}]."
    )
    fn: dict[str, Any] = {"name": text(tool.get("name"), f"tools[{i}].name")}
    if tool.get("description") is not None:
        fn["description"] = text(tool["description"], f"tools[{i}].description")
    fn["parameters"] = dict(obj(tool.get("input_schema"), f"tools[{i}].input_schema"))
    return {"type": "function", "function": fn}


# -- the answer --------------------------------------------------------------------------------
def chat_answer(message: Mapping[str, Any], *, created: int) -> dict[str, Any]:
    """The Chat Completion for an Anthropic Message (``created``: its Unix time). Thinking
    blocks are not part of it (a translated request never asks for them)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for raw in message.get("content") or []:
        block = raw if isinstance(raw, Mapping) else {}
        if block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            calls.append(tool_call(block, len(calls)))
    msg: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        msg["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
    out: dict[str, Any] = {
        "id": str(message.get("id") or ""),
        "object": "chat.completion",
        "created": created,
        "model": str(message.get("model") or ""),
        "choices": [
            {
                "index": 0,
                "message": msg,
                "logprobs": None,
                "finish_reason": openai_finish(message.get("stop_reason")) or "stop",
            }
        ],
    }
    usage = message.get("usage")
    if usage is not None:
        out["usage"] = openai_usage(Usage.from_anthropic(usage))
    return out


def tool_call(block: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The OpenAI tool call of a ``tool_use`` block (its input as JSON text)."""
    args = json.dumps(block.get("input") or {}, separators=(",", ":"), ensure_ascii=False)
    return {
        "index": index,
        "id": str(block.get("id") or ""),
        "type": "function",
        "function": {"name": str(block.get("name") or ""), "arguments": args},
    }
