"""The ledger's hot statements, compiled once per dialect and run on the DBAPI cursor.

Every metered request runs about eight statements (reserve, settle). Through SQLAlchemy's
execution layer each cost ~70 µs of Python on the build machine, while the statement itself
ran in ~10 µs (bench/proxy.py, py-spy). Here SQLAlchemy still writes the SQL (compiled
once, for the engine's dialect); only the per-call layer is skipped, so the values are
adapted by hand, exactly as SQLAlchemy's types would: aware datetimes → UTC text on SQLite,
JSON → text on SQLite / ``psycopg`` JSON on PostgreSQL, booleans → 0/1 on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Dialect, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql import ClauseElement

from aiwallet.store import schema as t

_c = t.budget_counters.c
_r = t.reservations.c

RESERVATION_COLUMNS = (
    "id",
    "request_id",
    "app_id",
    "created_at",
    "amount_nano",
    "counter_ids",
    "state",
    "provider",
    "model",
    "price_row_ref",
)
LEDGER_COLUMNS = (
    "ts",
    "kind",
    "app_id",
    "request_id",
    "amount_nano",
    "provider",
    "model",
    "price_row_ref",
    "price_row",
    "token_source",
    "note",
    "catalog_cost_nano",
)
REQUEST_COLUMNS = tuple(c.name for c in t.requests.c)
ATTEMPT_COLUMNS = tuple(c.name for c in t.request_attempts.c)
_DATETIME = {"created_at", "ts", "window_end", "closed_at", "started_at"}
_JSON = {"counter_ids", "price_row"}
_BOOL = {"stream", "over_reserved", "cost_differs"}
_BATCH_KEY = "aiwallet_deferred_inserts"


def _values(table: Any, columns: Sequence[str]) -> dict[str, Any]:
    return {c: bindparam(c) for c in columns}


def _statements(is_postgres: bool) -> dict[str, ClauseElement]:
    upsert = pg_insert if is_postgres else sqlite_insert
    return {
        "insert_counter": upsert(t.budget_counters)
        .values(
            **_values(t.budget_counters, ("budget_id", "window_key", "window_end")),
            spent_nano=0,
            reserved_nano=0,
        )
        .on_conflict_do_nothing(index_elements=["budget_id", "window_key"]),
        "take": update(t.budget_counters)
        .where(
            _c.budget_id == bindparam("b_bid"),
            _c.window_key == bindparam("b_key"),
            # the limit comes from the budget row itself, so a cached Budget cannot overspend
            _c.spent_nano + _c.reserved_nano + bindparam("b_amt")
            <= select(t.budgets.c.amount_nano)
            .where(t.budgets.c.id == bindparam("b_bid"))
            .scalar_subquery(),
        )
        .values(reserved_nano=_c.reserved_nano + bindparam("b_amt"))
        .returning(_c.id, _c.spent_nano + _c.reserved_nano),
        # a reservation the engine's live counters already granted (engine/live_budgets.py):
        # recorded on the counter without the limit check, which was made in memory
        "take_granted": update(t.budget_counters)
        .where(_c.budget_id == bindparam("b_bid"), _c.window_key == bindparam("b_key"))
        .values(reserved_nano=_c.reserved_nano + bindparam("b_amt"))
        .returning(_c.id),
        "used": select(_c.spent_nano + _c.reserved_nano).where(
            _c.budget_id == bindparam("b_bid"), _c.window_key == bindparam("b_key")
        ),
        "move_counter": update(t.budget_counters)
        .where(_c.id == bindparam("b_id"))
        .values(
            reserved_nano=_c.reserved_nano - bindparam("b_reserved"),
            spent_nano=_c.spent_nano + bindparam("b_spent"),
        ),
        "insert_reservation": insert(t.reservations).values(
            **_values(t.reservations, (*RESERVATION_COLUMNS, "owner"))
        ),
        "close_reservation": update(t.reservations)
        .where(_r.id == bindparam("b_id"), _r.state == "open")
        .values(state=bindparam("b_state"), closed_at=bindparam("b_closed"))
        .returning(*(t.reservations.c[name] for name in RESERVATION_COLUMNS)),
        "insert_ledger": insert(t.ledger).values(**_values(t.ledger, LEDGER_COLUMNS)),
        "insert_request": insert(t.requests).values(**_values(t.requests, REQUEST_COLUMNS)),
        "insert_attempt": insert(t.request_attempts).values(
            **_values(t.request_attempts, ATTEMPT_COLUMNS)
        ),
    }


Adapt = Callable[[Any], Any]


def _sqlite_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # qmark dialects (SQLite): each parameter in order, with its adapter decided once
    plan: tuple[tuple[str, Adapt | None], ...] | None
    defaults: dict[str, Any]  # literals in the statement (spent_nano=0, state='open')


class HotStatements:
    def __init__(self, dialect: Dialect) -> None:
        self.is_postgres = dialect.name == "postgresql"
        if self.is_postgres:
            from psycopg.types.json import Json

            self._json: Adapt = Json
        else:
            self._json = json.dumps
        self._adapters: dict[str, Adapt | None] = {}
        self._compiled: dict[str, _Compiled] = {}
        for name, stmt in _statements(self.is_postgres).items():
            compiled = stmt.compile(dialect=dialect)
            order = getattr(compiled, "positiontup", None)  # set for qmark dialects (SQLite)
            plan = None if order is None else tuple((k, self._adapter(k)) for k in order)
            defaults = {k: v for k, v in compiled.params.items() if v is not None}
            self._compiled[name] = _Compiled(str(compiled), plan, defaults)

    def _adapter(self, key: str) -> Adapt | None:
        """How a value bound to ``key`` is adapted, as SQLAlchemy's column type would."""
        if key not in self._adapters:
            base = key.removeprefix("b_")
            adapt: Adapt | None = None
            if base in _DATETIME and not self.is_postgres:
                adapt = _sqlite_datetime
            elif base in _JSON:
                adapt = self._json
            elif base in _BOOL and not self.is_postgres:
                adapt = int
            self._adapters[key] = adapt
        return self._adapters[key]

    def _adapt(self, key: str, value: Any) -> Any:
        adapt = self._adapter(key)
        return value if adapt is None or value is None else adapt(value)

    def _args(self, c: _Compiled, params: Mapping[str, Any]) -> Any:
        if c.plan is None:  # named parameters (PostgreSQL)
            return {k: self._adapt(k, v) for k, v in {**c.defaults, **params}.items()}
        out = []
        for key, adapt in c.plan:
            value = params[key] if key in params else c.defaults[key]
            out.append(value if adapt is None or value is None else adapt(value))
        return out

    def run(self, conn: Connection, name: str, params: Mapping[str, Any]) -> Any:
        """Execute statement ``name`` on ``conn``'s DBAPI cursor (inside its transaction)."""
        c = self._compiled[name]
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(c.sql, self._args(c, params))
        return cursor

    def insert(self, conn: Connection, name: str, row: Mapping[str, Any]) -> None:
        """An INSERT that may wait for the end of the transaction: when the caller opened a
        batch (:meth:`start_batch`), rows are collected and written with one ``executemany``
        per table at :meth:`flush_batch`; otherwise right away."""
        pending = conn.info.get(_BATCH_KEY)
        if pending is None:
            self.run(conn, name, row)
        else:
            pending.setdefault(name, []).append(self._args(self._compiled[name], row))

    def start_batch(self, conn: Connection) -> None:
        conn.info[_BATCH_KEY] = {}

    def flush_batch(self, conn: Connection) -> None:
        pending: dict[str, list[Any]] = conn.info.pop(_BATCH_KEY, None) or {}
        for name, rows in pending.items():
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.executemany(self._compiled[name].sql, rows)

    def abandon_batch(self, conn: Connection) -> None:
        conn.info.pop(_BATCH_KEY, None)

    def read_datetime(self, value: Any) -> datetime:
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)

    def read_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value
