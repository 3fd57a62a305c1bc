"""An upper bound on what a provider may bill for exactly this request.

A budget is a hard cap only if the reservation taken before forwarding is at least what the
provider can bill. Per API and feature:

* **Text** (messages, system prompts, tool definitions, embeddings input, token arrays): a
  token is at least one byte of the JSON body, so the body's bytes bound those tokens; a flat
  allowance covers what the provider adds around them (chat templates, message framing).
* **Client tools** with a hidden system prompt (Anthropic: any tool use adds one; ``bash``,
  ``text_editor``, ``computer`` add their own): their published sizes, with a margin.
* **Images** (by URL, by file id, or inline; base64 bytes do not bound their tokens): the
  provider's own per-image maximum (OpenAI: tiles or patches of the resized image, up to
  gpt-4o-mini's 48,169; Anthropic: the resized image, about 1,600), with a margin.
* **What bytes cannot bound** (stored context: ``previous_response_id``, ``conversation``,
  stored prompts, file ids and file URLs, PDFs, item references; results a server tool adds to
  the input: web search, web fetch, file search, MCP, code interpreter output; encrypted search
  results passed back): the model's context window. Embeddings inputs are not one sequence:
  each must fit the window, but their sum is bounded by the bytes alone.
* **Output**: the request's max-output field (reasoning included), else the model's output
  limit; times ``n`` choices.
* **Prompt caching**: every prompt token at the dearest of input and cache-write prices when
  the request marks anything ``cache_control`` (1-hour writes when any ``ttl`` is ``1h``).
* **Server-tool fees**: uses × the fee schedule (:mod:`aiwallet.domain.fees`); the number of
  uses is the request's own cap (``max_uses``, ``max_tool_calls``), which the engine sets when
  the request has none.

Anything else whose cost cannot be bounded (audio by duration, background responses, container
hours, a priority service tier) raises :class:`Unbounded`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiwallet.domain.catalog import PriceRow
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.fees import ANTHROPIC_WEB_SEARCH, OPENAI_TOOL_FEES, code_interpreter_fee

# What the provider adds around the body's text: the reply priming and, with tools, their
# framing (each message's own framing, ~4 tokens, is covered by its JSON's bytes).
TEXT_OVERHEAD = 64
ANTHROPIC_TOOL_PROMPT = 1_000  # the tool-use system prompt (published: 313-346 tokens)
ANTHROPIC_TOOL_PROMPTS = {  # published sizes of built-in client tools' prompts, with margin
    "bash": 1_000,  # 245
    "text_editor": 2_000,  # 700
    "computer": 3_000,  # 466-499 system + 735 definition
    "memory": 2_000,
}
# The most one image can add, by model family (OpenAI's published rules, with a margin):
# gpt-4o-mini bills tiles at 33x (2,833 + 5,667 x 8 tiles = 48,169); gpt-4o-class tile models
# 85 + 170 x 8 = 1,445; patch models at most 1,536 patches x their multiplier (<= 2.46).
OPENAI_IMAGE_TOKENS = 50_000  # any model not named below
OPENAI_IMAGE_TOKENS_BY_MODEL = (
    ("gpt-4o-mini", 50_000),
    ("gpt-4.1-mini", 5_000),
    ("gpt-4.1-nano", 5_000),
    ("o4-mini", 5_000),
    ("gpt-4o", 2_000),
    ("gpt-4.1", 2_000),
    ("gpt-4-turbo", 2_000),
    ("o1", 2_000),
    ("o3", 2_000),
)
ANTHROPIC_IMAGE_TOKENS = 5_000  # images are resized to about 1.15 MP: ~1,600 tokens
DEFAULT_MAX_OUTPUT = 4_096  # when neither the request nor the catalog bounds the output
MAX_CHOICES = 128  # OpenAI's own limit on n
DEFAULT_MAX_USES = 5  # server-tool uses the wallet allows when the request sets no cap
MAX_FIELD = 2**31 - 1


class CacheWrite(enum.Enum):
    NONE = "none"
    FIVE_MINUTES = "5m"
    ONE_HOUR = "1h"


class Unbounded(InvalidInput):
    """No upper bound exists for what this request may cost: the wallet refuses it."""


@dataclass(frozen=True, slots=True)
class Bound:
    prompt_tokens: int  # every prompt token, cached or not
    output_tokens: int  # per choice: what the max-output field allows (the engine may clamp it)
    choices: int = 1
    cache_write: CacheWrite = CacheWrite.NONE
    fees_nano: int = 0  # server-tool fees at most
    reasons: tuple[str, ...] = ()  # what set the prompt bound beyond the bytes
    # Fields the engine must set in the forwarded body for the bound to hold (a cap on
    # server-tool uses, a max-output field): dotted path → value.
    sets: Mapping[str, int] = field(default_factory=dict)
    # Output per choice that no max-output field limits (rejected prediction tokens): kept
    # apart so that clamping the field leaves room for it.
    unlimited_output: int = 0

    @property
    def total_output_tokens(self) -> int:
        return (self.output_tokens + self.unlimited_output) * self.choices

    @property
    def total_tokens(self) -> int:
        """Prompt and output: what a tokens-per-minute limit must count."""
        return self.prompt_tokens + self.total_output_tokens


# -- reading fields strictly -----------------------------------------------------------------
def whole(body: Mapping[str, Any], name: str, *, lo: int = 0, hi: int = MAX_FIELD) -> int | None:
    """``body[name]`` as a whole number in [lo, hi], None when absent; anything else (a float,
    a bool, text) is refused, since a provider might read it as a number."""
    if name not in body or body[name] is None:
        return None
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be a whole number", param=name)
    if not lo <= value <= hi:
        raise InvalidInput(f"{name} must be from {lo} to {hi}", param=name)
    return value


def flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true or false", param=name)
    return value


def _walk(value: Any) -> Iterator[Mapping[str, Any]]:
    """Every JSON object inside ``value`` (itself included)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def cache_write_of(body: Mapping[str, Any]) -> CacheWrite:
    """Whether (and for how long) the request may write a prompt cache: a ``cache_control``
    field anywhere in it (found by structure, not by searching bytes)."""
    found = CacheWrite.NONE
    for obj in _walk(body):
        cc = obj.get("cache_control")
        if cc is not None:
            ttl = cc.get("ttl") if isinstance(cc, Mapping) else None
            if ttl == "1h":
                return CacheWrite.ONE_HOUR
            found = CacheWrite.FIVE_MINUTES
    return found


