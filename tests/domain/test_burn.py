"""Burn rate and run-out (domain/burn.py, shared by the desktop app and the notebook), and
short money that keeps a sub-cent cost's significant digits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiwallet.domain.burn import Outlook, project, span_text
from aiwallet.domain.money import NANOS_PER_USD, format_usd_short
from aiwallet.notebook.status import _projection

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
DOLLAR = NANOS_PER_USD


def test_projection_outcomes():
    reset = NOW + timedelta(hours=10)
    assert project(0, DOLLAR, NOW, reset).outlook is Outlook.NOTHING_LEFT
    assert project(DOLLAR, 0, NOW, reset).outlook is Outlook.IDLE
    # $2 left at $1/h: out in two hours, before the reset.
    p = project(2 * DOLLAR, DOLLAR, NOW, reset)
    assert p.outlook is Outlook.RUNS_OUT and p.out_at == NOW + timedelta(hours=2)
    # $20 left at $1/h lasts past the reset; a total budget (no reset) runs out all the same.
    assert project(20 * DOLLAR, DOLLAR, NOW, reset).outlook is Outlook.LASTS
    assert project(20 * DOLLAR, DOLLAR, NOW, None).out_at == NOW + timedelta(hours=20)


def test_the_notebook_uses_the_same_projection():
    reset = NOW + timedelta(hours=10)
    text, fraction = _projection(2 * DOLLAR, DOLLAR, NOW, reset, NOW - timedelta(hours=10))
    assert text.startswith("runs out in 2 h 0 min") and fraction == 0.6
    assert _projection(20 * DOLLAR, DOLLAR, NOW, reset, None)[0] == (
        "lasts until the reset at this rate"
    )
    assert _projection(0, DOLLAR, NOW, reset, None) == ("nothing left", None)


def test_span_text():
    assert span_text(NOW + timedelta(minutes=200), NOW) == "3 h 20 min"
    assert span_text(NOW + timedelta(days=2, hours=4), NOW) == "2 d 4 h"
    assert span_text(NOW + timedelta(seconds=5), NOW) == "1 min"


def test_short_money_keeps_a_sub_cent_amounts_digits():
    assert format_usd_short(1_050_000) == "$0.00105"  # not $0.0010, not <$0.01
    assert format_usd_short(123_456) == "$0.000123"
    assert format_usd_short(4_200_000) == "$0.0042"
    assert format_usd_short(5) == "$0.000000005"
    assert format_usd_short(-1_050_000) == "-$0.00105"
    assert format_usd_short(0) == "$0.00"
    assert format_usd_short(12_345_678_900) == "$12.35"
    assert format_usd_short(10_000_000) == "$0.01"
