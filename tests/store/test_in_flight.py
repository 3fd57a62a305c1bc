"""A budget can say how many open reservations hold how much of it (for a refusal's
message), on SQLite and PostgreSQL."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from aiwallet.domain.errors import BudgetExceeded
from aiwallet.domain.money import parse_budget_spec
from aiwallet.store.apps import Apps
from aiwallet.store.budgets import BudgetRefused, Budgets, InFlight
from aiwallet.store.db import open_database

UTCZ = ZoneInfo("UTC")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(db_url):
    database = open_database(db_url)
    yield database
    database.dispose()


def test_in_flight_counts_the_open_reservations_of_each_budget(db):
    budgets, apps = Budgets(db), Apps(db)
    wallet = budgets.set_budget(parse_budget_spec("10/day"))
    a, _ = apps.create("a", key_hash="h" * 64, key_prefix="aw_a", scopes=["*"], budget_spec=None)
    b, _ = apps.create("b", key_hash="k" * 64, key_prefix="aw_b", scopes=["*"], budget_spec=None)
    a_budget = budgets.set_budget(parse_budget_spec("1/day"), app_id=a.id)
    assert wallet is not None and a_budget is not None
    assert budgets.in_flight(a_budget, NOW, UTCZ) == InFlight(0, 0)  # no counter yet
    both = sorted([wallet.id, a_budget.id])
    r1 = budgets.reserve(both, 300_000_000, at=NOW, tz=UTCZ, request_id="r1", app_id=a.id)
    budgets.reserve(both, 400_000_000, at=NOW, tz=UTCZ, request_id="r2", app_id=a.id)
    budgets.reserve([wallet.id], 2_000_000_000, at=NOW, tz=UTCZ, request_id="r3", app_id=b.id)
    assert budgets.in_flight(a_budget, NOW, UTCZ) == InFlight(2, 700_000_000)
    assert budgets.in_flight(wallet, NOW, UTCZ) == InFlight(3, 2_700_000_000)
    budgets.release(r1.id)
    assert budgets.in_flight(a_budget, NOW, UTCZ) == InFlight(1, 400_000_000)
    # the refusal of the next request names them
    with pytest.raises(BudgetExceeded) as err:
        budgets.reserve(both, 700_000_000, at=NOW, tz=UTCZ, request_id="r4", app_id=a.id)
    refused = err.value
    assert isinstance(refused, BudgetRefused) and refused.remaining_nano == 600_000_000
    text = str(refused.explained(budgets.in_flight(refused.budget, NOW, UTCZ)))
    assert "has $0.60 left" in text and "1 request in flight holds $0.40 of it" in text
    # another day's window holds nothing
    later = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert budgets.in_flight(a_budget, later, UTCZ) == InFlight(0, 0)
