"""A reservation left open by a crash is billed with the price row it was reserved against
(every cost records its price row and the source of its token counts)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from aiwallet.domain.money import BudgetSpec, Period
from aiwallet.store import schema as t
from aiwallet.store.budgets import Budgets
from aiwallet.store.db import open_database
from aiwallet.store.records import SpendEntry

PRICED = SpendEntry("openai", "gpt-4o-mini", "models.dev:openai/gpt-4o-mini@abc", None, "estimated")


@pytest.fixture
def db(db_url):
    database = open_database(db_url)
    yield database
    database.dispose()


def test_recovered_spend_names_its_price_row(db):
    budgets = Budgets(db)
    b = budgets.set_budget(BudgetSpec(10**10, Period.DAY))
    now = datetime.now(UTC)
    res = budgets.reserve(
        [b.id], 7_000_000, at=now, tz=ZoneInfo("UTC"), request_id="req-1", priced=PRICED
    )
    assert (res.provider, res.model, res.price_row_ref) == (
        "openai", "gpt-4o-mini", "models.dev:openai/gpt-4o-mini@abc"
    )  # fmt: skip
    assert [r.price_row_ref for r in budgets.open_reservations()] == [PRICED.price_row_ref]
    [(recovered, outcome)] = budgets.recover_open(actor="test")
    assert outcome == "billed" and recovered.id == res.id
    with db.read() as conn:
        row = (
            conn.execute(select(t.ledger).where(t.ledger.c.request_id == "req-1")).mappings().one()
        )
    assert row["amount_nano"] == 7_000_000
    assert (row["provider"], row["model"], row["price_row_ref"]) == (
        "openai", "gpt-4o-mini", "models.dev:openai/gpt-4o-mini@abc"
    )  # fmt: skip
    assert row["token_source"] == "estimated"
    assert budgets.open_reservations() == []