# -- the bound -------------------------------------------------------------------------------
@dataclass
class _Acc:
    """What a request adds up to while its parts are read."""

    row: PriceRow
    raw: bytes
    # The prompt is one sequence the model reads, so no longer than its context window; not
    # so for embeddings, whose inputs must each fit the window but add up past it.
    one_sequence: bool = True
    extra: int = 0  # prompt tokens the bytes do not cover
    whole_context: list[str] = field(default_factory=list)  # why the context window is needed
    fees: int = 0
    sets: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def mentions(self, *names: bytes) -> bool:
        """Whether the body may hold one of these names: a JSON name can only be spelled
        otherwise with a ``\\u`` escape, so without one a byte search is exact."""
        return b"\\u" in self.raw or any(n in self.raw for n in names)

    def context(self, why: str) -> None:
        self.whole_context.append(why)

    def prompt(self) -> int:
        limit = self.row.context_limit
        if self.whole_context:
            if limit is None:
                raise Unbounded(
                    f"{self.whole_context[0]} can add any number of prompt tokens, and the "
                    f"wallet's catalog knows no context window for {self.row.model} to bound "
                    "them"
                )
            self.reasons.extend(self.whole_context)
            return limit
        bound = len(self.raw) + TEXT_OVERHEAD + self.extra
        return min(bound, limit) if limit and self.one_sequence else bound


def _output(
    body: Mapping[str, Any], fields: tuple[str, ...], row: PriceRow
) -> tuple[int, dict[str, int]]:
    """The output bound per choice, and the max-output field to set when neither the request
    nor the catalog bounds it. Two max-output fields that disagree are refused."""
    given = {name: v for name in fields if (v := whole(body, name, lo=1)) is not None}
    if len(set(given.values())) > 1:
        names = " and ".join(given)
        raise InvalidInput(f"{names} differ; send one of them", param=next(iter(given)))
    if given:  # as asked, even above the catalog's limit: the provider's own may be higher
        return next(iter(given.values())), {}
    if row.output_limit:
        return row.output_limit, {}
    return DEFAULT_MAX_OUTPUT, {fields[0]: DEFAULT_MAX_OUTPUT}


