"""What spend reports carry: a spend series, a request-log filter and row (plain data; the
store fills them, the desktop app shows them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class SpendSeries:
    """Spend per bucket and per key (app name or model), in nano-dollars."""

    edges: tuple[datetime, ...]  # len(buckets) + 1 UTC instants
    keys: tuple[str, ...]  # largest total first
    values: dict[str, list[int]]
    total_nano: int

    def bucket_totals(self) -> list[int]:
        n = max(len(self.edges) - 1, 0)
        return [sum(self.values[k][i] for k in self.keys) for i in range(n)]

    def key_totals(self) -> dict[str, int]:
        return {k: sum(v) for k, v in self.values.items()}


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """What the Activity page's request log shows. Empty fields match everything."""

    app_id: int | None = None
    model: str | None = None
    status: str | None = None  # "ok" | "error" | "refused" | an error code
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class RequestRow:
    id: str
    ts: datetime
    app: str
    endpoint: str
    model: str | None
    provider: str | None
    input_tokens: int
    output_tokens: int
    cost_nano: int
    token_source: str | None
    latency_ms: int | None
    status: int
    error_code: str | None
    stream: bool
    # the provider reported the cost (billed); the catalog's figure beside it, and whether
    # the two differ by more than 1 %
    catalog_cost_nano: int | None = None
    cost_differs: bool = False
