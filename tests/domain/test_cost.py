"""Costs of known usages, hand-computed to the nano-dollar."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiwallet.catalog_files import shipped_catalog
from aiwallet.domain.catalog import PriceRow, PriceTier
from aiwallet.domain.cost import cost_of, max_output_tokens_affordable, worst_case_cost
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import usd_to_nano
from aiwallet.domain.usage import TokenSource, Usage

CATALOG = shipped_catalog()


def per_m(usd: str) -> int:
    return usd_to_nano(Decimal(usd))


def test_gpt_4o_mini_with_cached_prompt():
    row = CATALOG.get("openai", "gpt-4o-mini")
    assert row is not None
    # The shipped snapshot's prices, per 1M tokens: input $0.15, output $0.60, cache read $0.08.
    assert (row.input, row.output, row.cache_read) == (per_m("0.15"), per_m("0.60"), per_m("0.08"))
    usage = Usage.from_openai_chat(
        {
            "prompt_tokens": 12_345,
            "completion_tokens": 678,
            "prompt_tokens_details": {"cached_tokens": 2_048},
        }
    )
    # uncached input 12345 - 2048 = 10297 tokens × $0.15/1M = $0.00154455
    # cache read     2048 tokens × $0.08/1M               = $0.00016384
    # output         678 tokens × $0.60/1M                = $0.0004068
    # total $0.00211519 = 2,115,190 nano-dollars (exact, no rounding needed)
    cost = cost_of(usage, row)
    assert cost.nano == 2_115_190
    assert cost.row_ref == row.ref and cost.row_ref.startswith("models.dev:openai/gpt-4o-mini@")
    assert cost.source is TokenSource.PROVIDER


def test_claude_sonnet_4_5_with_cache_reads_and_writes():
    row = CATALOG.get("anthropic", "claude-sonnet-4-5")
    assert row is not None
    assert (row.input, row.output, row.cache_read, row.cache_write) == (
        per_m("3"),
        per_m("15"),
        per_m("0.30"),
        per_m("3.75"),
    )
    usage = Usage.from_anthropic(
        {
            "input_tokens": 1_500,
            "cache_read_input_tokens": 40_000,
            "cache_creation_input_tokens": 8_000,
            "output_tokens": 1_234,
        }
    )
    # input 1500 × $3/1M      = $0.0045
    # cache read 40000 × $0.30/1M = $0.012
    # cache write 8000 × $3.75/1M = $0.03
    # output 1234 × $15/1M    = $0.01851
    # total $0.06501 = 65,010,000 nano-dollars
    assert cost_of(usage, row).nano == 65_010_000


def test_anthropic_one_hour_cache_writes_cost_twice_input():
    row = CATALOG.get("anthropic", "claude-sonnet-4-5")
    assert row is not None
    usage = Usage.from_anthropic(
        {
            "input_tokens": 10,
            "cache_creation_input_tokens": 3_000,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 1_000,
                "ephemeral_1h_input_tokens": 2_000,
            },
            "output_tokens": 0,
        }
    )
    # input 10 × 3 = 30; 5m writes 1000 × 3.75 = 3750; 1h writes 2000 × 6 = 12000 (USD per 1M)
    # sum 15780 / 1M = $0.01578 = 15,780,000 nano
    assert cost_of(usage, row).nano == 15_780_000


def test_reasoning_model_bills_reasoning_as_output():
    row = CATALOG.get("openai", "o3")
    assert row is not None and row.is_reasoning_model and row.reasoning is None
    assert (row.input, row.output, row.cache_read) == (per_m("2"), per_m("8"), per_m("0.5"))
    usage = Usage.from_openai_responses(
        {
            "input_tokens": 5_000,
            "input_tokens_details": {"cached_tokens": 1_000},
            "output_tokens": 3_000,
            "output_tokens_details": {"reasoning_tokens": 2_500},
        }
    )
    # uncached 4000 × $2 = 8000; cached 1000 × $0.5 = 500; output 3000 × $8 = 24000 (per 1M)
    # 32500 / 1M = $0.0325 = 32,500,000 nano; reasoning tokens are inside the 3000 output
    assert cost_of(usage, row).nano == 32_500_000


def test_row_with_distinct_reasoning_price():
    row = PriceRow(
        "test", "thinker", "Thinker", input=per_m("1"), output=per_m("4"), reasoning=per_m("3.5")
    )
    usage = Usage(input_tokens=1_000, output_tokens=900, reasoning_tokens=600)
    # input 1000 × 1 = 1000; plain output 300 × 4 = 1200; reasoning 600 × 3.5 = 2100
    # 4300 / 1M = $0.0043 = 4,300,000 nano
    assert cost_of(usage, row).nano == 4_300_000


def test_openai_and_anthropic_cache_semantics_differ():
    # The same numbers mean different things: OpenAI's cached tokens are inside prompt_tokens,
    # Anthropic's cache reads are outside input_tokens.
    oa = Usage.from_openai_chat(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 0,
            "prompt_tokens_details": {"cached_tokens": 800},
        }
    )
    an = Usage.from_anthropic(
        {"input_tokens": 1000, "cache_read_input_tokens": 800, "output_tokens": 0}
    )
    assert (oa.input_tokens, oa.cache_read_tokens, oa.total_prompt_tokens) == (200, 800, 1000)
    assert (an.input_tokens, an.cache_read_tokens, an.total_prompt_tokens) == (1000, 800, 1800)


def test_cost_rounds_up_once_per_request():
    row = PriceRow("test", "cheap", "Cheap", input=per_m("0.0375"), output=per_m("0.0625"))
    # 1 input token × $0.0375/1M = 37.5 nano → 38 (rounded up: never under-charge)
    assert cost_of(Usage(input_tokens=1), row).nano == 38
    # 3 input + 1 output: 112.5 + 62.5 = 175 nano exactly: rounding happens once, on the sum
    assert cost_of(Usage(input_tokens=3, output_tokens=1), row).nano == 175
    assert cost_of(Usage(), row).nano == 0


def test_long_context_tier_applies_to_whole_request():
    row = CATALOG.get("google", "gemini-2.5-pro")
    assert row is not None
    assert row.tiers == (PriceTier(200_000, per_m("2.5"), per_m("15"), per_m("0.25"), None),)
    small = Usage(input_tokens=200_000, output_tokens=1_000)
    big = Usage(input_tokens=200_001, output_tokens=1_000)
    # at the threshold: 200000 × 1.25 + 1000 × 10 = 260000 per 1M → $0.26
    assert cost_of(small, row).nano == 260_000_000
    # above it: 200001 × 2.5 + 1000 × 15 = 515002.5 → $0.5150025 = 515,002,500 nano
    assert cost_of(big, row).nano == 515_002_500


def test_malformed_usage_is_refused():
    for bad in (None, {}, {"prompt_tokens": -1}, {"prompt_tokens": "12"}, {"prompt_tokens": True}):
        with pytest.raises(InvalidInput):
            Usage.from_openai_chat(bad)
    with pytest.raises(InvalidInput):
        Usage.from_openai_chat({"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 6}})
    with pytest.raises(InvalidInput):
        Usage.from_anthropic({"output_tokens": 5})


rows = st.sampled_from(
    [r for r in CATALOG if r.provider in ("openai", "anthropic", "google")]
    + [PriceRow("t", "r", "R", input=per_m("1"), output=per_m("4"), reasoning=per_m("9"))]
)
counts = st.integers(min_value=0, max_value=400_000)


@st.composite
def usages(draw):
    out = draw(counts)
    return Usage(
        input_tokens=draw(counts),
        output_tokens=out,
        cache_read_tokens=draw(counts),
        cache_write_tokens=draw(counts),
        cache_write_1h_tokens=draw(st.integers(0, 10_000)),
        reasoning_tokens=draw(st.integers(0, out)),
    )


@given(usage=usages(), row=rows, extra_prompt=st.integers(0, 1000), extra_out=st.integers(0, 1000))
def test_worst_case_bounds_actual_cost(usage, row, extra_prompt, extra_out):
    bound_prompt = usage.total_prompt_tokens + extra_prompt
    bound_out = usage.output_tokens + extra_out
    assert worst_case_cost(bound_prompt, bound_out, row) >= cost_of(usage, row).nano


@given(
    usage=usages(),
    row=rows,
    field=st.sampled_from(["input_tokens", "output_tokens", "cache_read_tokens"]),
)
def test_cost_is_monotone_below_tier_thresholds(usage, row, field):
    more = Usage(**{**_fields(usage), field: getattr(usage, field) + 1})
    if row.tier_for(more.total_prompt_tokens) != row.tier_for(usage.total_prompt_tokens):
        return  # crossing a tier re-prices everything; monotone within a tier
    assert cost_of(more, row).nano >= cost_of(usage, row).nano


@given(budget=st.integers(0, 10**10), prompt=st.integers(0, 300_000), row=rows)
def test_affordable_output_fits_and_is_maximal(budget, prompt, row):
    n = max_output_tokens_affordable(budget, prompt, row)
    if n == 0:
        assert worst_case_cost(prompt, 1, row) > budget or worst_case_cost(prompt, 0, row) <= budget
        return
    assert worst_case_cost(prompt, n, row) <= budget
    if n < 2**31 - 1:
        assert worst_case_cost(prompt, n + 1, row) > budget


def _fields(u: Usage) -> dict:
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "cache_write_1h_tokens": u.cache_write_1h_tokens,
        "reasoning_tokens": u.reasoning_tokens,
    }


def test_cache_write_prices_count_only_when_a_request_can_write_a_cache():
    row = CATALOG.get("anthropic", "claude-sonnet-4-5")
    assert row is not None
    # 1000 prompt tokens: at input $3 → 3000; with 1-hour cache writes possible $6 → 6000 (per 1M)
    assert worst_case_cost(1000, 0, row, cache_writes=False) == 3_000_000
    assert worst_case_cost(1000, 0, row) == 6_000_000
