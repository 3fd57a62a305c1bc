"""The reservation journal and its replay: what a killed engine granted in memory but never
recorded is found at the next start, billed at its (grown) worst case, and nothing twice."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from aiwallet.domain.money import parse_budget_spec
from aiwallet.domain.windows import window_for
from aiwallet.store import schema as t
from aiwallet.store.budgets import Budgets, counter_key
from aiwallet.store.counter_events import CounterEvent
from aiwallet.store.db import open_database
from aiwallet.store.reservation_journal import Granted, Grown, ReservationJournal

UTCZ = ZoneInfo("UTC")
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(db_url):
    database = open_database(db_url)
    yield database
    database.dispose()


def _granted(budget, rid: str, amount: int) -> Granted:
    window = window_for(budget.period, NOW, UTCZ)
    return Granted(
        id=f"res-{rid}", request_id=rid, app_id=None, amount_nano=amount, created_at=NOW,
        parts=((budget.id, counter_key(budget, window), window.end),),
        provider="openai", model="gpt-4o-mini", price_row_ref="models.dev:openai/gpt-4o-mini@x",
    )  # fmt: skip


def _used(db, budget_id: int) -> int:
    c = t.budget_counters.c
    with db.read() as conn:
        return int(
            conn.execute(
                select(c.spent_nano + c.reserved_nano).where(c.budget_id == budget_id)
            ).scalar_one()
        )


def test_replay_records_only_what_is_missing_and_applies_growth(db, tmp_path):
    budgets = Budgets(db)
    b = budgets.set_budget(parse_budget_spec("1/day"))
    recorded, lost, grown = _granted(b, "a", 100), _granted(b, "b", 250), _granted(b, "c", 40)
    with db.begin() as conn:
        budgets.record_in(conn, recorded)  # the writer got this one in before the kill
    journal = ReservationJournal(tmp_path / "ledger-grants")
    journal.open()
    for entry in (recorded, lost, grown, Grown(grown.id, 90)):
        journal.append(entry)
    journal.close()
    with (tmp_path / "ledger-grants.1").open("ab") as fh:
        fh.write(_granted(b, "d", 999).line()[:-20])  # the kill came inside this write
    entries = list(ReservationJournal(tmp_path / "ledger-grants").entries())
    assert [e.id for e in entries] == ["res-a", "res-b", "res-c", "res-c"]
    with db.begin() as conn:
        assert budgets.replay_in(conn, entries) == 2
    with db.begin() as conn:
        assert budgets.replay_in(conn, entries) == 0  # twice changes nothing
    assert _used(db, b.id) == 100 + 250 + 90
    billed = {res.request_id: (res.amount_nano, o) for res, o in budgets.recover_open()}
    assert billed == {"a": (100, "billed"), "b": (250, "billed"), "c": (90, "billed")}
    assert budgets.state(b, NOW, UTCZ).spent_nano == 440
    with db.read() as conn:
        ledger = dict(conn.execute(select(t.ledger.c.request_id, t.ledger.c.token_source)).all())
    assert ledger == {"a": "estimated", "b": "estimated", "c": "estimated"}


def test_a_journal_rolls_over_into_numbered_segments(tmp_path):
    journal = ReservationJournal(tmp_path / "g", segment_bytes=600)
    journal.open()
    rolled = [journal.append(Grown(f"r{i}", i)) for i in range(40)]
    closed = [p for p in rolled if p is not None]
    assert len(closed) >= 2 and all(p.exists() for p in closed)
    assert [e.id for e in journal.entries()] == [f"r{i}" for i in range(40)]
    journal.remove_all()
    assert journal.segments() == []


def res_key(budget) -> str:
    return counter_key(budget, window_for(budget.period, datetime.now(UTC), UTCZ))


def test_counter_events_reach_the_listener_only_after_a_commit(db):
    budgets = Budgets(db)
    b = budgets.set_budget(parse_budget_spec("1/day"))
    heard: list[tuple[int, list[CounterEvent]]] = []
    db.counter_listener = lambda epoch, events: heard.append((epoch, events))
    try:
        res = budgets.reserve([b.id], 500, at=NOW, tz=UTCZ, request_id="x")
        with pytest.raises(RuntimeError), db.begin() as conn:
            assert budgets.release_in(conn, res.id)
            raise RuntimeError("rolled back")
        assert heard == []  # the release did not happen: nobody was told it did
        assert budgets.release(res.id)
        [(epoch, events)] = heard
        assert events == [CounterEvent(res.id, res.counter_ids, -500)] and epoch > 0
        assert budgets.counters_now([(b.id, res_key(b))]) == (epoch, [(res.counter_ids[0], 0)])
    finally:
        db.counter_listener = None
