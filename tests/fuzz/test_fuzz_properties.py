"""Properties the domain tests (tests/domain) did not yet state.

- money: parse_usd / parse_budget_spec give exact integers (never a float) for every way of
  writing an amount, equal to the decimal value × 10⁹, and specs round-trip;
- cost: cost_of is additive over splits of one request's usage within a tier (up to the one
  rounding), never negative, and rounded up exactly once (not per kind of token);
- windows: a window contains its start, excludes its end, and is the window of every instant
  in it; consecutive windows tile time, TOTAL contains everything;
- receipts: canonical JSON does not depend on key order, nor does a receipt's signature.

Short mode: hypothesis' default 100 examples per property (200 for the cost ones);
``AIWALLET_FUZZ_LONG=1``: 2,000.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiwallet.catalog_files import shipped_catalog
from aiwallet.domain.audit import canonical_json
from aiwallet.domain.catalog import PriceRow, PriceTier
from aiwallet.domain.cost import PER_MILLION, cost_of, rates_for
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import (
    MAX_AMOUNT_NANO,
    BudgetSpec,
    Period,
    parse_budget_spec,
    parse_usd,
)
from aiwallet.domain.receipts import sign_receipt, verify_receipt
from aiwallet.domain.usage import Usage
from aiwallet.domain.windows import window_for
from fuzz.conftest import scaled

N = scaled(100, 2000)
many = settings(max_examples=N, deadline=None)
more = settings(max_examples=scaled(200, 2000), deadline=None)


# -- money -----------------------------------------------------------------------------------
@st.composite
def amount_texts(draw, dollar_signs=("", "$", "$ ")) -> tuple[str, Fraction]:
    """A dollar amount as a person may type it, and its exact value."""
    whole = draw(st.integers(0, 10**7))
    places = draw(st.integers(0, 12))
    frac = draw(st.integers(0, 10**places - 1)) if places else 0
    digits = f"{whole:,}" if draw(st.booleans()) else str(whole)
    text = digits + (f".{frac:0{places}d}" if places else "")
    if whole == 0 and places and draw(st.booleans()):
        text = text[1:]  # ".25"
    text = draw(st.sampled_from(dollar_signs)) + text + draw(st.sampled_from(["", " usd"]))
    exact = Fraction(whole) + (Fraction(frac, 10**places) if places else 0)
    return draw(st.sampled_from(["", " "])) + text, exact


@many
@given(amount_texts())
def test_parse_usd_is_exact_and_never_a_float(case):
    text, exact = case
    nano = exact * 10**9
    if nano.denominator != 1:  # finer than a nano-dollar: refused, not rounded
        with pytest.raises(InvalidInput):
            parse_usd(text)
        return
    value = parse_usd(text)
    assert type(value) is int and value == nano.numerator


@many
@given(
    amount_texts(dollar_signs=("", "$")),  # a budget is one word before its period
    st.sampled_from(["/", " /", " per ", " "]),
    st.sampled_from(["day", "daily", "d", "week", "w", "month", "mo", "total", "lifetime"]),
)
def test_parse_budget_spec_is_exact_and_round_trips(case, sep, period):
    text, exact = case
    nano = exact * 10**9
    if nano.denominator != 1 or nano > MAX_AMOUNT_NANO:
        with pytest.raises(InvalidInput):
            parse_budget_spec(text + sep + period)
        return
    spec = parse_budget_spec(text + sep + period)
    assert type(spec.amount_nano) is int and spec.amount_nano == nano.numerator
    assert parse_budget_spec(str(spec)) == spec
    assert BudgetSpec(spec.amount_nano, spec.period) == spec


@many
@given(st.text(max_size=40))
def test_parse_budget_spec_refuses_or_gives_integers(text):
    try:
        spec = parse_budget_spec(text)
    except InvalidInput:
        return
    assert type(spec.amount_nano) is int and 0 <= spec.amount_nano <= MAX_AMOUNT_NANO
    assert isinstance(spec.period, Period)


# -- cost ------------------------------------------------------------------------------------
CATALOG = shipped_catalog()
rows = st.sampled_from(
    [r for r in CATALOG if r.provider in ("openai", "anthropic", "google")]
    + [
        PriceRow("t", "odd", "Odd", input=1, output=3, reasoning=7, cache_read=0),
        PriceRow(
            "t",
            "tiered",
            "Tiered",
            input=1_234_567,
            output=7_654_321,
            tiers=(PriceTier(1000, 2_345_679, 8_765_433, cache_read=11),),
        ),
    ]
)
counts = st.integers(0, 300_000)


@st.composite
def usages(draw) -> Usage:
    out = draw(counts)
    return Usage(
        input_tokens=draw(counts),
        output_tokens=out,
        cache_read_tokens=draw(counts),
        cache_write_tokens=draw(counts),
        cache_write_1h_tokens=draw(st.integers(0, 10_000)),
        reasoning_tokens=draw(st.integers(0, out)),
    )


@st.composite
def splits(draw, usage: Usage) -> tuple[Usage, Usage]:
    """``usage`` cut in two parts (reasoning never more than output in either)."""
    out_a = draw(st.integers(0, usage.output_tokens))
    out_b = usage.output_tokens - out_a
    r_lo = max(0, usage.reasoning_tokens - out_b)
    r_a = draw(st.integers(r_lo, min(out_a, usage.reasoning_tokens)))
    part = {
        name: draw(st.integers(0, getattr(usage, name)))
        for name in (
            "input_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
        )
    }
    a = Usage(**part, output_tokens=out_a, reasoning_tokens=r_a)
    b = Usage(
        **{name: getattr(usage, name) - v for name, v in part.items()},
        output_tokens=out_b,
        reasoning_tokens=usage.reasoning_tokens - r_a,
    )
    return a, b


def _exact(usage: Usage, row: PriceRow) -> Fraction:
    """The cost in nano-dollars as an exact fraction (each kind's own share, unrounded)."""
    r = rates_for(row, usage.total_prompt_tokens)
    shares = [
        (usage.input_tokens, r.input),
        (usage.cache_read_tokens, r.cache_read),
        (usage.cache_write_tokens, r.cache_write),
        (usage.cache_write_1h_tokens, r.cache_write_1h),
        (usage.output_tokens - usage.reasoning_tokens, r.output),
        (usage.reasoning_tokens, r.reasoning),
    ]
    return sum((Fraction(tokens * price, PER_MILLION) for tokens, price in shares), Fraction(0))


@more
@given(usage=usages(), row=rows, data=st.data())
def test_cost_is_additive_over_splits_within_a_tier(usage, row, data):
    a, b = data.draw(splits(usage))
    tiers = {rates_for(row, u.total_prompt_tokens) for u in (usage, a, b)}
    if len(tiers) != 1:
        return  # a smaller part may fall below a tier threshold: priced differently
    whole, parts = cost_of(usage, row).nano, cost_of(a, row).nano + cost_of(b, row).nano
    assert sum(cost_of(usage, row).breakdown.values()) == sum(
        cost_of(a, row).breakdown.values()
    ) + sum(cost_of(b, row).breakdown.values())
    assert parts - 1 <= whole <= parts  # each part rounds up once; the whole once


@more
@given(usage=usages(), row=rows)
def test_cost_is_never_negative_and_rounded_up_once(usage, row):
    cost = cost_of(usage, row)
    exact = _exact(usage, row)
    assert type(cost.nano) is int and cost.nano >= 0
    assert cost.nano == math.ceil(exact)  # once, over the whole request
    assert 0 <= cost.nano - exact < 1
    per_kind = sum(math.ceil(Fraction(v, PER_MILLION)) for v in cost.breakdown.values())
    assert cost.nano <= per_kind  # rounding each kind up would over-charge


def test_rounding_once_differs_from_rounding_per_kind():
    """The property above can tell the two apart: a case where they differ."""
    row = PriceRow("t", "odd", "Odd", input=1, output=3)
    usage = Usage(input_tokens=1, output_tokens=1)  # 1/1e6 + 3/1e6 nano: 1 once, 2 per kind
    assert cost_of(usage, row).nano == 1
    breakdown = cost_of(usage, row).breakdown.values()
    assert sum(math.ceil(Fraction(v, PER_MILLION)) for v in breakdown) == 2


# -- windows ---------------------------------------------------------------------------------
ZONES = [
    ZoneInfo(z)
    for z in (
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "America/Santiago",
        "Asia/Kathmandu",
        "Pacific/Apia",
        "UTC",
    )
]
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC)
)
US = timedelta(microseconds=1)


