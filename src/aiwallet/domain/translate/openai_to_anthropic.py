"""OpenAI shapes into Anthropic ones: a Chat Completions request into a Messages request (an
OpenAI client calling a Claude model), a Chat Completion into a Message (an Anthropic client
served by an OpenAI-wire model)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aiwallet.domain.translate import (
    anthropic_stop,
    anthropic_usage,
    check_fields,
    items,
    obj,
    refuse,
    text,
)
from aiwallet.domain.usage import Usage

# Chat request fields translated (or checked to mean nothing: their defaults); any other
# field is refused by name.
REQUEST_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "stop", "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls",
        "user", "safety_identifier", "n", "logprobs", "response_format", "modalities",
        "frequency_penalty", "presence_penalty", "logit_bias", "store", "metadata",
        "service_tier",
    }
)  # fmt: skip
_DATA_URL = re.compile(r"data:(image/[a-zA-Z0-9.+-]+);base64,(.*)", re.DOTALL)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def messages_request(chat: Mapping[str, Any], *, model: str, max_tokens: int) -> dict[str, Any]:
    """The Messages request for the Chat request ``chat``, to run ``model``. ``max_tokens``
    is used when the request sets no output limit (Anthropic requires one)."""
    check_fields(chat, REQUEST_FIELDS)
    _check_defaults(chat)
    system, messages = _conversation(items(chat.get("messages"), "messages"))
    out: dict[str, Any] = {"model": model, "messages": messages}
    if system:
        out["system"] = system
    limits = [chat[f] for f in ("max_completion_tokens", "max_tokens") if chat.get(f) is not None]
    out["max_tokens"] = limits[0] if limits else max_tokens
    _sampling(chat, out)
    if chat.get("stream") is not None:
        out["stream"] = chat["stream"]
    _stream_options(chat.get("stream_options"))
    _tools(chat, out)
    user = chat.get("user") or chat.get("safety_identifier")
    if user is not None:
        out["metadata"] = {"user_id": text(user, "user")}
    return out


def include_usage(chat: Mapping[str, Any]) -> bool:
    """Whether the client asked for a usage chunk at the end of its stream."""
    opts = chat.get("stream_options")
    return isinstance(opts, Mapping) and opts.get("include_usage") is True


def _check_defaults(chat: Mapping[str, Any]) -> None:
    """Fields accepted only at their defaults (their other values have no counterpart)."""
    if chat.get("n") not in (None, 1):
        raise refuse("n", "Anthropic returns one choice per request")
    if chat.get("logprobs") not in (None, False) or chat.get("top_logprobs") is not None:
        raise refuse("logprobs", "Anthropic does not return log probabilities")
    fmt = chat.get("response_format")
    if fmt is not None and not (isinstance(fmt, Mapping) and fmt.get("type") == "text"):
        raise refuse("response_format", "Anthropic has no JSON mode or JSON schema output")
    modalities = chat.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise refuse("modalities", "Anthropic answers in text only (no audio)")
    for name in ("frequency_penalty", "presence_penalty"):
        if chat.get(name) not in (None, 0, 0.0):
            raise refuse(name, "Anthropic has no such penalty")
    if chat.get("logit_bias"):
        raise refuse("logit_bias", "Anthropic has no token biasing")
    if chat.get("store") not in (None, False) or chat.get("metadata"):
        raise refuse("store" if chat.get("store") else "metadata", "Anthropic stores nothing")
    if chat.get("service_tier") not in (None, "auto"):
        raise refuse("service_tier", "Anthropic's service tiers are not OpenAI's")


def _sampling(chat: Mapping[str, Any], out: dict[str, Any]) -> None:
    temp = chat.get("temperature")
    if temp is not None:
        if isinstance(temp, bool) or not isinstance(temp, int | float) or not 0 <= temp <= 1:
            raise refuse("temperature", "Anthropic takes a temperature from 0 to 1")
        out["temperature"] = temp
    if chat.get("top_p") is not None:
        out["top_p"] = chat["top_p"]
    stop = chat.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [text(s, "stop") for s in stop]
    elif stop not in (None, []):
        raise refuse("stop", "stop must be a string or an array of strings")


def _stream_options(opts: Any) -> None:
    if opts is None:
        return
    for name in obj(opts, "stream_options"):
        if name != "include_usage":
            raise refuse(f"stream_options.{name}", "Anthropic's streams have no such option")


# -- the conversation --------------------------------------------------------------------------
def _conversation(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The system blocks (the leading system and developer messages) and the turns; tool
    results (role ``tool``) become the ``tool_result`` blocks of a user turn."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, raw in enumerate(messages):
        where = f"messages[{i}]"
        msg = obj(raw, where)
        role = msg.get("role")
        if role in ("system", "developer"):
            if turns:
                raise refuse(where, "Anthropic takes system instructions only before the turns")
            check_fields(msg, frozenset({"role", "content"}), f"{where}.")
            system += _text_blocks(msg.get("content"), f"{where}.content")
        elif role == "user":
            check_fields(msg, frozenset({"role", "content"}), f"{where}.")
            _append(turns, "user", _user_content(msg.get("content"), f"{where}.content"))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_content(msg, where))
        elif role == "tool":
            check_fields(msg, frozenset({"role", "content", "tool_call_id"}), f"{where}.")
            result = {
                "type": "tool_result",
                "tool_use_id": text(msg.get("tool_call_id"), f"{where}.tool_call_id"),
                "content": _text_blocks(msg.get("content"), f"{where}.content"),
            }
            _append(turns, "user", [result], results_first=True)
        else:
            raise refuse(f"{where}.role", f"the role {role!r} has no counterpart")
    return system, turns


def _append(
    turns: list[dict[str, Any]],
    role: str,
    blocks: list[dict[str, Any]],
    *,
    results_first: bool = False,
) -> None:
    """Add a turn; consecutive turns of one role are one Anthropic turn (tool results
    first, as Anthropic requires them)."""
    if turns and turns[-1]["role"] == role:
        content = turns[-1]["content"]
        if results_first:
            at = sum(1 for b in content if b.get("type") == "tool_result")
            content[at:at] = blocks
        else:
            content.extend(blocks)
        return
    turns.append({"role": role, "content": list(blocks)})


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for i, part in enumerate(items(content, where)):
        p = obj(part, f"{where}[{i}]")
        if p.get("type") != "text":
            raise refuse(f"{where}[{i}].type", "only text parts can go here")
        check_fields(p, frozenset({"type", "text"}), f"{where}[{i}].")
        blocks.append({"type": "text", "text": text(p.get("text"), f"{where}[{i}].text")})
    return blocks


def _user_content(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for i, part in enumerate(items(content, where)):
        p = obj(part, f"{where}[{i}]")
        kind = p.get("type")
        if kind == "text":
            check_fields(p, frozenset({"type", "text"}), f"{where}[{i}].")
            blocks.append({"type": "text", "text": text(p.get("text"), f"{where}[{i}].text")})
        elif kind == "image_url":
            check_fields(p, frozenset({"type", "image_url"}), f"{where}[{i}].")
            blocks.append(_image(obj(p.get("image_url"), f"{where}[{i}].image_url"), where, i))
        else:
            raise refuse(f"{where}[{i}].type", f"Anthropic takes no {kind!r} content part")
    return blocks


def _image(image: Mapping[str, Any], where: str, i: int) -> dict[str, Any]:
    at = f"{where}[{i}].image_url"
    check_fields(image, frozenset({"url", "detail"}), f"{at}.")
    if image.get("detail") not in (None, "auto"):
        raise refuse(f"{at}.detail", "Anthropic chooses an image's resolution itself")
    url = text(image.get("url"), f"{at}.url")
    found = _DATA_URL.fullmatch(url)
    if found:
        media = found.group(1).lower()
        if media not in IMAGE_TYPES:
            raise refuse(f"{at}.url", f"Anthropic takes JPEG, PNG, GIF or WebP, not {media}")
        source = {"type": "base64", "media_type": media, "data": found.group(2)}
        return {"type": "image", "source": source}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise refuse(f"{at}.url", "an image must be an http(s) URL or a base64 data URL")


def _assistant_content(msg: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    check_fields(msg, frozenset({"role", "content", "tool_calls", "refusal"}), f"{where}.")
    content = msg.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, list):
        for i, part in enumerate(content):
            p = obj(part, f"{where}.content[{i}]")
            if p.get("type") not in ("text", "refusal"):
                raise refuse(f"{where}.content[{i}].type", "only text parts can go here")
            said = p.get("text") if p.get("type") == "text" else p.get("refusal")
            blocks.append({"type": "text", "text": text(said, f"{where}.content[{i}]")})
    elif content is not None and text(content, f"{where}.content"):
        blocks.append({"type": "text", "text": content})
    if msg.get("refusal"):
        blocks.append({"type": "text", "text": text(msg["refusal"], f"{where}.refusal")})
    for i, call in enumerate(msg.get("tool_calls") or []):
        blocks.append(_tool_use(obj(call, f"{where}.tool_calls[{i}]"), f"{where}.tool_calls[{i}]"))
    return blocks


def _tool_use(call: Mapping[str, Any], where: str) -> dict[str, Any]:
    if call.get("type", "function") != "function":
        raise refuse(f"{where}.type", "Anthropic's tools are functions only")
    fn = obj(call.get("function"), f"{where}.function")
    args = fn.get("arguments") or "{}"
    try:
        parsed = json.loads(text(args, f"{where}.function.arguments"))
    except ValueError:
        raise refuse(f"{where}.function.arguments", "Anthropic takes a tool's input as a JSON "
                     "object, and these arguments are not JSON") from None  # fmt: skip
    if not isinstance(parsed, dict):
        raise refuse(f"{where}.function.arguments", "Anthropic takes a tool's input as an object")
    return {
        "type": "tool_use",
        "id": text(call.get("id"), f"{where}.id"),
        "name": text(fn.get("name"), f"{where}.function.name"),
        "input": parsed,
    }


# -- tools -------------------------------------------------------------------------------------
def _tools(chat: Mapping[str, Any], out: dict[str, Any]) -> None:
    tools = chat.get("tools")
    if tools is not None:
        out["tools"] = [
            _tool(obj(t, f"tools[{i}]"), i) for i, t in enumerate(items(tools, "tools"))
        ]
    choice = _tool_choice(chat.get("tool_choice"))
    if chat.get("parallel_tool_calls") is False:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        out["tool_choice"] = choice


def _tool(tool: Mapping[str, Any], i: int) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise refuse(f"tools[{i}].type", "Anthropic takes function tools only")
    check_fields(tool, frozenset({"type", "function"}), f"tools[{i}].")
    fn = obj(tool.get("function"), f"tools[{i}].function")
    check_fields(
        fn, frozenset({"name", "description", "parameters", "strict"}), f"tools[{i}].function."
    )
    if fn.get("strict"):
        raise refuse(f"tools[{i}].function.strict", "Anthropic has no strict schema mode")
    out: dict[str, Any] = {"name": text(fn.get("name"), f"tools[{i}].function.name")}
    if fn.get("description") is not None:
        out["description"] = text(fn["description"], f"tools[{i}].function.description")
    params = fn.get("parameters")
    out["input_schema"] = dict(params) if isinstance(params, Mapping) else {
        "type": "object", "properties": {}
    }  # fmt: skip
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        fn = obj(choice.get("function"), "tool_choice.function")
        return {"type": "tool", "name": text(fn.get("name"), "tool_choice.function.name")}
    raise refuse("tool_choice", "Anthropic chooses among auto, none, any or one named tool")


# -- the answer --------------------------------------------------------------------------------
def message_answer(chat: Mapping[str, Any]) -> dict[str, Any]:
    """The Anthropic Message for a (one-choice) Chat Completion."""
    choices = chat.get("choices") or [{}]
    choice = obj(choices[0], "choices[0]")
    msg = obj(choice.get("message") or {}, "choices[0].message")
    content: list[dict[str, Any]] = []
    if isinstance(msg.get("content"), str) and msg["content"]:
        content.append({"type": "text", "text": msg["content"]})
    if isinstance(msg.get("refusal"), str) and msg["refusal"]:
        content.append({"type": "text", "text": msg["refusal"]})
    for i, call in enumerate(msg.get("tool_calls") or []):
        content.append(tool_use_block(obj(call, f"tool_calls[{i}]")))
    out: dict[str, Any] = {
        "id": str(chat.get("id") or ""),
        "type": "message",
        "role": "assistant",
        "model": str(chat.get("model") or ""),
        "content": content,
        "stop_reason": anthropic_stop(choice.get("finish_reason")),
        "stop_sequence": None,
    }
    if msg.get("refusal"):
        out["stop_reason"] = "refusal"
    usage = chat.get("usage")
    out["usage"] = anthropic_usage(Usage.from_openai_chat(usage)) if usage else _no_usage()
    return out


def tool_use_block(call: Mapping[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` block for an answer's tool call; arguments that are not a JSON object
    (a model's broken output) cannot be one, and are refused rather than guessed at."""
    fn = call.get("function") if isinstance(call.get("function"), Mapping) else {}
    assert isinstance(fn, Mapping)
    args = fn.get("arguments") or "{}"
    try:
        parsed = json.loads(args) if isinstance(args, str) else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise refuse("tool_calls.function.arguments", "the model's tool arguments are not a "
                     "JSON object, which is all Anthropic's tool_use input can be")  # fmt: skip
    return {
        "type": "tool_use",
        "id": str(call.get("id") or ""),
        "name": str(fn.get("name") or ""),
        "input": parsed,
    }


def _no_usage() -> dict[str, int]:
    return {"input_tokens": 0, "output_tokens": 0}
