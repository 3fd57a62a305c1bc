"""Reading the ledger and the request log: totals and summaries, aggregated in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, func, insert, or_, select

from aiwallet.domain.errors import InvalidInput
from aiwallet.store import schema as t
from aiwallet.store.attempts import AttemptRecord, attempts_of, record_attempts_in
from aiwallet.store.db import Database
from aiwallet.store.records import RequestRecord


@dataclass(frozen=True, slots=True)
class OverReserved:
    requests: int
    cost_nano: int  # what those requests were billed
    beyond_nano: int  # how much more than their reservations


@dataclass(frozen=True, slots=True)
class SpendSummary:
    key: str | None  # app name, model, or None for the total
    requests: int
    spent_nano: int


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
MAX_PAGE = 1000


def micros(at: datetime) -> int:
    """``at`` as whole microseconds since the Unix epoch (exact: the store keeps microseconds)."""
    return (at - _EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    return _EPOCH + value * _MICRO


@dataclass(frozen=True, slots=True)
class RequestCursor:
    """A place in one app's request log, ordered by (start time, request id).

    Text form: ``<microseconds since the epoch>:<request id>``, or the microseconds alone for
    "from that instant on" (no row has an empty id, so it sorts before every row then)."""

    ts: datetime
    id: str = ""

    def __str__(self) -> str:
        return f"{micros(self.ts)}:{self.id}" if self.id else str(micros(self.ts))

    @classmethod
    def parse(cls, text: str) -> RequestCursor:
        stamp, _, rid = text.partition(":")
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 17 or len(rid) > 64:
            raise InvalidInput(
                "a cursor is a 'next' value from an earlier page, or microseconds since the "
                "Unix epoch"
            )
        try:
            ts = from_micros(int(stamp))
        except OverflowError:
            raise InvalidInput("that cursor is past the year 9999") from None
        return cls(ts, rid)


@dataclass(frozen=True, slots=True)
class AppRequest:
    """One row of an app's own request log, with what the ledger billed for it."""

    id: str
    ts: datetime
    endpoint: str
    model: str | None
    provider: str | None
    status: int
    error_code: str | None
    stream: bool
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_nano: int  # the ledger's amount for this request (0: nothing billed)
    token_source: str | None
    latency_ms: int | None

    @property
    def cursor(self) -> RequestCursor:
        return RequestCursor(self.ts, self.id)


@dataclass(frozen=True, slots=True)
class InFlight:
    """A request of the app that went upstream and whose outcome is not yet committed (its
    reservation is open): it will appear in the log with this start time."""

    request_id: str
    ts: datetime


_APP_REQUEST_COLUMNS = (
    "id", "ts", "endpoint", "model", "provider", "status", "error_code", "stream",
    "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
    "reasoning_tokens", "token_source", "latency_ms",
)  # fmt: skip


class Requests:
    """The request log: one row per proxied request, metadata only."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, record: RequestRecord) -> None:
        with self.db.begin() as conn:
            self.record_in(conn, record)

    def record_in(self, conn: Connection, record: RequestRecord) -> None:
        conn.execute(_INSERT_REQUEST, record.row())

    def record_attempts_in(
        self, conn: Connection, request_id: str, attempts: tuple[AttemptRecord, ...]
    ) -> None:
        """The attempts made for a request, in the transaction that writes its row."""
        record_attempts_in(conn, request_id, attempts)

    def attempts(self, request_id: str) -> list[AttemptRecord]:
        """The attempts made for a request, in order (none for one never sent)."""
        return attempts_of(self.db, request_id)

    def recent(self, limit: int = 100, *, app_id: int | None = None) -> list[dict[str, object]]:
        q = select(t.requests).order_by(t.requests.c.ts.desc()).limit(limit)
        if app_id is not None:
            q = q.where(t.requests.c.app_id == app_id)
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def app_page(
        self, app_id: int, after: RequestCursor | None, limit: int = 100
    ) -> list[AppRequest]:
        """One app's requests after ``after`` in (start time, id) order, at most ``limit``,
        each with the ledger's amount for it (keyset paging on ``ix_requests_app_ts``)."""
        limit = max(0, min(limit, MAX_PAGE))
        r, lg = t.requests.c, t.ledger.c
        columns = [getattr(r, f) for f in _APP_REQUEST_COLUMNS]
        q = (
            select(*columns, func.coalesce(lg.amount_nano, 0).label("cost_nano"))
            .select_from(
                t.requests.outerjoin(t.ledger, and_(lg.request_id == r.id, lg.kind == "spend"))
            )
            .where(r.app_id == app_id)
            .order_by(r.ts, r.id)
            .limit(limit)
        )
        if after is not None:
            q = q.where(or_(r.ts > after.ts, and_(r.ts == after.ts, r.id > after.id)))
        with self.db.read() as conn:
            return [AppRequest(**dict(m)) for m in conn.execute(q).mappings()]

    def in_flight(self, app_id: int) -> list[InFlight]:
        """The app's requests holding an open reservation (oldest first)."""
        c = t.reservations.c
        q = (
            select(c.request_id, c.created_at)
            .where(c.app_id == app_id, c.state == "open")
            .order_by(c.created_at, c.request_id)
        )
        with self.db.read() as conn:
            return [InFlight(str(rid), ts) for rid, ts in conn.execute(q)]


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
        provider: str | None = None,
    ) -> int:
        q = select(func.coalesce(func.sum(t.ledger.c.amount_nano), 0)).where(
            t.ledger.c.kind == "spend"
        )
        if app_id is not None:
            q = q.where(t.ledger.c.app_id == app_id)
        if provider is not None:
            q = q.where(t.ledger.c.provider == provider)
        if since is not None:
            q = q.where(t.ledger.c.ts >= since)
        if until is not None:
            q = q.where(t.ledger.c.ts < until)
        with self.db.read() as conn:
            return int(conn.execute(q).scalar_one())

    def over_reserved(
        self, *, app_id: int | None = None, since: datetime | None = None
    ) -> OverReserved:
        """Requests a provider billed beyond their reservation: how many, what they cost,
        and by how much they passed what was reserved for them."""
        req, res = t.requests.c, t.reservations.c
        q = (
            select(
                func.count(req.id),
                func.coalesce(func.sum(req.cost_nano), 0),
                func.coalesce(func.sum(req.cost_nano - func.coalesce(res.amount_nano, 0)), 0),
            )
            .select_from(t.requests.outerjoin(t.reservations, res.request_id == req.id))
            .where(req.over_reserved.is_(True))
        )
        if app_id is not None:
            q = q.where(req.app_id == app_id)
        if since is not None:
            q = q.where(req.ts >= since)
        with self.db.read() as conn:
            n, cost, beyond = conn.execute(q).one()
        return OverReserved(int(n), int(cost), max(int(beyond), 0))

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
