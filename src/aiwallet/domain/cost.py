"""What a request costs, exactly, in nano-dollars.

Rule: for each kind of token, ``tokens × price`` (price in nano-dollars per 1M tokens) is
summed as an exact integer, and the sum is divided by 1,000,000 rounding UP, once per request.
A request is never under-charged by rounding, and never over-charged by more than one
nano-dollar.

* Reasoning tokens are billed at the row's ``reasoning`` price when it has one (the rest of
  the output at ``output``), else all output at ``output``.
* A row without a cache-read price bills cache reads at the input price; without a
  cache-write price, 5-minute cache writes at 1.25 × input (Anthropic's multiplier).
  1-hour cache writes are always 2 × input (Anthropic's rule; models.dev has no field).
* When the prompt (all input, cached or not) exceeds a tier's threshold, that tier's prices
  apply to the whole request.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiwallet.domain.bounds import Bound, CacheWrite
from aiwallet.domain.catalog import PriceRow
from aiwallet.domain.fees import tool_fees
from aiwallet.domain.usage import TokenSource, Usage

PER_MILLION = 1_000_000


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class Rates:
    """Effective prices (nano-dollars per 1M tokens) for one request, tier applied."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    cache_write_1h: int
    reasoning: int


def rates_for(row: PriceRow, prompt_tokens: int) -> Rates:
    tier = row.tier_for(prompt_tokens)
    inp = tier.input if tier else row.input
    out = tier.output if tier else row.output
    cache_read = (tier.cache_read if tier else None) or row.cache_read
    cache_write = (tier.cache_write if tier else None) or row.cache_write
    return Rates(
        input=inp,
        output=out,
        cache_read=inp if cache_read is None else cache_read,
        cache_write=_ceil_div(inp * 5, 4) if cache_write is None else cache_write,
        cache_write_1h=inp * 2,
        reasoning=out if row.reasoning is None else row.reasoning,
    )


@dataclass(frozen=True, slots=True)
class Cost:
    nano: int
    row_ref: str
    source: TokenSource
    breakdown: dict[str, int]  # per kind: tokens × price (nano per 1M), before the division


def cost_of(usage: Usage, row: PriceRow) -> Cost:
    """The cost of ``usage`` under ``row``."""
    r = rates_for(row, usage.total_prompt_tokens)
    plain_output = usage.output_tokens - usage.reasoning_tokens
    breakdown = {
        "input": usage.input_tokens * r.input,
        "cache_read": usage.cache_read_tokens * r.cache_read,
        "cache_write": usage.cache_write_tokens * r.cache_write,
        "cache_write_1h": usage.cache_write_1h_tokens * r.cache_write_1h,
        "output": plain_output * r.output,
        "reasoning": usage.reasoning_tokens * r.reasoning,
    }
    total = sum(breakdown.values())
    fees = tool_fees(usage.tool_uses)
    if fees:
        breakdown["tools"] = fees * PER_MILLION
    return Cost(_ceil_div(total, PER_MILLION) + fees, row.ref, usage.source, breakdown)


def _worst_rates(row: PriceRow, prompt_tokens: int, cache_writes: bool) -> tuple[int, int]:
    # The prompt may fall in any tier up to the bound's, so take the dearest of them.
    candidates = [rates_for(row, 0)] + [
        rates_for(row, t.threshold_tokens + 1)
        for t in row.tiers
        if t.threshold_tokens < prompt_tokens
    ]
    per_prompt = max(
        max(r.input, r.cache_read, *((r.cache_write, r.cache_write_1h) if cache_writes else ()))
        for r in candidates
    )
    per_output = max(max(r.output, r.reasoning) for r in candidates)
    return per_prompt, per_output


def worst_case_cost(
    prompt_tokens_upper_bound: int,
    max_output_tokens: int,
    row: PriceRow,
    *,
    cache_writes: bool = True,
) -> int:
    """An upper bound of the cost of any request whose prompt and output stay within these
    bounds: every prompt token at the dearest prompt price (cache-write prices only when the
    request can write a cache: Anthropic ``cache_control``), every output token at the
    dearest output price, in the dearest tier the prompt can fall in."""
    per_prompt, per_output = _worst_rates(row, prompt_tokens_upper_bound, cache_writes)
    total = prompt_tokens_upper_bound * per_prompt + max_output_tokens * per_output
    return _ceil_div(total, PER_MILLION)


def max_output_tokens_affordable(
    budget_nano: int, prompt_upper_bound: int, row: PriceRow, *, cache_writes: bool = True
) -> int:
    """The most output tokens whose worst case still fits ``budget_nano`` (0 if none do)."""
    per_prompt, per_output = _worst_rates(row, prompt_upper_bound, cache_writes)
    room = budget_nano * PER_MILLION - prompt_upper_bound * per_prompt
    if room < 0:
        return 0
    if per_output == 0:
        return 2**31 - 1
    return room // per_output


def bound_cost(bound: Bound, row: PriceRow) -> int:
    """The most a request within ``bound`` can cost: :func:`worst_case_cost` of its prompt
    and of every choice's output, plus its server-tool fees."""
    cache = bound.cache_write is not CacheWrite.NONE
    per_prompt, per_output = _worst_rates(row, bound.prompt_tokens, cache)
    total = bound.prompt_tokens * per_prompt + bound.total_output_tokens * per_output
    return _ceil_div(total, PER_MILLION) + bound.fees_nano


def affordable_output(budget_nano: int, bound: Bound, row: PriceRow) -> int:
    """The most a max-output field may allow per choice for the worst case to still fit
    ``budget_nano`` (room is kept for the output no field limits)."""
    cache = bound.cache_write is not CacheWrite.NONE
    per_prompt, per_output = _worst_rates(row, bound.prompt_tokens, cache)
    room = (budget_nano - bound.fees_nano) * PER_MILLION - bound.prompt_tokens * per_prompt
    if room < 0:
        return 0
    if per_output == 0:
        return 2**31 - 1
    return max(0, room // (per_output * bound.choices) - bound.unlimited_output)
