"""What the notebook shows, computed from the wallet's answers: the budget (spent, left,
reset, burn rate, projected run-out, the spend over the window) and the cost of a cell.

Pure functions of the wallet's JSON: money stays integer nano-dollars, parsed from the
wallet's exact decimal strings with ``domain.money``; floats appear only as chart geometry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiwallet.domain.burn import Outlook, project, when_text
from aiwallet.domain.money import NANOS_PER_USD, format_usd, usd_to_nano

# States the widget and the text show.
OK, PAUSED, APP_PAUSED, REVOKED, NO_WALLET, EXHAUSTED, CONNECTING = (
    "ok",
    "paused",
    "app_paused",
    "revoked",
    "no_wallet",
    "exhausted",
    "connecting",
)


def usd(text: str) -> int:
    """The wallet's exact decimal dollars (``0.000123450``) as nano-dollars."""
    return usd_to_nano(text)


def money(nano: int) -> str:
    """Exact dollars for people: ``$0.0041235``, ``$1.00``."""
    return format_usd(nano, places=None)


def short_money(nano: int) -> str:
    """Dollars rounded for a rate: two decimals from a dollar up, else four significant
    digits, trailing zeros dropped (``$0.09``, ``$0.0002217``)."""
    if nano >= NANOS_PER_USD or nano == 0:
        return format_usd(nano, places=2)
    places = 2
    while nano * 10**places < NANOS_PER_USD * 1000 and places < 9:
        places += 1
    text = format_usd(nano, places=places)
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.rstrip('0').ljust(2, '0')}"


def when(at: datetime, now: datetime) -> str:
    """``in 3 h 20 min (00:00)``, in the kernel's local time."""
    return when_text(at, now)


@dataclass(frozen=True, slots=True)
class BudgetView:
    """Everything the widget draws, as text (exact) plus chart geometry (floats)."""

    state: str
    app: str = ""
    message: str = ""
    models: str = ""
    spent: str = ""
    budget: str = ""
    left: str = ""
    resets: str = ""
    burn: str = ""
    runout: str = ""
    used_fraction: float = 0.0
    # cumulative spend over the window as [x, y] fractions (x: along the window, y: of the
    # budget), for drawing only
    curve: list[list[float]] = field(default_factory=list)
    now_fraction: float = 0.0  # where now is along the window, 0..1
    runout_fraction: float | None = None  # where the projection meets the budget, 0..1
    window_label: tuple[str, str] = ("", "")
    spent_nano: int = 0
    limit_nano: int | None = None
    left_nano: int | None = None
    burn_nano_per_hour: int = 0

    def text(self) -> str:
        """The text fallback (plain consoles, nbconvert)."""
        head = f"aiwallet · {self.app}" if self.app else "aiwallet"
        if self.state in (NO_WALLET, REVOKED, CONNECTING):
            return f"{head}: {self.message}"
        lines = [head + (f" · {self.message}" if self.message else "")]
        if self.budget:
            lines.append(f"  spent {self.spent} of {self.budget} · {self.left} left")
        else:
            lines.append(f"  spent {self.spent} (no budget)")
        extra = [s for s in (self.resets and f"resets {self.resets}", self.burn, self.runout) if s]
        if extra:
            lines.append("  " + " · ".join(extra))
        return "\n".join(lines)


def state_message(me: Mapping[str, Any]) -> tuple[str, str]:
    if me.get("wallet_paused"):
        return PAUSED, "the wallet is paused: its owner stopped all AI spending"
    if me.get("app_paused"):
        return APP_PAUSED, "the wallet's owner paused this notebook's app"
    return OK, ""