@many
@given(at=instants, zone=st.sampled_from(ZONES), period=st.sampled_from(list(Period)))
def test_a_window_contains_its_start_and_excludes_its_end(at, zone, period):
    w = window_for(period, at, zone)
    assert w.contains(at)
    if period is Period.TOTAL:
        assert w.start is None and w.end is None
        assert w.contains(datetime(1970, 1, 1, tzinfo=UTC)) and w.contains(at + timedelta(1e5))
        return
    assert w.start is not None and w.end is not None and w.start < w.end
    assert w.contains(w.start) and not w.contains(w.end)
    assert w.contains(w.end - US) and not w.contains(w.start - US)
    # every instant of the window has this window
    assert window_for(period, w.start, zone) == w == window_for(period, w.end - US, zone)


@many
@given(
    at=instants,
    zone=st.sampled_from(ZONES),
    period=st.sampled_from([Period.DAY, Period.WEEK, Period.MONTH]),
    n=st.integers(2, 6),
)
def test_consecutive_windows_tile(at, zone, period, n):
    windows = [window_for(period, at, zone)]
    for _ in range(n):
        windows.append(window_for(period, windows[-1].end, zone))
    for before, after in itertools.pairwise(windows):
        assert before.end == after.start and before.start < after.start
        assert not after.contains(before.end - US) and not before.contains(after.start)


