"""Reading the ledger and the request log: totals and summaries, aggregated in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select

from aiwallet.domain.errors import InvalidInput
from aiwallet.store import schema as t
from aiwallet.store.db import Database
from aiwallet.store.records import RequestRecord


@dataclass(frozen=True, slots=True)
class SpendSummary:
    key: str | None  # app name, model, or None for the total
    requests: int
    spent_nano: int


class Requests:
    """The request log: one row per proxied request, metadata only."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, record: RequestRecord) -> None:
        with self.db.begin() as conn:
            self.record_in(conn, record)

    def record_in(self, conn: Connection, record: RequestRecord) -> None:
        conn.execute(_INSERT_REQUEST, record.row())

    def recent(self, limit: int = 100, *, app_id: int | None = None) -> list[dict[str, object]]:
        q = select(t.requests).order_by(t.requests.c.ts.desc()).limit(limit)
        if app_id is not None:
            q = q.where(t.requests.c.app_id == app_id)
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]


_INSERT_REQUEST = insert(t.requests)


class Ledger:
    def __init__(self, db: Database) -> None:
        self.db = db

    def total_spent(
        self,
        *,
        app_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        q = select(func.coalesce(func.sum(t.ledger.c.amount_nano), 0)).where(
            t.ledger.c.kind == "spend"
        )
        if app_id is not None:
            q = q.where(t.ledger.c.app_id == app_id)
        if since is not None:
            q = q.where(t.ledger.c.ts >= since)
        if until is not None:
            q = q.where(t.ledger.c.ts < until)
        with self.db.read() as conn:
            return int(conn.execute(q).scalar_one())

    def spend_by(
        self, group: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[SpendSummary]:
        """Spend grouped by ``app`` or ``model`` (largest first)."""
        if group == "app":
            key = t.apps.c.name
            base = select(key, func.count(), func.sum(t.ledger.c.amount_nano)).select_from(
                t.ledger.outerjoin(t.apps, t.apps.c.id == t.ledger.c.app_id)
            )
        elif group == "model":
            key = t.ledger.c.model
            base = select(key, func.count(), func.sum(t.ledger.c.amount_nano))
        else:
            raise InvalidInput("group spend by 'app' or 'model'")
        q = base.where(t.ledger.c.kind == "spend")
        if since is not None:
            q = q.where(t.ledger.c.ts >= since)
        if until is not None:
            q = q.where(t.ledger.c.ts < until)
        q = q.group_by(key).order_by(func.sum(t.ledger.c.amount_nano).desc())
        with self.db.read() as conn:
            return [SpendSummary(k, int(n), int(s or 0)) for k, n, s in conn.execute(q)]
