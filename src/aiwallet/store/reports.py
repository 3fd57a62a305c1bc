"""Reports for the desktop app: spend per time bucket and the request log, aggregated in SQL.

Buckets are given as UTC edges that the caller computed in the user's time zone (so a "day"
is a local day, 23 or 25 hours across DST changes); each bucket is one indexed range query
``GROUP BY`` app or model, all in one read transaction so that the buckets add up to the
ledger's total at that instant. The request log is read a page at a time, newest first.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, select

from aiwallet.domain.errors import InvalidInput
from aiwallet.store import schema as t
from aiwallet.store.db import Database

UNKNOWN_APP = "(deleted app)"


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


@dataclass(slots=True)
class _Lookup:
    names: dict[int, str] = field(default_factory=dict)

    def name(self, app_id: int | None) -> str:
        if app_id is None:
            return "(no app)"
        return self.names.get(app_id, UNKNOWN_APP)


# Built once: a bucket query run N times with new bounds.
_APP_BUCKET = (
    select(t.ledger.c.app_id, func.sum(t.ledger.c.amount_nano))
    .where(
        t.ledger.c.kind == "spend",
        t.ledger.c.ts >= bindparam("lo"),
        t.ledger.c.ts < bindparam("hi"),
    )
    .group_by(t.ledger.c.app_id)
)
_MODEL_BUCKET = (
    select(t.ledger.c.model, func.sum(t.ledger.c.amount_nano))
    .where(
        t.ledger.c.kind == "spend",
        t.ledger.c.ts >= bindparam("lo"),
        t.ledger.c.ts < bindparam("hi"),
    )
    .group_by(t.ledger.c.model)
)
_APP_BUCKET_ONE = (
    select(t.ledger.c.model, func.sum(t.ledger.c.amount_nano))
    .where(
        t.ledger.c.kind == "spend",
        t.ledger.c.app_id == bindparam("app_id"),
        t.ledger.c.ts >= bindparam("lo"),
        t.ledger.c.ts < bindparam("hi"),
    )
    .group_by(t.ledger.c.model)
)


class Reports:
    def __init__(self, db: Database) -> None:
        self.db = db

    def app_names(self) -> dict[int, str]:
        with self.db.read() as conn:
            return {int(i): str(n) for i, n in conn.execute(select(t.apps.c.id, t.apps.c.name))}

    def spend_series(
        self, edges: Sequence[datetime], group: str, *, app_id: int | None = None
    ) -> SpendSeries:
        """Spend in each ``[edges[i], edges[i+1])`` grouped by ``app`` or ``model``; with
        ``app_id`` only that app's spend (then grouped by model)."""
        if len(edges) < 2 or any(a >= b for a, b in itertools.pairwise(edges)):
            raise InvalidInput("a spend series needs at least two increasing edges")
        if group not in ("app", "model"):
            raise InvalidInput("group spend by 'app' or 'model'")
        n = len(edges) - 1
        values: dict[str, list[int]] = {}
        with self.db.read() as conn:
            names = _Lookup(
                {int(i): str(nm) for i, nm in conn.execute(select(t.apps.c.id, t.apps.c.name))}
            )
            stmt = _APP_BUCKET_ONE if app_id is not None else (
                _APP_BUCKET if group == "app" else _MODEL_BUCKET
            )  # fmt: skip
            for i in range(n):
                params: dict[str, Any] = {"lo": edges[i], "hi": edges[i + 1]}
                if app_id is not None:
                    params["app_id"] = app_id
                for key, amount in conn.execute(stmt, params):
                    if app_id is None and group == "app":
                        label = names.name(key)
                    else:
                        label = str(key) if key is not None else "(unknown model)"
                    values.setdefault(label, [0] * n)[i] += int(amount or 0)
        totals = {k: sum(v) for k, v in values.items()}
        keys = tuple(sorted(values, key=lambda k: (-totals[k], k)))
        return SpendSeries(tuple(edges), keys, values, sum(totals.values()))

    # -- request log --------------------------------------------------------------------
    def _filtered(self, q: Select[Any], f: RequestFilter) -> Select[Any]:
        c = t.requests.c
        if f.app_id is not None:
            q = q.where(c.app_id == f.app_id)
        if f.model:
            q = q.where(c.model == f.model)
        if f.since is not None:
            q = q.where(c.ts >= f.since)
        if f.until is not None:
            q = q.where(c.ts < f.until)
        if f.status == "ok":
            q = q.where(c.status < 400)
        elif f.status == "error":
            q = q.where(c.status >= 400)
        elif f.status:
            q = q.where(c.error_code == f.status)
        return q

    def request_page(
        self, f: RequestFilter, *, before: tuple[datetime, str] | None = None, limit: int = 200
    ) -> list[RequestRow]:
        """Up to ``limit`` requests, newest first, older than ``before`` (keyset paging:
        the last row's (ts, id) of the previous page)."""
        c = t.requests.c
        q = self._filtered(select(t.requests), f)
        if before is not None:
            ts, rid = before
            q = q.where((c.ts < ts) | ((c.ts == ts) & (c.id < rid)))
        q = q.order_by(c.ts.desc(), c.id.desc()).limit(limit)
        with self.db.read() as conn:
            names = _Lookup(
                {int(i): str(nm) for i, nm in conn.execute(select(t.apps.c.id, t.apps.c.name))}
            )
            return [
                RequestRow(
                    id=r["id"],
                    ts=r["ts"],
                    app=names.name(r["app_id"]),
                    endpoint=r["endpoint"],
                    model=r["model"],
                    provider=r["provider"],
                    input_tokens=int(r["input_tokens"])
                    + int(r["cache_read_tokens"])
                    + int(r["cache_write_tokens"]),
                    output_tokens=int(r["output_tokens"]),
                    cost_nano=int(r["cost_nano"]),
                    token_source=r["token_source"],
                    latency_ms=r["latency_ms"],
                    status=int(r["status"]),
                    error_code=r["error_code"],
                    stream=bool(r["stream"]),
                )
                for r in conn.execute(q).mappings()
            ]

    def request_count(self, f: RequestFilter) -> int:
        with self.db.read() as conn:
            return int(conn.execute(self._filtered(select(func.count()), f)).scalar_one())

    def models_used(self) -> list[str]:
        q = select(t.requests.c.model).where(t.requests.c.model.is_not(None)).distinct()
        with self.db.read() as conn:
            return sorted(str(m) for (m,) in conn.execute(q))

    def last_used(self) -> dict[int, datetime]:
        """Each app's newest request (one index probe per app, however long the log)."""
        newest = select(func.max(t.requests.c.ts)).where(t.requests.c.app_id == bindparam("a"))
        out: dict[int, datetime] = {}
        with self.db.read() as conn:
            for (app_id,) in conn.execute(select(t.apps.c.id)):
                ts = conn.execute(newest, {"a": app_id}).scalar()
                if isinstance(ts, str):  # SQLite hands back MAX() of a DateTime as text
                    ts = datetime.fromisoformat(ts)
                if ts is not None:
                    out[int(app_id)] = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        return out
