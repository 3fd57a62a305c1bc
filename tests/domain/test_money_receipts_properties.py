"""Properties: money text round-trips exactly; receipts verify, and any change breaks them."""

import nacl.signing
from hypothesis import given
from hypothesis import strategies as st

from aiwallet.domain.money import (
    MAX_AMOUNT_NANO,
    BudgetSpec,
    Period,
    format_usd,
    parse_budget_spec,
    parse_usd,
    usd_string,
)
from aiwallet.domain.receipts import sign_receipt, verify_receipt

amounts = st.integers(min_value=0, max_value=MAX_AMOUNT_NANO)


@given(amounts)
def test_exact_dollar_text_round_trips(nano):
    assert parse_usd(format_usd(nano, places=None)) == nano
    assert parse_usd(usd_string(nano)) == nano


@given(amounts, st.sampled_from(list(Period)))
def test_budget_specs_round_trip(nano, period):
    spec = BudgetSpec(nano, period)
    assert parse_budget_spec(str(spec)) == spec


@given(st.text(max_size=30))
def test_parsing_never_crashes(text):
    try:
        value = parse_usd(text)
    except Exception as exc:
        assert type(exc).__name__ == "InvalidInput"
    else:
        assert isinstance(value, int) and value >= 0


KEY = nacl.signing.SigningKey(b"\x01" * 32)
fields = st.fixed_dictionaries(
    {
        "receipt_id": st.uuids().map(str),
        "app": st.text(min_size=1, max_size=40),
        "scopes": st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=4),
        "budget": st.none() | st.just("2.00/day"),
        "period": st.none() | st.sampled_from(["day", "week", "month", "total"]),
        "issued_at": st.datetimes().map(lambda d: d.isoformat()),
        "expires_at": st.none() | st.datetimes().map(lambda d: d.isoformat()),
    }
)


@given(fields, st.data())
def test_receipts_verify_and_any_edit_breaks_them(receipt_fields, data):
    doc = sign_receipt(receipt_fields, KEY)
    assert verify_receipt(doc).ok
    name = data.draw(st.sampled_from(sorted(doc["receipt"])))
    tampered = {**doc, "receipt": {**doc["receipt"], name: f"{doc['receipt'][name]}!"}}
    check = verify_receipt(tampered)
    assert not check.ok