def openai_image_tokens(model: str) -> int:
    """The most prompt tokens one image can add for ``model`` (first matching prefix)."""
    for prefix, tokens in OPENAI_IMAGE_TOKENS_BY_MODEL:
        if model == prefix or model.startswith(prefix + "-"):
            return tokens
    return OPENAI_IMAGE_TOKENS


_OPENAI_PART_NAMES = (b"image", b"input_audio", b"file", b"item_reference")
_ANTHROPIC_CONTEXT_PARTS = (  # tool results passed back whose content their bytes do not show
    "container_upload", "mcp_tool_result", "web_fetch_tool_result",
    "web_search_tool_result",  # pages, as encrypted_content: the model reads them decrypted
)  # fmt: skip
_ANTHROPIC_PART_NAMES = (
    b"image", b"document", *(name.encode() for name in _ANTHROPIC_CONTEXT_PARTS)
)  # fmt: skip


def _openai_parts(acc: _Acc, content: Any) -> None:
    """Chat content parts and Responses input parts."""
    if not acc.mentions(*_OPENAI_PART_NAMES):
        return
    for part in _walk(content):
        kind = part.get("type")
        if kind in ("image_url", "input_image"):
            acc.extra += openai_image_tokens(acc.row.model)
        elif kind in ("input_audio",):
            raise Unbounded(
                "audio input is billed by its length at audio prices the wallet's catalog "
                "does not have; send text, or transcribe it first"
            )
        elif kind in ("file", "input_file"):
            acc.context("a file")
        elif kind == "item_reference":
            acc.context("an item reference")


def chat_bound(body: Mapping[str, Any], raw: bytes, row: PriceRow) -> Bound:
    acc = _Acc(row, raw)
    choices = whole(body, "n", lo=1, hi=MAX_CHOICES) or 1
    out, sets = _output(body, ("max_completion_tokens", "max_tokens"), row)
    acc.sets.update(sets)
    _openai_parts(acc, body.get("messages"))
    modalities = body.get("modalities")
    if (isinstance(modalities, list) and "audio" in modalities) or body.get("audio") is not None:
        raise Unbounded(
            "audio output is billed at audio prices the wallet's catalog does not have; "
            "ask for text"
        )
    # rejected prediction tokens are billed as output, beyond max_tokens: bound by bytes
    unlimited = len(raw) if body.get("prediction") is not None else 0
    if body.get("web_search_options") is not None:
        raise Unbounded(
            "search models bill their searches outside the usage the wallet meters; use the "
            "Responses API's web_search tool, whose calls the wallet bounds and bills"
        )
    _service_tier(body)
    return _bound(acc, out, choices, body, unlimited)


def responses_bound(body: Mapping[str, Any], raw: bytes, row: PriceRow) -> Bound:
    acc = _Acc(row, raw)
    out, sets = _output(body, ("max_output_tokens",), row)
    acc.sets.update(sets)
    if flag(body, "background"):
        raise Unbounded(
            "a background response is billed after this call returns, which the wallet "
            "cannot meter; run it in the foreground"
        )
    for name, why in (
        ("previous_response_id", "a previous response"),
        ("conversation", "a stored conversation"),
        ("prompt", "a stored prompt"),
    ):
        if body.get(name) is not None:
            acc.context(why)
    _openai_parts(acc, body.get("input"))
    tools = body.get("tools")
    uses = whole(body, "max_tool_calls", lo=0)
    fee_per_use = 0
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, Mapping):
            continue
        kind = str(tool.get("type") or "")
        if kind.startswith("web_search"):
            acc.context("web search results")
            fee_per_use = max(fee_per_use, OPENAI_TOOL_FEES["web_search"])
        elif kind == "file_search":
            acc.context("file search results")
            fee_per_use = max(fee_per_use, OPENAI_TOOL_FEES["file_search"])
        elif kind == "mcp":
            acc.context("a remote MCP server's results")
        elif kind == "image_generation":
            fee_per_use = max(fee_per_use, OPENAI_TOOL_FEES["image_generation"])
        elif kind == "code_interpreter":
            acc.context("code interpreter output")  # what its code prints, the model reads
            acc.fees += code_interpreter_fee(tool.get("container"))
    if fee_per_use:
        if uses is None:
            uses = DEFAULT_MAX_USES
            acc.sets["max_tool_calls"] = uses
        acc.fees += uses * fee_per_use
    _service_tier(body)
    return _bound(acc, out, 1, body)


