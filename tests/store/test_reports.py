"""Spend reports (charts, totals) equal the ledger exactly, on SQLite (hourly rollup kept by
a trigger, partial hours from the ledger) and PostgreSQL (ledger through a covering index)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, insert, select, text

from aiwallet.domain.windows import bucket_edges
from aiwallet.store import schema as t
from aiwallet.store.apps import Apps
from aiwallet.store.db import open_database
from aiwallet.store.reports import Reports, RequestFilter

NOW = datetime(2026, 3, 29, 13, 17, 5, 123456, tzinfo=UTC)  # Europe's DST change day


@pytest.fixture
def db(db_url):
    database = open_database(db_url)
    yield database
    database.dispose()


def _seed(db, rng: random.Random, n: int = 600) -> list[dict]:
    apps = Apps(db)
    ids = [
        apps.create(f"app{i}", key_hash=f"{i:064d}", key_prefix="aw_app_x", scopes=["*"],
                    budget_spec=None)[0].id
        for i in range(3)
    ]  # fmt: skip
    rows = []
    for i in range(n):
        # Plenty of instants on and around hour and half-hour boundaries.
        base = NOW - timedelta(hours=rng.randint(0, 24 * 9))
        base = base.replace(minute=rng.choice((0, 0, 15, 29, 30, 44, 45, 59)), microsecond=0)
        ts = base + timedelta(microseconds=rng.choice((0, 0, 1, 999_999)))
        rows.append(
            {
                "ts": ts,
                "kind": rng.choice(("spend", "spend", "spend", "topup")),
                "app_id": rng.choice([*ids, None]),
                "request_id": f"r{i}",
                "amount_nano": rng.randint(1, 50_000_000),
                "provider": "openai",
                "model": rng.choice(("gpt-4o-mini", "claude-sonnet-4-5", None)),
                "price_row_ref": None,
                "price_row": None,
                "token_source": "provider",
                "note": None,
            }
        )
    with db.begin() as conn:
        conn.execute(insert(t.ledger), rows)
    return rows


def _expected(rows, lo, hi, app_id=None):
    return sum(
        r["amount_nano"]
        for r in rows
        if r["kind"] == "spend"
        and (lo is None or r["ts"] >= lo)
        and (hi is None or r["ts"] < hi)
        and (app_id is None or r["app_id"] == app_id)
    )


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Asia/Kolkata", "Australia/Eucla"])
def test_buckets_equal_the_ledger_in_every_zone(db, zone):
    rows = _seed(db, random.Random(zone))
    reports = Reports(db)
    tz = ZoneInfo(zone)
    names = reports.app_names()
    for unit, count in (("hour", 24), ("day", 10), ("week", 2)):
        edges = bucket_edges(unit, count, NOW, tz)
        for group in ("app", "model"):
            series = reports.spend_series(edges, group)
            for i in range(len(edges) - 1):
                lo, hi = edges[i], edges[i + 1]
                expected: dict[str, int] = {}
                for r in rows:
                    if r["kind"] == "spend" and lo <= r["ts"] < hi:
                        if group == "app":
                            key = names[r["app_id"]] if r["app_id"] else "(no app)"
                        else:
                            key = r["model"] or "(unknown model)"
                        expected[key] = expected.get(key, 0) + r["amount_nano"]
                got = {k: v[i] for k, v in series.values.items() if v[i]}
                assert got == expected, (unit, group, i)
            assert series.total_nano == _expected(rows, edges[0], edges[-1])


def test_totals_with_open_ends_and_one_app(db):
    rows = _seed(db, random.Random(3))
    reports = Reports(db)
    app_id = Reports(db).app_names().popitem()[0]
    cut = NOW - timedelta(days=2, minutes=30, microseconds=1)
    assert reports.spend_total() == _expected(rows, None, None)
    assert reports.spend_total(cut) == _expected(rows, cut, None)
    assert reports.spend_total(None, cut) == _expected(rows, None, cut)
    assert reports.spend_total(app_id=app_id) == _expected(rows, None, None, app_id)
    # One app's series is grouped by model and covers only that app.
    edges = bucket_edges("day", 10, NOW, ZoneInfo("Asia/Kolkata"))
    series = reports.spend_series(edges, "app", app_id=app_id)
    assert series.total_nano == _expected(rows, edges[0], edges[-1], app_id)


def test_rollup_backfill_equals_the_trigger(db):
    if not db.is_sqlite:
        pytest.skip("the hourly rollup exists on SQLite only")
    _seed(db, random.Random(5))
    with db.read() as conn:
        by_trigger = sorted(conn.execute(select(t.spend_hourly)).all())
    from importlib import import_module

    migration = import_module("aiwallet.store.migrations.versions.0003_spend_rollup")
    with db.begin() as conn:
        conn.execute(delete(t.spend_hourly))
        conn.execute(text(migration._BACKFILL))
    with db.read() as conn:
        assert sorted(conn.execute(select(t.spend_hourly)).all()) == by_trigger


def test_request_pages_are_newest_first_without_gaps(db):
    from aiwallet.store.ledger import Requests
    from aiwallet.store.records import RequestRecord

    requests = Requests(db)
    same = NOW - timedelta(minutes=5)
    for i in range(45):
        ts = same if i % 3 == 0 else NOW - timedelta(minutes=i)  # ties on ts too
        requests.record(RequestRecord(id=f"q{i:02d}", ts=ts, endpoint="/v1/messages", status=200))
    reports = Reports(db)
    seen, before = [], None
    while True:
        page = reports.request_page(RequestFilter(), before=before, limit=7)
        if not page:
            break
        seen += page
        before = (page[-1].ts, page[-1].id)
    assert sorted(r.id for r in seen) == sorted(f"q{i:02d}" for i in range(45))
    assert [(r.ts, r.id) for r in seen] == sorted(((r.ts, r.id) for r in seen), reverse=True)
    assert reports.request_count(RequestFilter(since=NOW - timedelta(minutes=10))) == len(
        [r for r in seen if r.ts >= NOW - timedelta(minutes=10)]
    )
    assert reports.request_count(RequestFilter()) == 45  # no filter: every row, not 1
