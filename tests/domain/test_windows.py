from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import Period
from aiwallet.domain.windows import describe_until, reset_instant, window_for

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # 30-minute DST shift
SANTIAGO = ZoneInfo("America/Santiago")  # DST gap at local midnight


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_day_window_is_local_midnight_to_midnight():
    w = window_for(Period.DAY, utc(2026, 11, 22, 14, 0), BERLIN)
    # Berlin is UTC+1 in November: local midnight is 23:00 UTC the day before.
    assert w.start == utc(2026, 11, 21, 23, 0)
    assert w.end == utc(2026, 11, 22, 23, 0)


def test_day_before_local_midnight_belongs_to_previous_local_day():
    # 23:30 UTC on the 21st is 00:30 on the 22nd in Berlin, but 18:30 on the 21st in New York.
    at = utc(2026, 11, 21, 23, 30)
    assert window_for(Period.DAY, at, BERLIN).start == utc(2026, 11, 21, 23, 0)
    assert window_for(Period.DAY, at, NEW_YORK).start == utc(2026, 11, 21, 5, 0)


def test_spring_forward_day_is_23_hours_long():
    # Europe/Berlin springs forward on 2026-03-29 at 02:00 local.
    w = window_for(Period.DAY, utc(2026, 3, 29, 12, 0), BERLIN)
    assert w.start == utc(2026, 3, 28, 23, 0)  # 00:00 CET (UTC+1)
    assert w.end == utc(2026, 3, 29, 22, 0)  # 00:00 CEST (UTC+2)
    assert w.end - w.start == timedelta(hours=23)


def test_fall_back_day_is_25_hours_long():
    # America/New_York falls back on 2026-11-01 at 02:00 local.
    w = window_for(Period.DAY, utc(2026, 11, 1, 15, 0), NEW_YORK)
    assert w.start == utc(2026, 11, 1, 4, 0)  # 00:00 EDT (UTC-4)
    assert w.end == utc(2026, 11, 2, 5, 0)  # 00:00 EST (UTC-5)
    assert w.end - w.start == timedelta(hours=25)


def test_instants_inside_the_repeated_hour_fall_in_the_same_day():
    first = utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    second = utc(2026, 11, 1, 6, 30)  # 01:30 EST, the repeated hour
    assert window_for(Period.DAY, first, NEW_YORK) == window_for(Period.DAY, second, NEW_YORK)


def test_half_hour_dst_zone():
    # Lord Howe moves between UTC+10:30 and UTC+11 (first Sunday of April 2026 at 02:00).
    w = window_for(Period.DAY, utc(2026, 4, 5, 3, 0), LORD_HOWE)
    assert w.end - w.start == timedelta(hours=24, minutes=30)


def test_midnight_gap_starts_day_at_first_existing_instant():
    # Chile springs forward at 00:00 local on 2026-09-06: 00:00 does not exist, 01:00 does.
    w = window_for(Period.DAY, utc(2026, 9, 6, 15, 0), SANTIAGO)
    assert w.start is not None
    local = w.start.astimezone(SANTIAGO)
    assert (local.date().isoformat(), local.hour) == ("2026-09-06", 1)
    assert w.end - w.start == timedelta(hours=23)


def test_week_starts_monday_and_spans_dst():
    # Sunday 2026-03-29 (Berlin DST day) is in the week of Monday 2026-03-23.
    w = window_for(Period.WEEK, utc(2026, 3, 29, 12, 0), BERLIN)
    assert w.start == utc(2026, 3, 22, 23, 0)
    assert w.start.astimezone(BERLIN).weekday() == 0
    assert w.end == utc(2026, 3, 29, 22, 0)
    assert w.end - w.start == timedelta(days=7, hours=-1)


def test_month_window_and_december_roll():
    w = window_for(Period.MONTH, utc(2026, 12, 31, 22, 0), NEW_YORK)
    assert w.start == utc(2026, 12, 1, 5, 0)
    assert w.end == utc(2027, 1, 1, 5, 0)
    # 23:30 UTC on Dec 31 is already January in Berlin.
    assert window_for(Period.MONTH, utc(2026, 12, 31, 23, 30), BERLIN).start == utc(
        2026, 12, 31, 23, 0
    )


def test_month_across_dst_change():
    w = window_for(Period.MONTH, utc(2026, 3, 15), BERLIN)
    assert w.start == utc(2026, 2, 28, 23, 0)
    assert w.end == utc(2026, 3, 31, 22, 0)


def test_total_never_resets():
    w = window_for(Period.TOTAL, utc(2026, 1, 1), BERLIN)
    assert (w.start, w.end, w.key) == (None, None, "total")
    assert reset_instant(Period.TOTAL, utc(2026, 1, 1), BERLIN) is None
    assert w.contains(utc(1999, 1, 1))


def test_naive_datetime_is_refused():
    with pytest.raises(InvalidInput):
        window_for(Period.DAY, datetime(2026, 1, 1), BERLIN)


ZONES = [BERLIN, NEW_YORK, LORD_HOWE, SANTIAGO, ZoneInfo("Asia/Kolkata"), ZoneInfo("UTC")]


@given(
    at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1)),
    zone=st.sampled_from(ZONES),
    period=st.sampled_from([Period.DAY, Period.WEEK, Period.MONTH]),
)
def test_windows_tile_time(at, zone, period):
    instant = at.replace(tzinfo=UTC)
    w = window_for(period, instant, zone)
    assert w.start is not None and w.end is not None
    assert w.contains(instant)
    # The next window starts exactly where this one ends: no gap, no overlap.
    nxt = window_for(period, w.end, zone)
    assert nxt.start == w.end
    prev = window_for(period, w.start - timedelta(microseconds=1), zone)
    assert prev.end == w.start
    assert reset_instant(period, instant, zone) == w.end


def test_describe_until():
    now = utc(2026, 1, 1, 12, 0)
    assert describe_until(now, now + timedelta(hours=3)) == "resets in 3 h"
    assert describe_until(now, now + timedelta(hours=2, minutes=30)) == "resets in 2 h 30 min"
    assert describe_until(now, now + timedelta(minutes=5)) == "resets in 5 min"
    assert describe_until(now, now + timedelta(days=3)) == "resets in 3 days"
    assert describe_until(now, now) == "resets now"
    assert describe_until(now, None) == "never resets"
