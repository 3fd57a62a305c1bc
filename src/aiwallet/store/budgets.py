"""Budgets and the atomic reservation / settlement that holds them under concurrency.

A reservation takes the request's worst-case cost from EVERY budget that applies (the app's
and the wallet's) in one transaction, with a conditional UPDATE per counter:

    UPDATE budget_counters SET reserved = reserved + :amt
     WHERE id = :id AND spent + reserved + :amt <= :limit

On SQLite the transaction holds the database write lock (BEGIN IMMEDIATE); on PostgreSQL the
UPDATE takes the row lock and re-checks its WHERE clause against the committed row, so two
processes sharing one ledger can never both pass. Counters are locked in budget-id order, so
PostgreSQL cannot deadlock. Settlement moves the reserved amount to spent, writes the ledger
and request rows and closes the reservation, all in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

from sqlalchemy import Connection, RowMapping, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from aiwallet.domain.errors import BudgetExceeded, InvalidInput, NotFound
from aiwallet.domain.money import BudgetSpec, Period, format_usd
from aiwallet.domain.windows import Window, describe_until, window_for
from aiwallet.store import schema as t
from aiwallet.store.audit import append_audit
from aiwallet.store.db import Database
from aiwallet.store.records import Budget, BudgetState, RequestRecord, Reservation, SpendEntry

WALLET = "wallet"
APP = "app"


class BudgetRefused(BudgetExceeded):
    """A reservation that a budget could not cover, with the facts an error message needs."""

    def __init__(self, budget: Budget, remaining_nano: int, reset_at: datetime | None) -> None:
        self.budget = budget
        self.remaining_nano = max(remaining_nano, 0)
        self.reset_at = reset_at
        spec = BudgetSpec(budget.amount_nano, budget.period).describe()
        whose = "the wallet's" if budget.scope == WALLET else "this app's"
        when = describe_until(datetime.now(UTC), reset_at)
        super().__init__(
            f"{whose} budget of {spec} has {format_usd(self.remaining_nano, places=None)} left, "
            f"not enough for this request; it {when}"
        )


def _budget(r: RowMapping) -> Budget:
    return Budget(int(r["id"]), r["scope"], r["app_id"], int(r["amount_nano"]), Period(r["period"]))


def counter_key(budget: Budget, window: Window) -> str:
    """Counters are per budget, period and window (a day and a month can start together)."""
    return f"{budget.period.value}:{window.key}"


def _reservation(r: RowMapping) -> Reservation:
    return Reservation(
        id=r["id"],
        request_id=r["request_id"],
        app_id=r["app_id"],
        amount_nano=int(r["amount_nano"]),
        counter_ids=tuple(int(c) for c in r["counter_ids"]),
        created_at=r["created_at"],
        state=r["state"],
        forwarded_at=r["forwarded_at"],
    )


class Budgets:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- budgets -------------------------------------------------------------------------
    def set_budget(
        self, spec: BudgetSpec | None, *, app_id: int | None = None, actor: str = "user"
    ) -> Budget | None:
        """Set (or with ``None`` remove) the wallet's budget, or an app's when ``app_id``."""
        scope = APP if app_id is not None else WALLET
        now = datetime.now(UTC)
        with self.db.begin() as conn:
            cond = (t.budgets.c.scope == scope) & (
                t.budgets.c.app_id == app_id if app_id is not None else t.budgets.c.app_id.is_(None)
            )
            existing = conn.execute(select(t.budgets).where(cond)).mappings().first()
            subject = f"app:{app_id}" if app_id is not None else "wallet"
            if spec is None:
                if existing is not None:
                    conn.execute(delete(t.budgets).where(t.budgets.c.id == existing["id"]))
                    append_audit(conn, actor, "budget.remove", subject, {})
                return None
            values = {"amount_nano": spec.amount_nano, "period": spec.period.value}
            if existing is None:
                pk = conn.execute(
                    insert(t.budgets).values(
                        scope=scope, app_id=app_id, created_at=now, updated_at=now, **values
                    )
                ).inserted_primary_key
                assert pk is not None
                bid = pk[0]
            else:
                bid = existing["id"]
                conn.execute(
                    update(t.budgets).where(t.budgets.c.id == bid).values(updated_at=now, **values)
                )
            append_audit(conn, actor, "budget.set", subject, {"budget": str(spec)})
            return Budget(int(bid), scope, app_id, spec.amount_nano, spec.period)

    def wallet_budget(self) -> Budget | None:
        with self.db.read() as conn:
            r = (
                conn.execute(select(t.budgets).where(t.budgets.c.scope == WALLET))
                .mappings()
                .first()
            )
            return None if r is None else _budget(r)

    def app_budget(self, app_id: int) -> Budget | None:
        with self.db.read() as conn:
            r = (
                conn.execute(
                    select(t.budgets).where(t.budgets.c.scope == APP, t.budgets.c.app_id == app_id)
                )
                .mappings()
                .first()
            )
            return None if r is None else _budget(r)

    def applicable(self, app_id: int | None) -> list[Budget]:
        """The budgets a request of this app must fit: the app's and the wallet's."""
        with self.db.read() as conn:
            q = select(t.budgets).where(
                (t.budgets.c.scope == WALLET)
                | ((t.budgets.c.scope == APP) & (t.budgets.c.app_id == app_id))
            )
            return [_budget(r) for r in conn.execute(q.order_by(t.budgets.c.id)).mappings()]

    def state(self, budget: Budget, at: datetime, tz: tzinfo) -> BudgetState:
        window = window_for(budget.period, at, tz)
        with self.db.read() as conn:
            r = (
                conn.execute(
                    select(t.budget_counters).where(
                        t.budget_counters.c.budget_id == budget.id,
                        t.budget_counters.c.window_key == counter_key(budget, window),
                    )
                )
                .mappings()
                .first()
            )
        spent = int(r["spent_nano"]) if r else 0
        reserved = int(r["reserved_nano"]) if r else 0
        return BudgetState(budget, window.start, window.end, spent, reserved)

    # -- reservations --------------------------------------------------------------------
    def _counter_id(self, conn: Connection, budget: Budget, window: Window) -> int:
        budget_id, key = budget.id, counter_key(budget, window)
        values = {
            "budget_id": budget_id,
            "window_key": key,
            "window_end": window.end,
            "spent_nano": 0,
            "reserved_nano": 0,
        }
        stmt = (pg_insert if self.db.is_postgres else sqlite_insert)(t.budget_counters).values(
            **values
        )
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["budget_id", "window_key"]))
        cid = conn.execute(
            select(t.budget_counters.c.id).where(
                t.budget_counters.c.budget_id == budget_id,
                t.budget_counters.c.window_key == key,
            )
        ).scalar_one()
        return int(cid)

    def reserve(
        self,
        budget_ids: Sequence[int],
        amount_nano: int,
        *,
        at: datetime,
        tz: tzinfo,
        request_id: str,
        app_id: int | None = None,
    ) -> Reservation:
        """Reserve ``amount_nano`` on every budget in ``budget_ids``, all or nothing."""
        if amount_nano < 0:
            raise InvalidInput("a reservation cannot be negative")
        res_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        with self.db.begin() as conn:
            rows = conn.execute(
                select(t.budgets)
                .where(t.budgets.c.id.in_(list(budget_ids)))
                .order_by(t.budgets.c.id)
            ).mappings()
            budgets = [_budget(r) for r in rows]
            if len(budgets) != len(set(budget_ids)):
                raise NotFound("a budget to reserve on no longer exists; try again")
            counter_ids: list[int] = []
            for b in budgets:
                window = window_for(b.period, at, tz)
                cid = self._counter_id(conn, b, window)
                c = t.budget_counters.c
                result = conn.execute(
                    update(t.budget_counters)
                    .where(
                        c.id == cid,
                        c.spent_nano + c.reserved_nano + amount_nano <= b.amount_nano,
                    )
                    .values(reserved_nano=c.reserved_nano + amount_nano)
                )
                if result.rowcount != 1:
                    left = conn.execute(
                        select(b.amount_nano - c.spent_nano - c.reserved_nano).where(c.id == cid)
                    ).scalar_one()
                    raise BudgetRefused(b, int(left), window.end)
                counter_ids.append(cid)
            conn.execute(
                insert(t.reservations).values(
                    id=res_id,
                    request_id=request_id,
                    app_id=app_id,
                    created_at=now,
                    amount_nano=amount_nano,
                    counter_ids=counter_ids,
                    state="open",
                )
            )
        return Reservation(res_id, request_id, app_id, amount_nano, tuple(counter_ids), now)

    def mark_forwarded(self, reservation_id: str, at: datetime | None = None) -> None:
        """Record that the request went upstream (crash recovery then bills, not releases)."""
        with self.db.begin() as conn:
            conn.execute(
                update(t.reservations)
                .where(t.reservations.c.id == reservation_id, t.reservations.c.state == "open")
                .values(forwarded_at=at or datetime.now(UTC))
            )

    def _take_open(self, conn: Connection, reservation_id: str) -> Reservation | None:
        q = select(t.reservations).where(t.reservations.c.id == reservation_id)
        if self.db.is_postgres:
            q = q.with_for_update()
        r = conn.execute(q).mappings().first()
        if r is None:
            raise NotFound(f"no reservation {reservation_id}")
        res = _reservation(r)
        return res if res.state == "open" else None

    def _close(
        self, conn: Connection, res: Reservation, spent_nano: int, state: str, now: datetime
    ) -> None:
        c = t.budget_counters.c
        for cid in res.counter_ids:
            conn.execute(
                update(t.budget_counters)
                .where(c.id == cid)
                .values(
                    reserved_nano=c.reserved_nano - res.amount_nano,
                    spent_nano=c.spent_nano + spent_nano,
                )
            )
        conn.execute(
            update(t.reservations)
            .where(t.reservations.c.id == res.id)
            .values(state=state, closed_at=now)
        )

    def settle(
        self,
        reservation_id: str,
        actual_nano: int,
        spend: SpendEntry,
        request: RequestRecord | None = None,
    ) -> bool:
        """Turn the reservation into spend of ``actual_nano``; ``False`` if already closed.

        The counters, the ledger row, the request row and the reservation change in one
        transaction: all of them are durable, or none.
        """
        if actual_nano < 0:
            raise InvalidInput("a settled cost cannot be negative")
        now = datetime.now(UTC)
        with self.db.begin() as conn:
            res = self._take_open(conn, reservation_id)
            if res is None:
                return False
            self._close(conn, res, actual_nano, "settled", now)
            conn.execute(
                insert(t.ledger).values(
                    ts=request.ts if request else now,
                    kind="spend",
                    app_id=res.app_id,
                    request_id=res.request_id,
                    amount_nano=actual_nano,
                    provider=spend.provider,
                    model=spend.model,
                    price_row_ref=spend.price_row_ref,
                    price_row=spend.price_row,
                    token_source=spend.token_source,
                    note=spend.note,
                )
            )
            if request is not None:
                conn.execute(insert(t.requests).values(**request.row()))
        return True

    def release(self, reservation_id: str, request: RequestRecord | None = None) -> bool:
        """Give the whole reservation back (the request cost nothing); ``False`` if closed."""
        now = datetime.now(UTC)
        with self.db.begin() as conn:
            res = self._take_open(conn, reservation_id)
            if res is None:
                return False
            self._close(conn, res, 0, "released", now)
            if request is not None:
                conn.execute(insert(t.requests).values(**request.row()))
        return True

    def open_reservations(self) -> list[Reservation]:
        with self.db.read() as conn:
            q = select(t.reservations).where(t.reservations.c.state == "open")
            rows = conn.execute(q.order_by(t.reservations.c.created_at)).mappings()
            return [_reservation(r) for r in rows]

    def recover_open(self, *, actor: str = "engine") -> list[tuple[Reservation, str]]:
        """Close every reservation a crashed engine left open, and audit each.

        One that never went upstream is released. One that did is billed at its reserved
        (worst-case) amount, marked ``estimated``: the provider may have done the work, and a
        spend must never go missing.
        """
        done: list[tuple[Reservation, str]] = []
        for res in self.open_reservations():
            if res.forwarded_at is None:
                outcome = "released" if self.release(res.id) else "already closed"
            else:
                spend = SpendEntry(
                    None, None, None, None, "estimated",
                    note="engine stopped before the provider reported usage; billed at the "
                    "reserved worst case",
                )  # fmt: skip
                outcome = (
                    "billed" if self.settle(res.id, res.amount_nano, spend) else "already closed"
                )
            with self.db.begin() as conn:
                append_audit(
                    conn,
                    actor,
                    "reservation.recover",
                    f"reservation:{res.id}",
                    {
                        "request_id": res.request_id,
                        "outcome": outcome,
                        "amount_nano": res.amount_nano,
                    },
                )
            done.append((res, outcome))
        return done
