"""Metering streams as they are relayed, one event at a time.

Each meter looks at every SSE event, remembers the usage the provider reports, decides what
to relay (an OpenAI usage chunk the client did not ask for is dropped, and ``"usage":null``
taken out of every other chunk, so the client's stream is byte-identical to what it would have
received), and says which event ends the stream: that one is held back until the cost is
settled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.usage import TokenSource, Usage
from aiwallet.engine.estimate import estimate_tokens
from aiwallet.engine.sse import parse_event

_NULL_USAGE = b',"usage":null'


@dataclass(slots=True)
class Verdict:
    relay: bytes | None  # what to send (None: drop the event)
    final: bool = False  # the last event: settle before sending it


@dataclass
class StreamMeter:
    """Base: counts relayed output for estimates; subclasses parse their API's events.

    ``usage`` is the provider's report so far; ``input_known`` says that its input and cache
    counts are the provider's exact figures (an Anthropic ``message_start``, a usage chunk)
    even when the stream is cut before its output count is final."""

    usage: Usage | None = None
    usage_problem: str | None = None
    text_bytes: int = 0  # every relayed output part: text, tool-call arguments, reasoning
    delta_events: int = 0  # events that carried output (each carries at least one token)
    events: int = 0
    finished: bool = False
    broken: bool = False  # the stream ended with an error event
    input_known: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def feed(self, raw: bytes) -> Verdict:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def relayed_output_tokens(self) -> int:
        """A floor on the output tokens relayed so far: the larger of bytes / 4 and one per
        output-carrying event."""
        return max(estimate_tokens(self.text_bytes), self.delta_events)

    def _output(self, *parts: object) -> None:
        n = 0
        for part in parts:
            if isinstance(part, str) and part:
                n += len(part.encode("utf-8", "surrogatepass"))
        if n:
            self.text_bytes += n
            self.delta_events += 1

    def _usage(self, build: Any, payload: Any, source: TokenSource) -> bool:
        try:
            self.usage = build(payload, source)
            self.usage_problem = None
            return True
        except InvalidInput as exc:
            self.usage_problem = str(exc)
            return False


def _json(data: str | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
        return None


class ChatMeter(StreamMeter):
    """Chat Completions: ``data: {chunk}`` lines, then ``data: [DONE]``."""

    def __init__(self, injected: bool) -> None:
        super().__init__()
        self.injected = injected

    def feed(self, raw: bytes) -> Verdict:
        self.events += 1
        ev = parse_event(raw)
        if ev.data == "[DONE]":
            self.finished = True
            return Verdict(raw, final=True)
        obj = _json(ev.data)
        if not isinstance(obj, dict):
            return Verdict(raw)
        choices = obj.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict):
                self._chat_delta(delta)
        if "usage" not in obj:
            return Verdict(raw)
        usage = obj["usage"]
        if usage is not None:
            source = TokenSource.INJECTED if self.injected else TokenSource.PROVIDER
            self.input_known = self._usage(Usage.from_openai_chat, usage, source)
            if self.injected and not obj.get("choices"):
                return Verdict(None)  # the chunk we asked for; the client did not
        if self.injected:
            return Verdict(_strip_usage(raw, obj))
        return Verdict(raw)

    def _chat_delta(self, delta: dict[str, Any]) -> None:
        parts: list[object] = [
            delta.get("content"),
            delta.get("refusal"),
            delta.get("reasoning_content"),  # DeepSeek, vLLM
            delta.get("reasoning"),  # OpenRouter
        ]
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                parts += [fn.get("name"), fn.get("arguments")]
        legacy = delta.get("function_call")
        if isinstance(legacy, dict):
            parts += [legacy.get("name"), legacy.get("arguments")]
        self._output(*parts)


def _strip_usage(raw: bytes, obj: dict[str, Any]) -> bytes:
    """Remove ``"usage"`` from a chunk the way the upstream would never have sent it."""
    if obj.get("usage") is None and raw.count(_NULL_USAGE) == 1:
        candidate = raw.replace(_NULL_USAGE, b"")
        parsed = _json(parse_event(candidate).data)
        expected = {k: v for k, v in obj.items() if k != "usage"}
        if parsed == expected:
            return candidate
    # Unusual serialisation: re-encode compactly (still a faithful chunk, minus usage).
    body = {k: v for k, v in obj.items() if k != "usage"}
    return (
        b"data: " + json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
    )


class ResponsesMeter(StreamMeter):
    """Responses API: typed events; the last is completed / incomplete / failed."""

    FINAL = ("response.completed", "response.incomplete", "response.failed")

    def feed(self, raw: bytes) -> Verdict:
        self.events += 1
        ev = parse_event(raw)
        obj = _json(ev.data)
        etype = ev.event or (obj.get("type") if isinstance(obj, dict) else None)
        if etype is not None and etype.endswith(".delta") and isinstance(obj, dict):
            # output text, refusals, function-call and custom-tool arguments, reasoning text
            # and summaries: every ``*.delta`` event carries output in ``delta``
            self._output(obj.get("delta"))
        if etype in self.FINAL:
            self.finished = True
            response = obj.get("response") if isinstance(obj, dict) else None
            usage = response.get("usage") if isinstance(response, dict) else None
            if usage is None:
                self.usage_problem = "the final event carried no usage"
            else:
                self.input_known = self._usage(
                    Usage.from_openai_response, response, TokenSource.PROVIDER
                )
            return Verdict(raw, final=True)
        return Verdict(raw)


class AnthropicMeter(StreamMeter):
    """Messages: usage in ``message_start``, cumulative usage in ``message_delta``."""

    def __init__(self) -> None:
        super().__init__()
        self._start: dict[str, Any] = {}
        self._delta: dict[str, Any] = {}

    def _combine(self) -> bool:
        merged = {**self._start, **{k: v for k, v in self._delta.items() if v is not None}}
        return self._usage(Usage.from_anthropic, merged, TokenSource.PROVIDER)

    def feed(self, raw: bytes) -> Verdict:
        self.events += 1
        ev = parse_event(raw)
        obj = _json(ev.data)
        if not isinstance(obj, dict):
            return Verdict(raw)
        etype = ev.event or obj.get("type")
        if etype == "message_start":
            usage = (obj.get("message") or {}).get("usage")
            if isinstance(usage, dict):
                self._start = dict(usage)
                self.input_known = self._combine()
            else:
                self.usage_problem = "message_start carried no usage"
        elif etype == "content_block_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict):
                self._output(delta.get("text"), delta.get("thinking"), delta.get("partial_json"))
        elif etype == "message_delta":
            usage = obj.get("usage")
            if isinstance(usage, dict):
                self._delta = dict(usage)  # cumulative: replaces, never adds
                if not self._combine():
                    problem = self.usage_problem
                    self._delta = {}  # keep what message_start said, and estimate the rest
                    self._combine()
                    self.usage_problem = problem
        elif etype in ("message_stop", "error"):
            self.finished = True
            self.broken = etype == "error"
            return Verdict(raw, final=True)
        return Verdict(raw)
