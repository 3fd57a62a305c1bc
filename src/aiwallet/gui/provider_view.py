"""How providers read on the Providers page: key age, balance, a per-app key's cap and its
two figures (OpenRouter's and the wallet's). Text only, no Qt: the page and the tests share it.

Money is nano-dollars throughout; a "cent" is 10,000,000 nano."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiwallet.domain.money import format_usd
from aiwallet.domain.providers import Balance

CENT_NANO = 10_000_000  # the two figures of a per-app key may differ by this much unremarked
NOT_PUBLISHED = "not published"
RESET_WORDS = {"daily": "daily", "weekly": "weekly", "monthly": "monthly", None: "in total"}


def money(nano: int) -> str:
    """``$1.23``; under a cent the digits kept (``$0.00042``)."""
    if nano != 0 and abs(nano) < CENT_NANO:
        return format_usd(nano, places=None)
    return format_usd(nano)


def days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def key_age_text(age_days: int | None, after_days: int) -> str:
    """``12 days``, ``today``; past the rotation threshold ``rotate: 41 days old``;
    ``no key`` for a provider without one."""
    if age_days is None:
        return "no key"
    if after_days > 0 and age_days >= after_days:
        return f"rotate: {days(age_days)} old"
    return "today" if age_days == 0 else days(age_days)


def balance_text(balance: Balance | None) -> str:
    """One cell: what is left (the least known), then where it comes from."""
    if balance is None:
        return NOT_PUBLISHED
    if balance.problem:
        return f"unknown: {balance.problem}"
    parts: list[str] = []
    left = balance.left_nano
    if left is not None:
        parts.append(f"{money(left)} left")
    if balance.credits_nano is not None:
        parts.append(f"credits {money(balance.credits_nano)}")
    if balance.remaining_nano is not None:
        limit = f" of {money(balance.limit_nano)}" if balance.limit_nano is not None else ""
        parts.append(f"key limit {money(balance.remaining_nano)}{limit}")
    if not parts:
        used = money(balance.used_nano) if balance.used_nano is not None else "unknown"
        return f"no limit on this key; used {used}"
    return " · ".join(parts)


def balance_low(balance: Balance | None, threshold_nano: int | None) -> bool:
    left = balance.left_nano if balance is not None else None
    return threshold_nano is not None and left is not None and left < threshold_nano


def balance_of(item: Mapping[str, Any]) -> Balance:
    """A balance as the engine's ``balance.changed`` event carries it (``Balance.to_json``)."""

    def nano(key: str) -> int | None:
        value = item.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    problem = item.get("problem")
    return Balance(
        provider=str(item.get("provider", "")),
        remaining_nano=nano("remaining_nano"),
        limit_nano=nano("limit_nano"),
        used_nano=nano("used_nano"),
        problem=str(problem) if problem else None,
        credits_nano=nano("credits_nano"),
    )


def cap_text(limit_nano: int | None, reset: str | None) -> str:
    """``$2.00 daily``, ``$5.00 in total``, ``no cap``."""
    if limit_nano is None:
        return "no cap"
    return f"{money(limit_nano)} {RESET_WORDS.get(reset, reset or 'in total')}"


def figures_differ(provider_nano: int | None, wallet_nano: int) -> bool:
    """OpenRouter's figure for a key's window and the wallet's differ by more than a cent."""
    return provider_nano is not None and abs(provider_nano - wallet_nano) > CENT_NANO


def usd_field(stored: str) -> str:
    """A stored dollar preference (``5.000000000``) as a field shows it: ``5.00``; the
    digits beyond a cent kept when there are any (``0.125``)."""
    if not stored:
        return ""
    try:
        value = Decimal(stored)
    except InvalidOperation:
        return stored
    text = format(value.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def health_text(health: Mapping[str, Any] | None) -> tuple[str, bool]:
    """A provider's circuit breaker in words, and whether it is a warning: "ok", "paused until
    14:03:20" (open), "trying again" (one probe request allowed)."""
    if not health or health.get("health") in (None, "ok"):
        return "ok", False
    if health.get("health") == "probing":
        return "trying again", True
    at = health.get("retry_at")
    if isinstance(at, str):
        return f"paused until {datetime.fromisoformat(at).astimezone():%H:%M:%S}", True
    return "paused", True