def budget_view(me: Mapping[str, Any], now: datetime | None = None) -> BudgetView:
    """The widget's view of ``GET /wallet/v1/me?series=N``."""
    now = now or _parse_time(me.get("now")) or datetime.now(UTC)
    state, message = state_message(me)
    budgets = list(me.get("budgets") or [])
    app_b: dict[str, Any] | None = next((b for b in budgets if b.get("scope") == "app"), None)
    wallet_b: dict[str, Any] | None = next((b for b in budgets if b.get("scope") == "wallet"), None)
    shown = app_b or wallet_b
    models = ", ".join(me.get("models") or [])
    series = me.get("series") or {}
    burn_nano = usd(me["last_hour"]["spent_usd"]) if me.get("last_hour") else 0
    burn = f"burning {short_money(burn_nano)}/h" if burn_nano else "nothing spent in the last hour"
    if shown is None:
        spent = sum(usd(s) for s in series.get("spent_usd", []))
        return BudgetView(
            state, str(me.get("app", "")), message, models, spent=money(spent), burn=burn,
            curve=_curve(series, None, now), now_fraction=1.0, spent_nano=spent,
            burn_nano_per_hour=burn_nano, window_label=_labels(series),
        )  # fmt: skip
    limit = int(shown.get("amount_nano") or 0)
    spent = usd(shown["spent_usd"])
    left = usd(shown["remaining_usd"])
    if wallet_b is not None and shown is app_b:  # the wallet's own budget may be tighter
        left = min(left, usd(wallet_b["remaining_usd"]))
    if state == OK and left <= 0:
        state, message = EXHAUSTED, "budget used up until it resets"
    reset_at = _parse_time(shown.get("resets_at"))
    start_at = _parse_time(shown.get("window_start"))
    runout, runout_fraction = _projection(left, burn_nano, now, reset_at, start_at)
    return BudgetView(
        state=state,
        app=str(me.get("app", "")),
        message=message,
        models=models,
        spent=money(spent),
        budget=_budget_text(shown["budget"]),
        left=money(max(left, 0)),
        resets=when(reset_at, now) if reset_at else "",
        burn=burn,
        runout=runout,
        used_fraction=min(1.0, spent / limit) if limit else 0.0,
        curve=_curve(series, limit, now),
        now_fraction=_fraction(now, start_at, reset_at),
        runout_fraction=runout_fraction,
        window_label=_labels(series),
        spent_nano=spent,
        limit_nano=limit,
        left_nano=max(left, 0),
        burn_nano_per_hour=burn_nano,
    )


def _budget_text(spec: str) -> str:
    amount, _, period = spec.partition("/")
    if period:
        return f"${amount}/{period}"
    return f"${spec}"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _fraction(at: datetime, start: datetime | None, end: datetime | None) -> float:
    if start is None or end is None or end <= start:
        return 1.0
    return max(0.0, min(1.0, (at - start) / (end - start)))


def _projection(
    left: int, burn_per_h: int, now: datetime, reset_at: datetime | None, start: datetime | None
) -> tuple[str, float | None]:
    """``runs out ~14:20 at this rate`` / ``lasts until the reset at this rate``."""
    p = project(left, burn_per_h, now, reset_at)
    if p.outlook is Outlook.NOTHING_LEFT:
        return "nothing left", None
    if p.outlook is Outlook.IDLE:
        return "", None
    if p.out_at is None:
        return "lasts until the reset at this rate", None
    return (
        f"runs out {when(p.out_at, now)} at this rate",
        _fraction(p.out_at, start, reset_at) if reset_at else None,
    )


def _curve(series: Mapping[str, Any], limit: int | None, now: datetime) -> list[list[float]]:
    """Cumulative spend over the window, as ``[x, y]`` points: ``x`` the place along the
    window (0..1) of each bucket's start up to now, and now itself; ``y`` the spend so far as
    a fraction of ``limit`` (of the largest value when there is no budget)."""
    edges = [_parse_time(e) for e in series.get("edges", [])]
    amounts = [usd(s) for s in series.get("spent_usd", [])]
    if len(edges) != len(amounts) + 1 or not amounts or None in edges:
        return []
    start, end = edges[0], edges[-1]
    assert start is not None and end is not None
    points: list[tuple[float, int]] = []
    total = 0
    for i, amount in enumerate(amounts):
        at = edges[i]
        assert at is not None
        if at >= now:
            break
        points.append((_fraction(at, start, end), total))
        total += amount
    points.append((_fraction(min(now, end), start, end), total))
    scale = limit or max(p for _, p in points) or 1
    return [[x, p / scale] for x, p in points]


