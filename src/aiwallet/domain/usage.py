"""Token usage as the providers report it, normalised to one record.

The providers count differently, and treating them alike double-bills:

* OpenAI: ``prompt_tokens`` INCLUDES ``prompt_tokens_details.cached_tokens``; reasoning tokens
  are a subset of ``completion_tokens``.
* Anthropic: ``input_tokens`` EXCLUDES ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens``; cache writes may be split by lifetime in
  ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``; in a stream,
  ``message_delta`` usage is cumulative, not an increment.

A :class:`Usage` always holds UNCACHED input, cache reads, cache writes and all output
(reasoning included) separately, plus where the counts came from.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

from aiwallet.domain.errors import InvalidInput

# No model reads or writes this many tokens in one request (the largest context windows are
# a few million): a reported count above it is a broken usage report, never a bill.
MAX_PLAUSIBLE_TOKENS = 100_000_000


class TokenSource(enum.StrEnum):
    """Where token counts came from; stored beside every cost."""

    PROVIDER = "provider"  # the provider's own usage report
    INJECTED = "injected"  # usage we asked for (stream_options.include_usage) and stripped
    ESTIMATED = "estimated"  # counted by us from what was relayed (stream cut, usage missing)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0  # uncached input
    output_tokens: int = 0  # all output, reasoning included
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # 5-minute (standard) cache writes
    cache_write_1h_tokens: int = 0  # 1-hour cache writes (Anthropic bills these at 2x input)
    reasoning_tokens: int = 0  # subset of output_tokens
    source: TokenSource = TokenSource.PROVIDER
    # server-side tool uses a provider bills per use: (fee kind, count), see domain/fees.py
    tool_uses: tuple[tuple[str, int], ...] = ()
    # what the provider says this request cost (``usage.cost``, USD), in nano-dollars
    reported_cost_nano: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
            "reasoning_tokens",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"usage {name} must be a non-negative integer, got {value!r}")
        if self.reasoning_tokens > self.output_tokens:
            raise InvalidInput("usage reasoning_tokens cannot exceed output_tokens")
        for kind, count in self.tool_uses:
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise InvalidInput(f"usage of tool {kind} must be a non-negative integer")

    @property
    def total_prompt_tokens(self) -> int:
        """Every prompt token, cached or not: what selects a long-context price tier."""
        return (
            self.input_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
            + self.cache_write_1h_tokens
        )

    @classmethod
    def from_openai_chat(cls, usage: object, source: TokenSource = TokenSource.PROVIDER) -> Usage:
        """Chat Completions ``usage``: cached tokens are a subset of ``prompt_tokens``."""
        return cls._openai(
            usage, source, ("prompt_tokens", "completion_tokens"), "prompt", "completion"
        )

    @classmethod
    def from_openai_responses(
        cls, usage: object, source: TokenSource = TokenSource.PROVIDER
    ) -> Usage:
        """Responses API ``usage``: the same subset rule under ``input``/``output`` names."""
        return cls._openai(usage, source, ("input_tokens", "output_tokens"), "input", "output")

    @classmethod
    def _openai(
        cls, usage: object, source: TokenSource, names: tuple[str, str], inp: str, out: str
    ) -> Usage:
        u = _mapping(usage)
        total_in = _count(u, names[0])
        output = _count(u, names[1], default=0)
        cached = _count(_mapping(u.get(f"{inp}_tokens_details") or {}), "cached_tokens", 0)
        reasoning = _count(_mapping(u.get(f"{out}_tokens_details") or {}), "reasoning_tokens", 0)
        if cached > total_in:
            raise InvalidInput(f"usage cached_tokens exceeds {names[0]}")
        return cls(
            input_tokens=total_in - cached,
            output_tokens=output,
            cache_read_tokens=cached,
            reasoning_tokens=min(reasoning, output),
            source=source,
            reported_cost_nano=_cost(u),
        )

    @classmethod
    def from_openai_response(
        cls, response: object, source: TokenSource = TokenSource.PROVIDER
    ) -> Usage:
        """A whole Responses API ``response``: its ``usage``, and the built-in tool calls in
        its ``output`` that are billed per call (web search, file search, image generation,
        code interpreter containers)."""
        r = _mapping(response)
        base = cls.from_openai_responses(r.get("usage"), source)
        counts: dict[str, int] = {}
        output = r.get("output")
        for item in output if isinstance(output, list) else ():
            kind = item.get("type") if isinstance(item, Mapping) else None
            fee = _OPENAI_CALL_FEES.get(kind) if isinstance(kind, str) else None
            if fee is not None:
                counts[fee] = counts.get(fee, 0) + 1
        if not counts:
            return base
        return replace(base, tool_uses=tuple(sorted(counts.items())))

    @classmethod
    def from_openai_embeddings(
        cls, usage: object, source: TokenSource = TokenSource.PROVIDER
    ) -> Usage:
        u = _mapping(usage)
        return cls(input_tokens=_count(u, "prompt_tokens"), source=source)

    @classmethod
    def from_anthropic(cls, usage: object, source: TokenSource = TokenSource.PROVIDER) -> Usage:
        """Messages ``usage``: ``input_tokens`` excludes cache reads and cache writes."""
        u = _mapping(usage)
        cache_write_total = _count(u, "cache_creation_input_tokens", 0)
        write_5m, write_1h = cache_write_total, 0
        split = u.get("cache_creation")
        if isinstance(split, Mapping):
            s5 = _count(split, "ephemeral_5m_input_tokens", 0)
            s1 = _count(split, "ephemeral_1h_input_tokens", 0)
            if s5 + s1:
                write_5m, write_1h = s5, s1
        server = u.get("server_tool_use")
        searches = _count(server, "web_search_requests", 0) if isinstance(server, Mapping) else 0
        return cls(
            input_tokens=_count(u, "input_tokens"),
            output_tokens=_count(u, "output_tokens", default=0),
            cache_read_tokens=_count(u, "cache_read_input_tokens", 0),
            cache_write_tokens=write_5m,
            cache_write_1h_tokens=write_1h,
            source=source,
            tool_uses=(("anthropic.web_search", searches),) if searches else (),
            reported_cost_nano=_cost(u),
        )


_OPENAI_CALL_FEES = {
    "web_search_call": "openai.web_search",
    "file_search_call": "openai.file_search",
    "image_generation_call": "openai.image_generation",
}


def _mapping(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput("usage is missing or not an object")
    return value


_MISSING = object()


def _cost(u: Mapping[str, Any]) -> int | None:
    """``usage.cost`` (USD, as OpenRouter and prepaid routers report it) in nano-dollars,
    rounded up; None when absent. A JSON number is read from its shortest decimal form (the
    text the provider wrote), never computed with as a float."""
    value = u.get("cost")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput(f"usage cost is not a number: {str(value)[:40]!r}")
    try:
        usd = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        raise InvalidInput(f"usage cost is not a number: {str(value)[:40]!r}") from None
    if not usd.is_finite() or usd < 0 or usd > MAX_REPORTED_COST_USD:
        raise InvalidInput(f"usage cost {str(value)[:40]} is not a plausible amount")
    return int(usd.scaleb(9).to_integral_value(rounding=ROUND_CEILING))


MAX_REPORTED_COST_USD = Decimal(100_000)


def _count(u: Mapping[str, Any], key: str, default: object = _MISSING) -> int:
    value = u.get(key)
    if value is None:
        if default is _MISSING:
            raise InvalidInput(f"usage has no {key}")
        assert isinstance(default, int)
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"usage {key} is not a non-negative integer: {value!r}")
    if value > MAX_PLAUSIBLE_TOKENS:
        raise InvalidInput(f"usage {key} of {value} is beyond any model's limits")
    return value
