"""Money as integer nano-dollars (1e-9 USD), and budget specs such as ``2.50/day``.

No float ever touches an amount: text is parsed with :class:`decimal.Decimal` and turned
into an ``int`` exactly; anything finer than a nano-dollar is refused, not rounded.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from aiwallet.domain.errors import InvalidInput

NANOS_PER_USD = 1_000_000_000
_NANO = Decimal(1).scaleb(-9)

# A sanity ceiling for any single amount: one billion dollars.
MAX_AMOUNT_NANO = 10**9 * NANOS_PER_USD


class Period(enum.StrEnum):
    """How often a budget starts over."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    TOTAL = "total"

    @property
    def adjective(self) -> str:
        return {"day": "daily", "week": "weekly", "month": "monthly", "total": "in total"}[
            self.value
        ]


_PERIOD_ALIASES: dict[str, Period] = {
    "day": Period.DAY,
    "daily": Period.DAY,
    "d": Period.DAY,
    "week": Period.WEEK,
    "weekly": Period.WEEK,
    "w": Period.WEEK,
    "month": Period.MONTH,
    "monthly": Period.MONTH,
    "mo": Period.MONTH,
    "total": Period.TOTAL,
    "once": Period.TOTAL,
    "lifetime": Period.TOTAL,
}

_AMOUNT_RE = re.compile(
    r"^\s*\$?\s*(?P<num>[0-9][0-9_,]*(?:\.[0-9]+)?|\.[0-9]+)\s*(?:usd)?\s*$", re.I
)


def usd_to_nano(value: Decimal | int | str) -> int:
    """Exact conversion of a dollar amount to nano-dollars; refuses sub-nano precision."""
    if isinstance(value, bool):
        raise InvalidInput("an amount must be a number of dollars, not true/false")
    if isinstance(value, float):  # pragma: no cover - guarded by the type, kept for safety
        raise InvalidInput("amounts are never floats; pass a string or Decimal")
    dec = value if isinstance(value, Decimal) else Decimal(value)
    if not dec.is_finite():
        raise InvalidInput(f"{value!s} is not an amount of money")
    scaled = dec.scaleb(9)
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"{value!s} has more precision than a nano-dollar (9 decimals)")
    return int(scaled)


def parse_usd(text: str) -> int:
    """Parse a dollar amount typed by a person (``2.50``, ``$10``, ``1,000``) to nano-dollars.

    Negative amounts are refused: a budget or top-up is never below zero.
    """
    if not isinstance(text, str):
        raise InvalidInput("an amount must be text such as 2.50")
    m = _AMOUNT_RE.match(text)
    if not m:
        raise InvalidInput(
            f"{text.strip()!r} is not an amount of dollars; write it like 2.50 or $10"
        )
    num = m.group("num").replace("_", "").replace(",", "")
    try:
        nano = usd_to_nano(Decimal(num))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only digits
        raise InvalidInput(f"{text!r} is not an amount of dollars") from exc
    if nano > MAX_AMOUNT_NANO:
        raise InvalidInput(f"{text.strip()} is more than this wallet can hold")
    return nano


def nano_to_decimal(nano: int) -> Decimal:
    """Exact dollars as a Decimal, for the edges (JSON, headers)."""
    return Decimal(nano).scaleb(-9)


def format_usd(nano: int, *, places: int | None = 2, sign: bool = False) -> str:
    """``$1.23`` style text.

    ``places=None`` prints the exact value with trailing zeros trimmed to at least two
    decimals (``$0.000150``→``$0.00015``). With a fixed ``places`` the amount is rounded
    half-to-even for display only; storage never sees the rounded value.
    """
    neg = nano < 0
    dec = nano_to_decimal(abs(nano))
    if places is None:
        text = format(dec.normalize(), "f")
        whole, _, frac = text.partition(".")
        frac = frac.rstrip("0").ljust(2, "0")
        body = f"{int(whole):,}.{frac}"
    else:
        q = dec.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
        body = f"{q:,.{places}f}"
    prefix = "-" if neg else ("+" if sign and nano > 0 else "")
    return f"{prefix}${body}"


def format_usd_short(nano: int, *, digits: int = 3) -> str:
    """Dollars for a tight place: cents from a cent up (``$1.23``); under a cent the first
    ``digits`` significant digits, trailing zeros dropped (``$0.00105``, ``$0.000123``), so
    a small cost never reads as ``$0.00`` or loses its digits. Display only (rounded
    half-to-even); an exact figure goes through ``format_usd(places=None)``."""
    if nano == 0 or abs(nano) >= 10_000_000:
        return format_usd(nano)
    places = 2
    while abs(nano) * 10**places < NANOS_PER_USD * 10 ** (digits - 1) and places < 9:
        places += 1
    text = format_usd(nano, places=places)
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.rstrip('0').ljust(2, '0')}"


def usd_string(nano: int) -> str:
    """Exact machine-readable dollars, e.g. ``0.000123450`` (9 decimals), for headers and JSON."""
    neg = nano < 0
    whole, frac = divmod(abs(nano), NANOS_PER_USD)
    return f"{'-' if neg else ''}{whole}.{frac:09d}"


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    """An amount of money per period, e.g. ``2.50/day`` or ``5 total``."""

    amount_nano: int
    period: Period

    def __str__(self) -> str:
        amount = format_usd(self.amount_nano, places=None).lstrip("$")
        if self.period is Period.TOTAL:
            return f"{amount} total"
        return f"{amount}/{self.period.value}"

    def describe(self) -> str:
        """``$2.50 per day`` / ``$5.00 in total``, for people."""
        amount = format_usd(self.amount_nano, places=None)
        if self.period is Period.TOTAL:
            return f"{amount} in total"
        return f"{amount} per {self.period.value}"


_SPEC_RE = re.compile(
    r"^\s*(?P<amount>[^/\s]+(?:\s*usd)?)\s*(?:(?:/|\s+per\s+|\s+)(?P<period>[a-z]+))?\s*$", re.I
)


def parse_budget_spec(text: str) -> BudgetSpec:
    """Parse ``2.50/day``, ``10/week``, ``40/month``, ``5 total``, ``$3 per day``.

    A bare amount without a period is refused: a budget always says when it starts over.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("a budget looks like 2.50/day, 10/week, 40/month or 5 total")
    m = _SPEC_RE.match(text)
    if not m or not m.group("period"):
        raise InvalidInput(
            f"{text.strip()!r} is not a budget; write an amount and a period such as "
            "2.50/day, 10/week, 40/month or 5 total"
        )
    period = _PERIOD_ALIASES.get(m.group("period").lower())
    if period is None:
        raise InvalidInput(
            f"{m.group('period')!r} is not a budget period; use day, week, month or total"
        )
    return BudgetSpec(parse_usd(m.group("amount")), period)