def _labels(series: Mapping[str, Any]) -> tuple[str, str]:
    edges = [_parse_time(e) for e in series.get("edges", [])]
    if len(edges) < 2 or edges[0] is None or edges[-1] is None:
        return ("", "")
    first, last = edges[0].astimezone(), edges[-1].astimezone()
    fmt = "%a %H:%M" if last - first <= timedelta(days=1) else "%a %d %b"
    return (first.strftime(fmt), last.strftime(fmt))


# -- the cost of a cell ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CallsCost:
    """A set of the app's requests, summed from the ledger's rows for them."""

    request_ids: tuple[str, ...] = ()
    input_tokens: int = 0  # prompt tokens, cache reads and writes included
    output_tokens: int = 0
    cost_nano: int = 0
    models: tuple[str, ...] = ()  # most used first
    refused: int = 0  # requests the wallet or the provider refused (nothing billed)
    still_running: int = 0  # went out during the span and not yet settled
    refusals: tuple[str, ...] = ()  # the refusals' codes, once each

    @property
    def calls(self) -> int:
        return len(self.request_ids)

    def line(self) -> str:
        """``3 calls · 2,140 → 512 tokens · $0.0041235 · gpt-4o-mini``"""
        n = self.calls
        if n and self.refused == n and not self.cost_nano and not self.output_tokens:
            why = f" ({', '.join(self.refusals)})" if self.refusals else ""
            return f"{n} call{'s' if n != 1 else ''} refused{why} · {money(0)}"
        parts = [
            f"{n} call{'s' if n != 1 else ''}",
            f"{self.input_tokens:,} → {self.output_tokens:,} tokens",
            money(self.cost_nano),
        ]
        if self.models:
            parts.append(", ".join(self.models))
        if self.refused:
            parts.append(f"{self.refused} refused")
        if self.still_running:
            parts.append(f"{self.still_running} still running")
        return " · ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "request_ids": list(self.request_ids),
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_nano": self.cost_nano,
            "models": list(self.models),
            "refused": self.refused,
            "still_running": self.still_running,
            "refusals": list(self.refusals),
            "line": self.line(),
        }


def sum_requests(rows: Iterable[Mapping[str, Any]], still_running: int = 0) -> CallsCost:
    ids: list[str] = []
    tin = tout = cost = refused = 0
    models: Counter[str] = Counter()
    codes: list[str] = []
    for r in rows:
        ids.append(str(r["id"]))
        tin += int(r["input_tokens"]) + int(r["cache_read_tokens"]) + int(r["cache_write_tokens"])
        tout += int(r["output_tokens"])
        cost += usd(r["cost_usd"])
        if r.get("model"):
            models[str(r["model"])] += 1
        status = int(r["status"])
        if status >= 400 and status != 499:
            refused += 1
            code = str(r.get("error_code") or status)
            if code not in codes:
                codes.append(code)
    ordered = tuple(m for m, _ in sorted(models.items(), key=lambda kv: (-kv[1], kv[0])))
    return CallsCost(tuple(ids), tin, tout, cost, ordered, refused, still_running, tuple(codes))


def in_span(rows: Sequence[Mapping[str, Any]], lo_us: int, hi_us: int) -> list[Mapping[str, Any]]:
    """The rows whose request started in ``[lo_us, hi_us)`` (microseconds since the epoch,
    from the row's cursor)."""
    out = []
    for r in rows:
        started = int(str(r["cursor"]).partition(":")[0])
        if lo_us <= started < hi_us:
            out.append(r)
    return out
