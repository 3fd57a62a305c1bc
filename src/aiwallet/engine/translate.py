"""A request whose model speaks the other wire format, translated on its way through.

The route says the client's format (``Route.translate_from``). :func:`start` turns the
client's body into the provider's and the call's endpoint into the provider's, so from
there on the request is the provider's own: bounded by its endpoint's bound, reserved at its
price row, sent to its path, metered by its usage reader or stream meter, and logged as
such. Only what goes back to the client is translated again: the whole answer
(:meth:`Translation.answer`), each stream event (:meth:`Translation.event`), an error the
provider answered (:meth:`Translation.error`). Refusals are in the client's shape, since
``Call.api`` is the client's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiwallet.domain.bounds import DEFAULT_MAX_OUTPUT
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.translate import anthropic_to_openai as a2o
from aiwallet.domain.translate import openai_to_anthropic as o2a
from aiwallet.domain.translate.stream import AnthropicToChat, ChatToAnthropic, parse_sse
from aiwallet.domain.usage import Usage
from aiwallet.engine.endpoints import ENDPOINTS, Endpoint
from aiwallet.engine.errors import Api, ProxyError

if TYPE_CHECKING:
    from aiwallet.engine.call import Call

CHAT, MESSAGES = "/v1/chat/completions", "/v1/messages"
# The client's endpoint → the provider's, for the pairs that translate.
COUNTERPART = {CHAT: MESSAGES, MESSAGES: CHAT}
# Client headers that belong to the client's format and mean nothing to the provider's.
_FOREIGN = {Api.OPENAI: ("openai-beta",), Api.ANTHROPIC: ("anthropic-version", "anthropic-beta")}


def translatable(path: str) -> bool:
    return path in COUNTERPART


@dataclass
class Translation:
    client: Endpoint  # what the client called (its answers' and errors' shape)
    client_body: Mapping[str, Any] = field(default_factory=dict)  # as the client sent it
    include_usage: bool = False  # an OpenAI client asked for its stream's usage chunk
    created: int = field(default_factory=lambda: int(time.time()))
    to_chat: AnthropicToChat | None = None
    to_messages: ChatToAnthropic | None = None

    def answer(self, data: bytes) -> bytes:
        """A whole answer of the provider's, as the client's format says it."""
        try:
            answer = json.loads(data)
            if not isinstance(answer, dict):
                raise InvalidInput("the answer is not a JSON object")
            if self.client.api is Api.OPENAI:
                out = a2o.chat_answer(answer, created=self.created)
            else:
                out = o2a.message_answer(answer)
        except (ValueError, RecursionError, InvalidInput) as exc:
            raise ProxyError(
                "upstream_unavailable",
                f"the provider's answer could not be translated to the format this app "
                f"called ({_reason(exc)}); it was billed as the provider reported it",
            ) from None
        return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()

    def event(self, raw: bytes, usage: Usage | None) -> bytes:
        """One provider stream event as the client's events (none, one or a few)."""
        event, data = parse_sse(raw)
        if self.to_chat is not None:
            return self.to_chat.feed(event, data, usage)
        assert self.to_messages is not None
        return self.to_messages.feed(data, usage)

    def error(self, status: int, data: bytes) -> bytes:
        """A provider's error answer in the client's error shape (its message kept)."""
        message, etype = _error_of(data)
        if self.client.api is Api.OPENAI:
            body: dict[str, Any] = {
                "error": {"message": message, "type": etype, "param": None, "code": None}
            }
        else:
            kind = _ANTHROPIC_BY_STATUS.get(status) or (
                etype if etype in _ANTHROPIC_TYPES else "api_error"
            )
            body = {"type": "error", "error": {"type": kind, "message": message}}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The client's headers less those of its own format (an ``anthropic-beta`` means
        nothing to an OpenAI-wire provider)."""
        foreign = _FOREIGN[self.client.api]
        return {k: v for k, v in headers.items() if k.lower() not in foreign}


def start(call: Call) -> None:
    """Make ``call`` (routed to a provider of the other format) the provider's request: its
    endpoint and its body; a field that cannot be translated is refused in the client's
    shape."""
    route, body = call.route, call.body
    assert route is not None and body is not None
    client = call.endpoint
    call.translation = translation = Translation(client, client_body=dict(body))
    try:
        if client.path == CHAT:
            max_tokens = route.row.output_limit or DEFAULT_MAX_OUTPUT
            translated = o2a.messages_request(
                body, model=route.upstream_model, max_tokens=max_tokens
            )
            translation.include_usage = o2a.include_usage(body)
            translation.to_chat = AnthropicToChat(
                include_usage=translation.include_usage, created=translation.created
            )
        else:
            field_name = "max_completion_tokens" if route.kind.id == "openai" else "max_tokens"
            translated = a2o.chat_request(body, model=route.upstream_model, max_field=field_name)
            translation.to_messages = ChatToAnthropic()
    except InvalidInput as exc:
        raise ProxyError("invalid_request", str(exc), param=exc.param) from None
    try:
        raw = json.dumps(translated, separators=(",", ":"), ensure_ascii=False).encode()
    except RecursionError:
        raise ProxyError("invalid_request", "the request body is nested too deeply") from None
    call.endpoint = ENDPOINTS[COUNTERPART[client.path]]
    call.body, call.raw, call.prompt_bytes = translated, raw, len(raw)


def _reason(exc: BaseException) -> str:
    return str(exc)[:200] if isinstance(exc, InvalidInput) else "it is not valid JSON"


def _error_of(data: bytes) -> tuple[str, str]:
    """The message and type of a provider's error answer, in either format."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or "the provider refused the request"), str(
            err.get("type") or "invalid_request_error"
        )
    text = data[:500].decode("utf-8", "replace").strip()
    return text or "the provider refused the request", "invalid_request_error"


_ANTHROPIC_TYPES = frozenset(
    {
        "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
        "request_too_large", "rate_limit_error", "api_error", "overloaded_error",
    }
)  # fmt: skip
_ANTHROPIC_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
}
