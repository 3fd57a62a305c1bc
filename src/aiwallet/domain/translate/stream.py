"""Streams translated event by event: each upstream SSE event becomes the client-format
events it stands for (often none, never more than a few), as it arrives; nothing is held
beyond the state of the block being streamed.

The usage each translator puts in its last events is the provider's own report as the
engine's stream meter read it (``usage``, passed with every event): metering stays on the
provider's stream, and the client sees the same counts in its own format's semantics.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiwallet.domain.translate import (
    anthropic_stop,
    anthropic_usage,
    openai_finish,
    openai_usage,
)
from aiwallet.domain.usage import Usage

DONE = b"data: [DONE]\n\n"


_LINES = re.compile(r"\r\n|\r|\n")  # SSE's line ends, and only those


def sse(payload: Any, event: str | None = None) -> bytes:
    """One event. ASCII JSON: no character in it can be taken for a line end by a client
    whose parser splits more eagerly than SSE does (U+2028 and the like)."""
    head = f"event: {event}\n" if event else ""
    body = json.dumps(payload, separators=(",", ":"))
    return f"{head}data: {body}\n\n".encode()


def parse_sse(raw: bytes) -> tuple[str | None, str | None]:
    """The ``event`` and ``data`` fields of one raw event, split at SSE's own line ends only
    (a provider's JSON may hold a raw U+2028, which is no line end)."""
    event: str | None = None
    data: list[str] = []
    for line in _LINES.split(raw.decode("utf-8", errors="replace")):
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    return event, "\n".join(data) if data else None


def _sub(obj: dict[str, Any], name: str) -> dict[str, Any]:
    """``obj[name]`` when it is an object, else an empty one (a malformed event says
    nothing, rather than failing the stream)."""
    value = obj.get(name)
    return value if isinstance(value, dict) else {}


def _json(data: str | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


class AnthropicToChat:
    """Anthropic Messages events into Chat Completions chunks (an OpenAI client, a Claude
    model). The usage chunk is sent only when the client asked (``include_usage``), and
    then every other chunk says ``"usage": null``, as OpenAI's streams do."""

    def __init__(self, *, include_usage: bool, created: int) -> None:
        self.include_usage = include_usage
        self.created = created
        self.id = ""
        self.model = ""
        self.tools: dict[int, int] = {}  # Anthropic block index → OpenAI tool call index
        self.finish: str | None = None

    def feed(self, event: str | None, data: str | None, usage: Usage | None) -> bytes:
        obj = _json(data)
        if not isinstance(obj, dict):
            return b""
        kind = event or obj.get("type")
        if kind == "message_start":
            msg = _sub(obj, "message")
            self.id, self.model = str(msg.get("id") or ""), str(msg.get("model") or "")
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "content_block_start":
            return self._block_start(obj)
        if kind == "content_block_delta":
            return self._delta(obj)
        if kind == "message_delta":
            delta = _sub(obj, "delta")
            self.finish = openai_finish(delta.get("stop_reason")) or "stop"
            return b""
        if kind == "message_stop":
            return self._end(usage)
        if kind == "error":
            err = _sub(obj, "error")
            return sse({"error": {
                "message": str(err.get("message") or "the provider's stream failed"),
                "type": str(err.get("type") or "api_error"), "param": None, "code": None,
            }})  # fmt: skip
        return b""  # ping, content_block_stop: nothing to say in chunks

    def _block_start(self, obj: dict[str, Any]) -> bytes:
        block = _sub(obj, "content_block")
        if block.get("type") == "text" and block.get("text"):
            return self._chunk({"content": block["text"]})
        if block.get("type") != "tool_use":
            return b""
        index = len(self.tools)
        self.tools[int(obj.get("index") or 0)] = index
        call = {
            "index": index,
            "id": str(block.get("id") or ""),
            "type": "function",
            "function": {"name": str(block.get("name") or ""), "arguments": ""},
        }
        return self._chunk({"tool_calls": [call]})

    def _delta(self, obj: dict[str, Any]) -> bytes:
        delta = _sub(obj, "delta")
        if delta.get("type") == "text_delta":
            return self._chunk({"content": str(delta.get("text") or "")})
        if delta.get("type") == "input_json_delta":
            index = self.tools.get(int(obj.get("index") or 0))
            if index is None:
                return b""
            piece = str(delta.get("partial_json") or "")
            return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        return b""  # thinking and signatures: a translated request never asks for them

    def _end(self, usage: Usage | None) -> bytes:
        out = self._chunk({}, finish=self.finish or "stop")
        if self.include_usage:
            body = self._base([])
            body["usage"] = openai_usage(usage or Usage())
            out += sse(body)
        return out + DONE

    def _base(self, choices: list[Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = self._base([choice])
        if self.include_usage:
            body["usage"] = None
        return sse(body)


class ChatToAnthropic:
    """Chat Completions chunks into Anthropic Messages events (an Anthropic client, an
    OpenAI-wire model). Chat streams say the prompt's size only at the end, so
    ``message_start`` says 0 input tokens and ``message_delta`` the provider's counts
    (cumulative, as Anthropic's are: the SDKs take them over)."""

    def __init__(self) -> None:
        self.started = False
        self.index = -1  # the content block open now (-1: none yet)
        self.open: str | None = None  # "text" or the OpenAI tool call index streaming now
        self.tool_at: int | None = None
        self.finish: str | None = None

    def feed(self, data: str | None, usage: Usage | None) -> bytes:
        if data == "[DONE]":
            return self._end(usage)
        obj = _json(data)
        if not isinstance(obj, dict):
            return b""
        if isinstance(obj.get("error"), dict):
            err = _sub(obj, "error")
            payload = {"type": "error", "error": {
                "type": str(err.get("type") or "api_error"),
                "message": str(err.get("message") or "the provider's stream failed"),
            }}  # fmt: skip
            return sse(payload, "error")
        out = b"" if self.started else self._start(obj)
        choices = obj.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = _sub(choice, "delta")
            out += self._delta(delta)
            if choice.get("finish_reason") is not None:
                self.finish = anthropic_stop(choice["finish_reason"])
        return out

    def _start(self, obj: dict[str, Any]) -> bytes:
        self.started = True
        message: dict[str, Any] = {
            "id": str(obj.get("id") or ""),
            "type": "message",
            "role": "assistant",
            "model": str(obj.get("model") or ""),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return sse({"type": "message_start", "message": message}, "message_start")

    def _delta(self, delta: dict[str, Any]) -> bytes:
        out = b""
        said = delta.get("content") or delta.get("refusal")
        if isinstance(said, str) and said:
            if self.open != "text":
                out += self._open({"type": "text", "text": ""}, "text")
            payload = {"type": "text_delta", "text": said}
            out += sse({"type": "content_block_delta", "index": self.index, "delta": payload},
                       "content_block_delta")  # fmt: skip
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict):
                out += self._tool(call)
        return out

    def _tool(self, call: dict[str, Any]) -> bytes:
        out = b""
        fn = _sub(call, "function")
        at = call.get("index", 0)
        if call.get("id") or at != self.tool_at:  # a new call begins
            block = {"type": "tool_use", "id": str(call.get("id") or ""),
                     "name": str(fn.get("name") or ""), "input": {}}  # fmt: skip
            out += self._open(block, "tool")
            self.tool_at = at
        piece = fn.get("arguments")
        if isinstance(piece, str) and piece:
            payload = {"type": "input_json_delta", "partial_json": piece}
            out += sse({"type": "content_block_delta", "index": self.index, "delta": payload},
                       "content_block_delta")  # fmt: skip
        return out

    def _open(self, block: dict[str, Any], kind: str) -> bytes:
        out = self._close()
        self.index += 1
        self.open = kind
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        return out + sse(start, "content_block_start")

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open, self.tool_at = None, None
        return sse({"type": "content_block_stop", "index": self.index}, "content_block_stop")

    def _end(self, usage: Usage | None) -> bytes:
        out = b"" if self.started else self._start({})
        out += self._close()
        delta = {"stop_reason": self.finish or "end_turn", "stop_sequence": None}
        counts = anthropic_usage(usage or Usage())
        out += sse({"type": "message_delta", "delta": delta, "usage": counts}, "message_delta")
        return out + sse({"type": "message_stop"}, "message_stop")
