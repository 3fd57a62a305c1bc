"""The proxied routes: their wire format, where the max-output field is, how usage is read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiwallet.domain.providers import WireFormat
from aiwallet.domain.usage import Usage
from aiwallet.engine.errors import Api
from aiwallet.engine.meter import AnthropicMeter, ChatMeter, ResponsesMeter, StreamMeter


def _chat_text(body: dict[str, Any]) -> int:
    total = 0
    for choice in body.get("choices") or []:
        msg = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(msg, dict) and isinstance(msg.get("content"), str):
            total += len(msg["content"].encode())
    return total


def _responses_text(body: dict[str, Any]) -> int:
    total = 0
    for item in body.get("output") or []:
        for part in item.get("content") or [] if isinstance(item, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += len(part["text"].encode())
    return total


def _anthropic_text(body: dict[str, Any]) -> int:
    return sum(
        len(str(part.get("text") or part.get("thinking") or "").encode())
        for part in body.get("content") or []
        if isinstance(part, dict)
    )


def _usage_field(read: Callable[[Any], Usage]) -> Callable[[dict[str, Any]], Usage]:
    """A reader of an answer's ``usage`` field as a reader of the whole answer."""
    return lambda answer: read(answer.get("usage"))


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    api: Api
    wire: WireFormat
    max_fields: tuple[str, ...]  # request fields that bound output tokens, first is preferred
    usage_of: Callable[[dict[str, Any]], Usage] | None  # from a whole non-streamed answer
    output_bytes_of: Callable[[dict[str, Any]], int]
    meter: Callable[[bool], StreamMeter] | None = None  # None: never streams
    billable: bool = True


ENDPOINTS: dict[str, Endpoint] = {
    e.path: e
    for e in (
        Endpoint(
            "/v1/chat/completions", Api.OPENAI, WireFormat.OPENAI,
            ("max_completion_tokens", "max_tokens"), _usage_field(Usage.from_openai_chat),
            _chat_text,
            lambda injected: ChatMeter(injected),
        ),
        Endpoint(
            "/v1/responses", Api.OPENAI, WireFormat.OPENAI, ("max_output_tokens",),
            Usage.from_openai_response, _responses_text, lambda _: ResponsesMeter(),
        ),
        Endpoint(
            "/v1/embeddings", Api.OPENAI, WireFormat.OPENAI, (),
            _usage_field(Usage.from_openai_embeddings),
            lambda _: 0,
        ),
        Endpoint(
            "/v1/messages", Api.ANTHROPIC, WireFormat.ANTHROPIC, ("max_tokens",),
            _usage_field(Usage.from_anthropic), _anthropic_text, lambda _: AnthropicMeter(),
        ),
        Endpoint(
            "/v1/messages/count_tokens", Api.ANTHROPIC, WireFormat.ANTHROPIC, (), None,
            lambda _: 0, billable=False,
        ),
    )
}  # fmt: skip
