"""What each app's provider-side key should be: capped like the app's budget, disabled while
the app (or the whole wallet) is paused or revoked, gone once the app is.

OpenRouter keys take a spending ``limit`` in USD and a ``limit_reset`` of daily, weekly or
monthly (at UTC midnight, weeks Monday to Sunday); a budget in total has no reset. The plan
is pure: the engine carries it out against the provider's management API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiwallet.domain.money import BudgetSpec, Period

# provider kinds whose management API makes capped keys
SUBKEY_KINDS = frozenset({"openrouter"})


def management_ref(provider: str) -> str:
    """The vault entry of a provider's management key."""
    return f"provider:{provider}:management"


def subkey_ref(provider: str, app_id: int) -> str:
    """The vault entry of the key a provider made for one app."""
    return f"provider:{provider}:app:{app_id}"


RESET_OF: Mapping[Period, str | None] = {
    Period.DAY: "daily",
    Period.WEEK: "weekly",
    Period.MONTH: "monthly",
    Period.TOTAL: None,
}


@dataclass(frozen=True, slots=True)
class Wanted:
    """The key an app should have at one provider."""

    app_id: int
    app_name: str
    limit_nano: int | None  # None: no limit (the app has no budget of its own)
    limit_reset: str | None
    disabled: bool


@dataclass(frozen=True, slots=True)
class Have:
    """The key an app has (as the wallet last set it)."""

    app_id: int
    limit_nano: int | None
    limit_reset: str | None
    disabled: bool


@dataclass(frozen=True, slots=True)
class Step:
    action: str  # "create" | "update" | "delete"
    app_id: int
    wanted: Wanted | None  # None for "delete"


def wanted_for(
    app_id: int,
    app_name: str,
    budget: BudgetSpec | None,
    *,
    paused: bool,
    revoked: bool,
    wallet_paused: bool,
) -> Wanted:
    """The key app ``app_id`` should have. A revoked app keeps a disabled key until the app
    is removed (``aiwallet apps remove``), so that what it spent stays readable."""
    return Wanted(
        app_id=app_id,
        app_name=app_name,
        limit_nano=budget.amount_nano if budget is not None else None,
        limit_reset=RESET_OF[budget.period] if budget is not None else None,
        disabled=paused or revoked or wallet_paused,
    )


def plan(wanted: Iterable[Wanted], have: Iterable[Have]) -> list[Step]:
    """The changes that make ``have`` what is ``wanted``: a key for each wanted app that has
    none, an update where the cap, the reset or the disabled flag differs, a delete for each
    key of an app no longer wanted. Disabling comes first, then the rest."""
    want = {w.app_id: w for w in wanted}
    got = {h.app_id: h for h in have}
    steps: list[Step] = []
    for app_id, w in want.items():
        h = got.get(app_id)
        if h is None:
            steps.append(Step("create", app_id, w))
        elif (h.limit_nano, h.limit_reset, h.disabled) != (w.limit_nano, w.limit_reset, w.disabled):
            steps.append(Step("update", app_id, w))
    steps += [Step("delete", app_id, None) for app_id in got if app_id not in want]
    # a key to disable (or delete) is changed before any is made or raised
    return sorted(steps, key=lambda s: 0 if s.wanted is None or s.wanted.disabled else 1)