def embeddings_bound(body: Mapping[str, Any], raw: bytes, row: PriceRow) -> Bound:
    """Every input is billed (up to 2,048 of them, 300,000 tokens in all), each up to the
    context window: the bytes bound their sum, the window does not."""
    return _bound(_Acc(row, raw, one_sequence=False), 0, 1, body)


def count_tokens_bound(body: Mapping[str, Any], raw: bytes, row: PriceRow) -> Bound:
    """Free, but parsed as strictly (and a token rate limit counts its prompt)."""
    return _bound(_Acc(row, raw), 0, 1, body)


def messages_bound(body: Mapping[str, Any], raw: bytes, row: PriceRow) -> Bound:
    acc = _Acc(row, raw)
    if whole(body, "max_tokens", lo=1) is None:
        raise InvalidInput("max_tokens: Field required", param="max_tokens")
    out, _ = _output(body, ("max_tokens",), row)
    parts = _walk([body.get("messages"), body.get("system")])
    for part in parts if acc.mentions(*_ANTHROPIC_PART_NAMES) else ():
        kind = part.get("type")
        if kind == "image":
            acc.extra += ANTHROPIC_IMAGE_TOKENS
        elif kind == "document":
            acc.context("a document")
        elif kind in _ANTHROPIC_CONTEXT_PARTS:
            acc.context(f"a {kind.replace('_', ' ')}")
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        acc.extra += ANTHROPIC_TOOL_PROMPT
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        if not isinstance(tool, Mapping):
            continue
        kind = str(tool.get("type") or "")
        family = kind.rsplit("_", 1)[0] if kind[-8:].isdigit() else kind
        if family in ANTHROPIC_TOOL_PROMPTS:
            acc.extra += ANTHROPIC_TOOL_PROMPTS[family]
        elif family in ("web_search", "web_fetch"):
            acc.context(f"{family.replace('_', ' ')} results")
            uses = whole(tool, "max_uses", lo=1)
            if uses is None:
                uses = DEFAULT_MAX_USES
                acc.sets[f"tools.{i}.max_uses"] = uses
            if family == "web_search":
                acc.fees += uses * ANTHROPIC_WEB_SEARCH
        elif family == "code_execution":
            raise Unbounded(
                "Anthropic's code execution is billed by container hours, which no request "
                "bounds; the wallet does not forward it"
            )
    if body.get("mcp_servers"):
        acc.context("a remote MCP server's results")
    _service_tier(body)
    return _bound(acc, out, 1, body)


def _service_tier(body: Mapping[str, Any]) -> None:
    tier = body.get("service_tier")
    if tier == "priority":
        raise Unbounded(
            "the priority service tier is billed at prices the wallet's catalog does not "
            "have; leave service_tier out, or use auto or default"
        )


def _bound(acc: _Acc, out: int, choices: int, body: Mapping[str, Any], unlimited: int = 0) -> Bound:
    prompt = acc.prompt()
    return Bound(
        prompt_tokens=prompt,
        output_tokens=out,
        choices=choices,
        cache_write=cache_write_of(body) if acc.mentions(b"cache_control") else CacheWrite.NONE,
        fees_nano=acc.fees,
        reasons=tuple(acc.reasons),
        sets=dict(acc.sets),
        unlimited_output=unlimited,
    )


BOUNDS = {
    "/v1/chat/completions": chat_bound,
    "/v1/responses": responses_bound,
    "/v1/embeddings": embeddings_bound,
    "/v1/messages": messages_bound,
    "/v1/messages/count_tokens": count_tokens_bound,
}
