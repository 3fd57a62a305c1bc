"""Translation between OpenAI's Chat Completions and Anthropic's Messages wire formats.

Pure functions over parsed JSON (no I/O): requests one way, answers and stream events the
other. :mod:`.openai_to_anthropic` turns OpenAI shapes into Anthropic ones (a Chat request
into a Messages request; a Chat answer into a Message), :mod:`.anthropic_to_openai` the
reverse, :mod:`.stream` translates SSE streams event by event. Whatever a request asks that
the other format cannot express is refused with :class:`Untranslatable` naming the field:
nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.usage import Usage


class Untranslatable(InvalidInput):
    """A request field (``param``) the other wire format cannot express."""


def refuse(param: str, what: str) -> Untranslatable:
    """The refusal of ``param``: ``what`` says why, and the message says what to do."""
    return Untranslatable(
        f"{param}: {what}; the wallet translates this request to the model's own wire "
        "format and cannot carry it. Leave it out, or call the model through its own API",
        param=param,
    )


def check_fields(body: Mapping[str, Any], known: frozenset[str], where: str = "") -> None:
    """Refuse the first field of ``body`` not in ``known`` (the fields a translator reads)."""
    for name in body:
        if name not in known:
            raise refuse(f"{where}{name}", "this field has no counterpart in the other format")


def obj(value: Any, param: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{param} must be an object", param=param)
    return value


def items(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f"{param} must be an array", param=param)
    return value


def text(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{param} must be a string", param=param)
    return value


# Stop reasons. Anthropic's ``stop_sequence`` and ``end_turn`` are both OpenAI's ``stop``
# (which does not say whether a stop sequence matched, so it becomes ``end_turn``).
ANTHROPIC_TO_OPENAI_STOP: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
OPENAI_TO_ANTHROPIC_STOP: Mapping[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def openai_finish(stop_reason: object) -> str | None:
    if stop_reason is None:
        return None
    return ANTHROPIC_TO_OPENAI_STOP.get(str(stop_reason), "stop")


def anthropic_stop(finish_reason: object) -> str | None:
    if finish_reason is None:
        return None
    return OPENAI_TO_ANTHROPIC_STOP.get(str(finish_reason), "end_turn")


# Usage, with each side's cache semantics (domain/usage.py): an Anthropic ``input_tokens``
# EXCLUDES cache reads and writes; an OpenAI ``prompt_tokens`` INCLUDES every prompt token,
# its ``cached_tokens`` being the cache reads among them.
def openai_usage(usage: Usage) -> dict[str, Any]:
    prompt = usage.total_prompt_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def anthropic_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens + usage.cache_write_1h_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }
