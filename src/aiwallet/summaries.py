"""Read models that the CLI and the desktop app show: apps with their budgets, and the
wallet's overview (spend today / this week / this month, the wallet budget).

Each function reads through a :class:`~aiwallet.service.Wallet` and is blocking: the desktop
app calls it on a worker thread, never on the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiwallet.domain.burn import BURN_WINDOW, Outlook, Projection, project, when_text
from aiwallet.domain.money import BudgetSpec, Period, format_usd_short, usd_string
from aiwallet.domain.reports import RequestFilter
from aiwallet.domain.windows import describe_until, window_for

if TYPE_CHECKING:
    from aiwallet.service import Wallet
    from aiwallet.store.records import BudgetState


@dataclass(frozen=True, slots=True)
class BudgetView:
    spec: BudgetSpec
    spent_nano: int
    reserved_nano: int
    reset_at: datetime | None

    @property
    def remaining_nano(self) -> int:
        return max(self.spec.amount_nano - self.spent_nano - self.reserved_nano, 0)

    @property
    def used_fraction(self) -> float:
        """For progress bars and thresholds only (money itself stays integer)."""
        if self.spec.amount_nano <= 0:
            return 1.0
        return (self.spent_nano + self.reserved_nano) / self.spec.amount_nano

    @property
    def used_up(self) -> bool:
        return self.remaining_nano <= 0

    def projection(self, burn_nano_per_hour: int, now: datetime) -> Projection:
        return project(self.remaining_nano, burn_nano_per_hour, now, self.reset_at)

    @classmethod
    def of(cls, st: BudgetState) -> BudgetView:
        spec = BudgetSpec(st.budget.amount_nano, st.budget.period)
        return cls(spec, st.spent_nano, st.reserved_nano, st.reset_at)


@dataclass(frozen=True, slots=True)
class AppSummary:
    id: int
    name: str
    status: str  # active | paused | revoked | expired
    key_prefix: str
    models: tuple[str, ...]
    budget: BudgetView | None
    spent_total_nano: int
    last_used_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    rpm_limit: int | None
    tpm_limit: int | None
    concurrency_limit: int | None
    burn_nano_per_hour: int = 0  # spent in the last hour

    def to_json(self, now: datetime) -> dict[str, Any]:
        b = self.budget
        return {
            "name": self.name,
            "status": self.status,
            "key_prefix": self.key_prefix,
            "models": list(self.models),
            "budget": str(b.spec) if b else None,
            "spent_usd": usd_string(b.spent_nano) if b else None,
            "remaining_usd": usd_string(b.remaining_nano) if b else None,
            "resets_at": b.reset_at.isoformat() if b and b.reset_at else None,
            "resets": describe_until(now, b.reset_at) if b else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "spent_total_usd": usd_string(self.spent_total_nano),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "burn_usd_per_hour": usd_string(self.burn_nano_per_hour),
        }


def app_summaries(wallet: Wallet, now: datetime | None = None) -> list[AppSummary]:
    """Every app with its grant, budget state in the current window and last use."""
    now = now or datetime.now(UTC)
    tz = wallet.timezone
    last_used = wallet.reports.last_used()
    hour_ago = now - BURN_WINDOW
    out: list[AppSummary] = []
    for app in wallet.apps.list():
        grant = wallet.apps.grant(app.id)
        budget = wallet.budgets.app_budget(app.id)
        view = BudgetView.of(wallet.budgets.state(budget, now, tz)) if budget else None
        status = "revoked" if app.revoked_at else ("paused" if app.paused else "active")
        if status == "active" and grant is not None and not grant.active_at(now):
            status = "expired"
        out.append(
            AppSummary(
                id=app.id,
                name=app.name,
                status=status,
                key_prefix=app.key_prefix,
                models=grant.scopes if grant else (),
                budget=view,
                spent_total_nano=wallet.reports.spend_total(app_id=app.id),
                last_used_at=last_used.get(app.id),
                expires_at=grant.expires_at if grant else None,
                created_at=app.created_at,
                rpm_limit=app.rpm_limit,
                tpm_limit=app.tpm_limit,
                concurrency_limit=app.concurrency_limit,
                burn_nano_per_hour=wallet.reports.spend_total(hour_ago, now, app_id=app.id),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Overview:
    today_nano: int
    week_nano: int
    month_nano: int
    requests_today: int
    wallet_budget: BudgetView | None
    paused: bool
    timezone: str
    burn_nano_per_hour: int = 0  # the wallet's spend in the last hour


def overview(wallet: Wallet, now: datetime | None = None) -> Overview:
    now = now or datetime.now(UTC)
    tz = wallet.timezone
    totals = []
    for period in (Period.DAY, Period.WEEK, Period.MONTH):
        w = window_for(period, now, tz)
        totals.append(wallet.reports.spend_total(w.start, w.end))
    day = window_for(Period.DAY, now, tz)
    requests_today = wallet.reports.request_count(RequestFilter(since=day.start, until=day.end))
    budget = wallet.budgets.wallet_budget()
    view = BudgetView.of(wallet.budgets.state(budget, now, tz)) if budget else None
    burn = wallet.reports.spend_total(now - BURN_WINDOW, now)
    return Overview(
        totals[0], totals[1], totals[2], requests_today, view, wallet.paused, tz.key, burn
    )


def month_by_app(wallet: Wallet, now: datetime | None = None) -> list[tuple[str, int]]:
    """This month's spend per app (largest first), aggregated in SQL."""
    now = now or datetime.now(UTC)
    month = window_for(Period.MONTH, now, wallet.timezone)
    assert month.start is not None and month.end is not None
    series = wallet.reports.spend_series([month.start, month.end], "app")
    return [(k, series.values[k][0]) for k in series.keys if series.values[k][0]]


def budget_outlook(view: BudgetView | None, burn_nano_per_hour: int, now: datetime) -> str:
    """One line on a budget's state for Apps and Overview: ``used up, resets in 4 h`` when
    nothing is left; else the burn rate of the last hour and where it leads (``$0.42/h ·
    runs out in 3 h 10 min (17:20)``, ``lasts to reset``); ``idle`` when nothing
    was spent in the last hour. Without a budget, only the rate."""
    rate = f"{format_usd_short(burn_nano_per_hour)}/h"
    if view is None:
        return f"{rate} in the last hour" if burn_nano_per_hour else "idle"
    if view.used_up:
        return "used up, " + describe_until(now, view.reset_at).replace(
            "never resets", "does not reset"
        )
    p = view.projection(burn_nano_per_hour, now)
    if p.outlook is Outlook.IDLE:
        return "idle"
    if p.outlook is Outlook.RUNS_OUT and p.out_at is not None:
        return f"{rate} · runs out {when_text(p.out_at, now)}"
    return f"{rate} · lasts to reset" if view.reset_at else f"{rate} · lasts"


def refusal_reason(code: str | None) -> str:
    """What a request log's ``error_code`` means, in the words of the one table of codes
    (``engine/errors.py``); empty for a code it does not hold (a provider's own code)."""
    if not code:
        return ""
    from aiwallet.engine.errors import CODES  # here: the CLI and the GUI start without aiohttp

    kind = CODES.get(code)
    return kind.description if kind is not None else ""


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 request``, ``2 requests``, ``1,204 requests``."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"
