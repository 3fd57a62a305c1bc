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
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, select

from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.reports import RequestFilter, RequestRow, SpendSeries
from aiwallet.store import schema as t
from aiwallet.store.db import Database

UNKNOWN_APP = "(deleted app)"
__all__ = ["Reports", "RequestFilter", "RequestRow", "SpendSeries"]


@dataclass(slots=True)
class _Lookup:
    names: dict[int, str] = field(default_factory=dict)

    def name(self, app_id: int | None) -> str:
        if app_id is None:
            return "(no app)"
        return self.names.get(app_id, UNKNOWN_APP)


# Far bounds for open ranges (aware UTC, comparable in every backend's storage).
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _bucket_stmt(source: str, group: str | None, one_app: bool) -> Select[Any]:
    """Spend in ``[:lo, :hi)`` from the ledger or the hourly rollup, grouped by ``app_id``,
    ``model`` or nothing, optionally for one app (``:app_id``)."""
    table = t.ledger if source == "ledger" else t.spend_hourly
    ts = t.ledger.c.ts if source == "ledger" else t.spend_hourly.c.hour
    cols = [table.c[group]] if group else []
    q = select(*cols, func.sum(table.c.amount_nano)).where(
        ts >= bindparam("lo"), ts < bindparam("hi")
    )
    if source == "ledger":
        q = q.where(t.ledger.c.kind == "spend")
    if one_app:
        q = q.where(table.c.app_id == bindparam("app_id"))
    if group:
        q = q.group_by(table.c[group])
    return q


# Built once: bucket queries run many times with new bounds.
_STATEMENTS = {
    (source, group, one_app): _bucket_stmt(source, group, one_app)
    for source in ("ledger", "rollup")
    for group in ("app_id", "model", None)
    for one_app in (False, True)
}


def _floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(at: datetime) -> datetime:
    floor = _floor_hour(at)
    return floor if floor == at else floor + timedelta(hours=1)


class Reports:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.rollup = db.is_sqlite  # migration 0003: the hourly rollup exists on SQLite

    def app_names(self) -> dict[int, str]:
        with self.db.read() as conn:
            return {int(i): str(n) for i, n in conn.execute(select(t.apps.c.id, t.apps.c.name))}

    def _pieces(self, lo: datetime, hi: datetime) -> list[tuple[str, datetime, datetime]]:
        """Where to read ``[lo, hi)``: whole UTC hours from the rollup (SQLite), the partial
        hours at either end (a local day in a :30 zone) from the ledger."""
        if not self.rollup:
            return [("ledger", lo, hi)]
        lo_h = lo if lo == _EARLIEST else _ceil_hour(lo)
        hi_h = hi if hi == _LATEST else _floor_hour(hi)
        if lo_h >= hi_h:
            return [("ledger", lo, hi)]
        pieces = [("rollup", lo_h, hi_h)]
        if lo < lo_h:
            pieces.append(("ledger", lo, lo_h))
        if hi_h < hi:
            pieces.append(("ledger", hi_h, hi))
        return pieces

    def _sums(
        self,
        conn: Connection,
        lo: datetime | None,
        hi: datetime | None,
        group: str | None,
        app_id: int | None,
    ) -> dict[Any, int]:
        out: dict[Any, int] = {}
        for source, a, b in self._pieces(lo or _EARLIEST, hi or _LATEST):
            params: dict[str, Any] = {"lo": a, "hi": b}
            if app_id is not None:
                params["app_id"] = app_id
            stmt = _STATEMENTS[(source, group, app_id is not None)]
            for row in conn.execute(stmt, params):
                key = row[0] if group else None
                if source == "rollup" and key in (0, ""):
                    key = None  # the rollup spells "no app" / "no model" as 0 / ''
                amount = row[-1]
                out[key] = out.get(key, 0) + int(amount or 0)
        return out

    def spend_total(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        app_id: int | None = None,
    ) -> int:
        """Spend in ``[since, until)`` (open ends allowed), of one app or all."""
        with self.db.read() as conn:
            return sum(self._sums(conn, since, until, None, app_id).values())

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
        by_app = group == "app" and app_id is None
        values: dict[str, list[int]] = {}
        with self.db.read() as conn:
            names = _Lookup(
                {int(i): str(nm) for i, nm in conn.execute(select(t.apps.c.id, t.apps.c.name))}
            )
            for i in range(n):
                sums = self._sums(conn, edges[i], edges[i + 1], "app_id" if by_app else "model",
                                  app_id)  # fmt: skip
                for key, amount in sums.items():
                    if by_app:
                        label = names.name(key)
                    else:
                        label = str(key) if key is not None else "(unknown model)"
                    values.setdefault(label, [0] * n)[i] += amount
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
            q = q.where(c.status < 400, c.error_code.is_(None))
        elif f.status == "error":  # refused, failed, or billed but cut off on the way
            q = q.where((c.status >= 400) | c.error_code.is_not(None))
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
                    catalog_cost_nano=r["catalog_cost_nano"],
                    cost_differs=bool(r["cost_differs"]),
                )
                for r in conn.execute(q).mappings()
            ]

    def request_count(self, f: RequestFilter) -> int:
        with self.db.read() as conn:
            q = select(func.count()).select_from(t.requests)  # a table even with no filter
            return int(conn.execute(self._filtered(q, f)).scalar_one())

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