# -- receipts --------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=15,
)


def _shuffled(value, rnd: random.Random):
    """The same value with every object's keys in another insertion order."""
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: _shuffled(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rnd) for v in value]
    return value


@many
@given(value=st.dictionaries(st.text(max_size=8), json_values, max_size=6), seed=st.integers())
def test_canonical_json_does_not_depend_on_key_order(value, seed):
    other = _shuffled(value, random.Random(seed))
    text = canonical_json(value)
    assert canonical_json(other) == text
    assert text.isascii() and json.loads(text) == value
    assert canonical_json(json.loads(text)) == text


KEY = nacl.signing.SigningKey(b"\x02" * 32)
receipt_fields = st.fixed_dictionaries(
    {
        "receipt_id": st.uuids().map(str),
        "app": st.text(min_size=1, max_size=20),
        "scopes": st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=3),
        "budget": st.none() | st.just("2.00/day"),
        "period": st.none() | st.sampled_from(["day", "week", "month", "total"]),
        "issued_at": st.datetimes().map(lambda d: d.isoformat()),
        "expires_at": st.none() | st.datetimes().map(lambda d: d.isoformat()),
    }
)


@many
@given(fields=receipt_fields, seed=st.integers())
def test_a_receipts_signature_does_not_depend_on_key_order(fields, seed):
    rnd = random.Random(seed)
    doc = sign_receipt(fields, KEY)
    again = sign_receipt(_shuffled(fields, rnd), KEY)
    assert again["signature"] == doc["signature"]  # Ed25519 is deterministic
    reordered = {**doc, "receipt": _shuffled(doc["receipt"], rnd)}
    assert verify_receipt(reordered).ok
