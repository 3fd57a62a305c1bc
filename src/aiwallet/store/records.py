"""Plain records that cross the store's boundary (no ORM objects leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiwallet.domain.money import Period


@dataclass(frozen=True, slots=True)
class Budget:
    id: int
    scope: str  # "wallet" | "app"
    app_id: int | None
    amount_nano: int
    period: Period


@dataclass(frozen=True, slots=True)
class BudgetState:
    budget: Budget
    window_start: datetime | None
    reset_at: datetime | None
    spent_nano: int
    reserved_nano: int

    @property
    def remaining_nano(self) -> int:
        return self.budget.amount_nano - self.spent_nano - self.reserved_nano


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    request_id: str
    app_id: int | None
    amount_nano: int
    counter_ids: tuple[int, ...]
    created_at: datetime
    state: str = "open"
    remaining_nano: int | None = None  # least room left on its budgets, just after reserving
    provider: str | None = None  # what it was reserved against (billed so after a crash)
    model: str | None = None
    price_row_ref: str | None = None


@dataclass(frozen=True, slots=True)
class SpendEntry:
    """What a settlement writes to the ledger besides the amount."""

    provider: str | None
    model: str | None
    price_row_ref: str | None
    price_row: dict[str, Any] | None
    token_source: str | None
    note: str | None = None
    kind: str = "spend"  # the ledger row's kind: "spend", or "topup" (a prepaid router's credit)
    catalog_cost_nano: int | None = None  # the catalog's figure beside a provider-reported cost


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """Metadata of one proxied request: never prompt or completion text."""

    id: str
    ts: datetime
    endpoint: str
    status: int
    app_id: int | None = None
    model: str | None = None
    provider: str | None = None
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nano: int = 0
    token_source: str | None = None
    latency_ms: int | None = None
    ttfb_ms: int | None = None
    error_code: str | None = None
    stream: bool = False
    over_reserved: bool = False  # the provider billed more than was reserved for it
    catalog_cost_nano: int | None = None  # beside a provider-reported cost
    cost_differs: bool = False  # that reported cost and the catalog's differ by over 1 %

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "app_id": self.app_id,
            "endpoint": self.endpoint,
            "model": self.model,
            "provider": self.provider,
            "input_tokens": self.input_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_nano": self.cost_nano,
            "token_source": self.token_source,
            "latency_ms": self.latency_ms,
            "ttfb_ms": self.ttfb_ms,
            "status": self.status,
            "error_code": self.error_code,
            "stream": self.stream,
            "over_reserved": self.over_reserved,
            "catalog_cost_nano": self.catalog_cost_nano,
            "cost_differs": self.cost_differs,
        }


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    ts: datetime
    kind: str
    app_id: int | None
    request_id: str | None
    amount_nano: int
    provider: str | None
    model: str | None
    price_row_ref: str | None
    token_source: str | None
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
