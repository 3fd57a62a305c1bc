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
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Protocol

from sqlalchemy import (
    Connection,
    RowMapping,
    bindparam,
    delete,
    insert,
    or_,
    select,
    text,
    update,
)

from aiwallet.domain.errors import BudgetExceeded, InvalidInput, NotFound
from aiwallet.domain.money import BudgetSpec, Period, format_usd
from aiwallet.domain.windows import Window, describe_until, window_for
from aiwallet.store import counter_events
from aiwallet.store import schema as t
from aiwallet.store.audit import append_audit
from aiwallet.store.counter_events import CounterEvent
from aiwallet.store.db import Database
from aiwallet.store.hotsql import RESERVATION_COLUMNS, HotStatements
from aiwallet.store.records import Budget, BudgetState, RequestRecord, Reservation, SpendEntry
from aiwallet.store.reservation_journal import Entry, Granted, Grown


class LiveReserve(Protocol):
    def __call__(
        self,
        budget_ids: Sequence[int],
        amount_nano: int,
        *,
        at: datetime,
        tz: tzinfo,
        request_id: str,
        app_id: int | None = None,
        priced: SpendEntry | None = None,
    ) -> Reservation: ...


X402_SOURCE = "x402"  # a cost that is an x402 payment, not priced tokens
WALLET = "wallet"
APP = "app"


@dataclass(frozen=True, slots=True)
class InFlight:
    """The open reservations holding part of one budget's current window."""

    requests: int
    reserved_nano: int


class BudgetRefused(BudgetExceeded):
    """A reservation that a budget could not cover, with the facts an error message needs."""

    def __init__(
        self,
        budget: Budget,
        remaining_nano: int,
        reset_at: datetime | None,
        in_flight: InFlight | None = None,
    ) -> None:
        self.budget = budget
        self.remaining_nano = max(remaining_nano, 0)
        self.reset_at = reset_at
        self.in_flight = in_flight
        spec = BudgetSpec(budget.amount_nano, budget.period).describe()
        whose = "the wallet's" if budget.scope == WALLET else "this app's"
        when = describe_until(datetime.now(UTC), reset_at)
        left = f"{whose} budget of {spec} has {format_usd(self.remaining_nano, places=None)} left"
        held = in_flight is not None and in_flight.requests > 0 and in_flight.reserved_nano > 0
        if in_flight is not None and held:
            n, one = in_flight.requests, in_flight.requests == 1
            they, its, ends = ("it", "its", "finishes") if one else ("they", "their", "finish")
            super().__init__(
                f"{left}, not enough for this request; {n} request{'' if one else 's'} in "
                f"flight hold{'s' if one else ''} "
                f"{format_usd(in_flight.reserved_nano, places=None)} of it ({its} worst case; "
                f"most is returned when {they} {ends}): retry when {they} {ends}, or lower the "
                f"request's max output tokens; the budget {when}"
            )
        else:
            super().__init__(f"{left}, not enough for this request; it {when}")

    def explained(self, in_flight: InFlight) -> BudgetRefused:
        """The same refusal, saying how much of the budget requests in flight hold."""
        return BudgetRefused(self.budget, self.remaining_nano, self.reset_at, in_flight)


def _budget(r: RowMapping) -> Budget:
    return Budget(int(r["id"]), r["scope"], r["app_id"], int(r["amount_nano"]), Period(r["period"]))


# The hot path's statements are built once: building a statement per call cost more than
# running it (bench/reserve.py).
_SELECT_BUDGETS = (
    select(t.budgets)
    .where(t.budgets.c.id.in_(bindparam("b_ids", expanding=True)))
    .order_by(t.budgets.c.id)
)


# How many open reservations took counter :cid (for a refusal's message): the database
# reads the JSON array of counter ids. Keyed by (PostgreSQL?, an app's budget?).
_IN_FLIGHT_SQL = {
    (True, False): (
        "SELECT count(*) FROM reservations WHERE state = 'open' "
        "AND CAST(counter_ids AS jsonb) @> CAST(:arr AS jsonb)"
    ),
    (True, True): (
        "SELECT count(*) FROM reservations WHERE state = 'open' AND app_id = :app "
        "AND CAST(counter_ids AS jsonb) @> CAST(:arr AS jsonb)"
    ),
    (False, False): (
        "SELECT count(*) FROM reservations, json_each(reservations.counter_ids) AS c "
        "WHERE reservations.state = 'open' AND c.value = :cid"
    ),
    (False, True): (
        "SELECT count(*) FROM reservations, json_each(reservations.counter_ids) AS c "
        "WHERE reservations.state = 'open' AND reservations.app_id = :app AND c.value = :cid"
    ),
}


_USED = t.budget_counters.c.spent_nano + t.budget_counters.c.reserved_nano


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
        provider=r["provider"],
        model=r["model"],
        price_row_ref=r["price_row_ref"],
    )


class Budgets:
    live_reserve: LiveReserve | None = None  # set by an engine keeping counters in memory
    # the data dir id its engine writes on the reservations it takes (set by the engine)
    owner: str | None = None

    def __init__(self, db: Database) -> None:
        self.db = db
        self.hot = HotStatements(db.engine.dialect)

    # -- budgets -------------------------------------------------------------------------
    def set_budget(
        self, spec: BudgetSpec | None, *, app_id: int | None = None, actor: str = "user"
    ) -> Budget | None:
        """Set (or with ``None`` remove) the wallet's budget, or an app's when ``app_id``."""
        with self.db.begin() as conn:
            return self.set_budget_in(conn, spec, app_id=app_id, actor=actor)

    def set_budget_in(
        self,
        conn: Connection,
        spec: BudgetSpec | None,
        *,
        app_id: int | None = None,
        actor: str = "user",
    ) -> Budget | None:
        """:meth:`set_budget` inside the caller's transaction."""
        scope = APP if app_id is not None else WALLET
        now = datetime.now(UTC)
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

    def in_flight(self, budget: Budget, at: datetime, tz: tzinfo) -> InFlight:
        """How many open reservations hold how much of ``budget``'s window at ``at``.

        For a refusal's message only (never on the hot path): the amount is the counter's
        ``reserved``; the count is of the open reservations (the requests in flight;
        ``ix_reservations_state``) whose counter ids hold this counter's, counted by the
        database (SQLite ``json_each``, PostgreSQL ``jsonb @>``)."""
        key = counter_key(budget, window_for(budget.period, at, tz))
        with self.db.read() as conn:
            r = (
                conn.execute(
                    select(t.budget_counters.c.id, t.budget_counters.c.reserved_nano).where(
                        t.budget_counters.c.budget_id == budget.id,
                        t.budget_counters.c.window_key == key,
                    )
                )
                .mappings()
                .first()
            )
            if r is None:
                return InFlight(0, 0)
            cid = int(r["id"])
            params = {"cid": cid, "app": budget.app_id, "arr": f"[{cid}]"}
            sql = _IN_FLIGHT_SQL[conn.dialect.name == "postgresql", budget.scope == APP]
            count = int(conn.execute(text(sql), params).scalar_one())
        return InFlight(count, int(r["reserved_nano"]))

    # -- reservations --------------------------------------------------------------------
    def _take(
        self, conn: Connection, budget: Budget, window: Window, amount_nano: int
    ) -> tuple[int | None, int]:
        """Reserve on one budget's counter for ``window``: (counter id or None, used after)."""
        key = counter_key(budget, window)
        hot = self.hot
        params = {"b_bid": budget.id, "b_key": key, "b_amt": amount_nano}
        used = 0
        for _ in range(5):
            row = hot.run(conn, "take", params).fetchone()
            if row is not None:
                return int(row[0]), int(row[1])
            found = hot.run(conn, "used", {"b_bid": budget.id, "b_key": key}).fetchone()
            if found is None:
                # The window's first reservation: create its counter (another writer may be
                # doing the same; ON CONFLICT waits for it and does nothing), then try again.
                hot.run(
                    conn,
                    "insert_counter",
                    {"budget_id": budget.id, "window_key": key, "window_end": window.end},
                )
                continue
            used = int(found[0])
            if used + amount_nano > budget.amount_nano:
                break
            # It fits, yet the UPDATE saw no row: on PostgreSQL its snapshot predates another
            # writer's just-committed counter. A new statement sees it; try again.
        return None, used

    def reserve(
        self,
        budget_ids: Sequence[int],
        amount_nano: int,
        *,
        at: datetime,
        tz: tzinfo,
        request_id: str,
        app_id: int | None = None,
        priced: SpendEntry | None = None,
    ) -> Reservation:
        """Reserve ``amount_nano`` on every budget in ``budget_ids``, all or nothing (blocking;
        committed on return). While an engine in this process keeps the counters in memory
        (:attr:`live_reserve`), it grants the reservation: the database alone could not."""
        if self.live_reserve is not None:
            return self.live_reserve(
                budget_ids, amount_nano, at=at, tz=tz, request_id=request_id, app_id=app_id,
                priced=priced,
            )  # fmt: skip
        with self.db.begin() as conn:
            return self.reserve_in(
                conn, budget_ids, amount_nano, at=at, tz=tz, request_id=request_id,
                app_id=app_id, priced=priced,
            )  # fmt: skip

    def reserve_in(
        self,
        conn: Connection,
        budget_ids: Sequence[int],
        amount_nano: int,
        *,
        at: datetime,
        tz: tzinfo,
        request_id: str,
        app_id: int | None = None,
        known: Sequence[Budget] | None = None,
        priced: SpendEntry | None = None,
    ) -> Reservation:
        """:meth:`reserve` inside the caller's transaction.

        ``priced`` (provider, model, price row) is kept with the reservation so that a
        recovery after a crash bills it against that price row.

        ``known`` are the budgets as the caller has cached them (saves a query; their limits
        are still read from the database by the conditional update). A refusal undoes what it
        took before raising, so the caller's transaction stays clean and may go on.
        """
        if amount_nano < 0:
            raise InvalidInput("a reservation cannot be negative")
        res_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        if known is not None and sorted(b.id for b in known) == sorted(set(budget_ids)):
            budgets = sorted(known, key=lambda b: b.id)
        else:
            rows = conn.execute(_SELECT_BUDGETS, {"b_ids": list(budget_ids)}).mappings()
            budgets = [_budget(r) for r in rows]
            if len(budgets) != len(set(budget_ids)):
                raise NotFound("a budget to reserve on no longer exists; try again")
        counter_ids: list[int] = []
        remaining: int | None = None
        for b in budgets:  # in id order: PostgreSQL row locks are always taken alike
            window = window_for(b.period, at, tz)
            cid, used = self._take(conn, b, window, amount_nano)
            if cid is None:
                for taken in counter_ids:  # undo, so that the transaction can carry on
                    self.hot.run(
                        conn,
                        "move_counter",
                        {"b_id": taken, "b_reserved": amount_nano, "b_spent": 0},
                    )
                raise BudgetRefused(b, b.amount_nano - used, window.end)
            counter_ids.append(cid)
            left = b.amount_nano - used
            remaining = left if remaining is None else min(remaining, left)
        self.hot.run(
            conn,
            "insert_reservation",
            {
                "id": res_id,
                "request_id": request_id,
                "app_id": app_id,
                "created_at": now,
                "amount_nano": amount_nano,
                "counter_ids": counter_ids,
                "state": "open",
                "provider": priced.provider if priced else None,
                "model": priced.model if priced else None,
                "price_row_ref": priced.price_row_ref if priced else None,
                "owner": self.owner,
            },
        )
        return Reservation(
            res_id, request_id, app_id, amount_nano, tuple(counter_ids), now,
            remaining_nano=remaining,
            provider=priced.provider if priced else None,
            model=priced.model if priced else None,
            price_row_ref=priced.price_row_ref if priced else None,
        )  # fmt: skip

    def _close(
        self, conn: Connection, reservation_id: str, spent_nano: int, state: str
    ) -> Reservation | None:
        """Close an open reservation and move its counters; ``None`` if it was not open."""
        hot = self.hot
        row = hot.run(
            conn,
            "close_reservation",
            {"b_id": reservation_id, "b_state": state, "b_closed": datetime.now(UTC)},
        ).fetchone()
        if row is None:
            exists = conn.execute(
                select(t.reservations.c.id).where(t.reservations.c.id == reservation_id)
            ).first()
            if exists is None:
                raise NotFound(f"no reservation {reservation_id}")
            return None
        closed = dict(zip(RESERVATION_COLUMNS, row, strict=True))
        res = Reservation(
            id=closed["id"],
            request_id=closed["request_id"],
            app_id=closed["app_id"],
            amount_nano=int(closed["amount_nano"]),
            counter_ids=tuple(int(c) for c in hot.read_json(closed["counter_ids"])),
            created_at=hot.read_datetime(closed["created_at"]),
            state=state,
            provider=closed["provider"],
            model=closed["model"],
            price_row_ref=closed["price_row_ref"],
        )
        # One counter at a time, in the order reserve() locked them (budget id order): an
        # "id IN (...)" update locks rows in whatever order it meets them and can deadlock
        # against a concurrent reserve on PostgreSQL.
        for cid in res.counter_ids:
            hot.run(
                conn,
                "move_counter",
                {"b_id": cid, "b_reserved": res.amount_nano, "b_spent": spent_nano},
            )
        counter_events.note(
            conn, CounterEvent(res.id, res.counter_ids, spent_nano - res.amount_nano)
        )
        return res

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
        with self.db.begin() as conn:
            return self.settle_in(conn, reservation_id, actual_nano, spend, request)

    def settle_in(
        self,
        conn: Connection,
        reservation_id: str,
        actual_nano: int,
        spend: SpendEntry,
        request: RequestRecord | None = None,
    ) -> bool:
        """:meth:`settle` inside the caller's transaction."""
        if actual_nano < 0:
            raise InvalidInput("a settled cost cannot be negative")
        res = self._close(conn, reservation_id, actual_nano, "settled")
        if res is None:
            return False
        self.hot.insert(
            conn,
            "insert_ledger",
            {
                "ts": request.ts if request else datetime.now(UTC),
                "kind": spend.kind,
                "app_id": res.app_id,
                "request_id": res.request_id,
                "amount_nano": actual_nano,
                "provider": spend.provider,
                "model": spend.model,
                "price_row_ref": spend.price_row_ref,
                "price_row": spend.price_row,
                "token_source": spend.token_source,
                "note": spend.note,
                "catalog_cost_nano": spend.catalog_cost_nano,
            },
        )
        if request is not None:
            self.hot.insert(conn, "insert_request", request.row())
        return True

    def grow_in(self, conn: Connection, reservation: Reservation, extra_nano: int) -> Reservation:
        """Take ``extra_nano`` more on every counter ``reservation`` holds, all or nothing
        (an x402 router asked more than the request's worst case): the same conditional
        update as :meth:`reserve_in`, so racing requests cannot overspend. Raises
        :class:`BudgetRefused` (the caller's transaction stays clean)."""
        if extra_nano <= 0:
            return reservation
        c, b = t.budget_counters.c, t.budgets.c
        limit = select(b.amount_nano).where(b.id == c.budget_id).scalar_subquery()
        taken: list[int] = []
        for cid in reservation.counter_ids:
            row = conn.execute(
                update(t.budget_counters)
                .where(c.id == cid, c.spent_nano + c.reserved_nano + extra_nano <= limit)
                .values(reserved_nano=c.reserved_nano + extra_nano)
                .returning(c.id)
            ).first()
            if row is None:
                for done in taken:
                    self.hot.run(
                        conn, "move_counter", {"b_id": done, "b_reserved": extra_nano, "b_spent": 0}
                    )
                found = (
                    conn.execute(
                        select(t.budgets, c.spent_nano, c.reserved_nano, c.window_end)
                        .join(t.budget_counters, c.budget_id == b.id)
                        .where(c.id == cid)
                    )
                    .mappings()
                    .one()
                )
                used = int(found["spent_nano"]) + int(found["reserved_nano"])
                budget = _budget(found)
                raise BudgetRefused(budget, budget.amount_nano - used, found["window_end"])
            taken.append(cid)
        r = t.reservations.c
        grown = conn.execute(
            update(t.reservations)
            .where(r.id == reservation.id, r.state == "open")
            .values(amount_nano=r.amount_nano + extra_nano)
            .returning(r.amount_nano)
        ).first()
        if grown is None:
            raise NotFound(f"reservation {reservation.id} is no longer open")
        left = None
        if reservation.remaining_nano is not None:
            left = reservation.remaining_nano - extra_nano
        return replace(reservation, amount_nano=int(grown[0]), remaining_nano=left)

    def refund_in(self, conn: Connection, request_id: str, amount_nano: int, note: str) -> bool:
        """Give back ``amount_nano`` of a settled request's spend (a payment billed while
        unconfirmed that can never land): a ``refund`` ledger row of minus that amount, and
        the counters it was spent on lowered by it. False if it was refunded already."""
        ref_id = f"refund:{request_id}"
        lc = t.ledger.c
        if conn.execute(select(lc.id).where(lc.request_id == ref_id)).first() is not None:
            return False
        spent = (
            conn.execute(
                select(lc.app_id, lc.provider, lc.model).where(lc.request_id == request_id)
            )
            .mappings()
            .first()
        )
        if spent is None:
            return False
        res = conn.execute(
            select(t.reservations.c.counter_ids).where(
                t.reservations.c.request_id == request_id,
                t.reservations.c.state == "settled",
            )
        ).first()
        refunded = tuple(int(cid) for cid in (res[0] if res is not None else []))
        for cid in refunded:
            self.hot.run(
                conn, "move_counter", {"b_id": cid, "b_reserved": 0, "b_spent": -amount_nano}
            )
        counter_events.note(conn, CounterEvent(None, refunded, -amount_nano))
        conn.execute(
            insert(t.ledger).values(
                ts=datetime.now(UTC), kind="refund", app_id=spent["app_id"], request_id=ref_id,
                amount_nano=-amount_nano, provider=spent["provider"], model=spent["model"],
                token_source=X402_SOURCE, note=note,
            )
        )  # fmt: skip
        return True

    def release(self, reservation_id: str, request: RequestRecord | None = None) -> bool:
        """Give the whole reservation back (the request cost nothing); ``False`` if closed."""
        with self.db.begin() as conn:
            return self.release_in(conn, reservation_id, request)

    def release_in(
        self, conn: Connection, reservation_id: str, request: RequestRecord | None = None
    ) -> bool:
        """:meth:`release` inside the caller's transaction."""
        if self._close(conn, reservation_id, 0, "released") is None:
            return False
        if request is not None:
            self.hot.insert(conn, "insert_request", request.row())
        return True

    # -- reservations granted in memory (engine/live_budgets.py) -------------------------
    def counters_now(
        self, keys: Sequence[tuple[int, str]]
    ) -> tuple[int, list[tuple[int | None, int]]]:
        """(counter id or None, spent + reserved) of each (budget id, counter key), read in a
        write transaction so that no commit interleaves, with the number of the last batch of
        counter events the read includes (``Database.counter_epoch``)."""
        c = t.budget_counters.c
        out: list[tuple[int | None, int]] = []
        with self.db.begin() as conn:
            epoch = self.db.counter_epoch
            for budget_id, key in keys:
                row = conn.execute(
                    select(c.id, _USED).where(c.budget_id == budget_id, c.window_key == key)
                ).first()
                out.append((None, 0) if row is None else (int(row[0]), int(row[1])))
        return epoch, out

    def by_ids(self, budget_ids: Sequence[int]) -> list[Budget]:
        """The budgets of ``budget_ids`` that exist, in id order."""
        with self.db.read() as conn:
            rows = conn.execute(_SELECT_BUDGETS, {"b_ids": list(budget_ids)}).mappings()
            return sorted((_budget(r) for r in rows), key=lambda b: b.id)

    def record_in(self, conn: Connection, granted: Granted) -> dict[int, int]:
        """Record a reservation the live counters granted: its counters take it without the
        limit check (that was made in memory, which knows every grant not yet recorded
        here); returns each budget's counter id. A budget deleted since is skipped."""
        hot, counter_ids, by_budget = self.hot, [], {}
        for budget_id, key, window_end in granted.parts:  # budget-id order
            params = {"b_bid": budget_id, "b_key": key, "b_amt": granted.amount_nano}
            row = hot.run(conn, "take_granted", params).fetchone()
            if row is None:
                exists = conn.execute(
                    select(t.budgets.c.id).where(t.budgets.c.id == budget_id)
                ).first()
                if exists is None:
                    continue
                hot.run(
                    conn,
                    "insert_counter",
                    {"budget_id": budget_id, "window_key": key, "window_end": window_end},
                )
                row = hot.run(conn, "take_granted", params).fetchone()
            counter_ids.append(int(row[0]))
            by_budget[budget_id] = int(row[0])
        hot.run(
            conn,
            "insert_reservation",
            {
                "id": granted.id,
                "request_id": granted.request_id,
                "app_id": granted.app_id,
                "created_at": granted.created_at,
                "amount_nano": granted.amount_nano,
                "counter_ids": counter_ids,
                "state": "open",
                "provider": granted.provider,
                "model": granted.model,
                "price_row_ref": granted.price_row_ref,
                "owner": self.owner,
            },
        )
        return by_budget

    def grow_granted_in(self, conn: Connection, reservation_id: str, amount_nano: int) -> bool:
        """Grow an open recorded reservation to ``amount_nano`` in all, as the live counters
        granted (no limit check here); False if it is closed or already that large."""
        r = t.reservations.c
        row = conn.execute(
            select(r.amount_nano, r.counter_ids).where(r.id == reservation_id, r.state == "open")
        ).first()
        if row is None or int(row[0]) >= amount_nano:
            return False
        extra = amount_nano - int(row[0])
        for cid in self.hot.read_json(row[1]):
            self.hot.run(
                conn, "move_counter", {"b_id": int(cid), "b_reserved": -extra, "b_spent": 0}
            )
        conn.execute(
            update(t.reservations).where(r.id == reservation_id).values(amount_nano=amount_nano)
        )
        return True

    def replay_in(self, conn: Connection, entries: Sequence[Entry]) -> int:
        """Record what a journal holds that the database lacks (an engine died before its
        writer recorded it): those reservations are then open, for :meth:`recover_open`.
        Returns how many were missing."""
        r = t.reservations.c
        ids = [e.id for e in entries if isinstance(e, Granted)]
        known: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            known.update(str(x) for (x,) in conn.execute(select(r.id).where(r.id.in_(chunk))))
        missing = 0
        for e in entries:
            if isinstance(e, Granted):
                if e.id not in known:
                    self.record_in(conn, e)
                    known.add(e.id)
                    missing += 1
            elif isinstance(e, Grown):
                self.grow_granted_in(conn, e.id, e.amount_nano)
        return missing

    def open_reservations(self, *, owner: str | None = None) -> list[Reservation]:
        """Open reservations; with ``owner``, that data dir's and those with no owner."""
        r = t.reservations.c
        with self.db.read() as conn:
            q = select(t.reservations).where(r.state == "open")
            if owner is not None:
                q = q.where(or_(r.owner == owner, r.owner.is_(None)))
            rows = conn.execute(q.order_by(t.reservations.c.created_at)).mappings()
            return [_reservation(r) for r in rows]

    def recover_open(
        self, *, actor: str = "engine", owner: str | None = None
    ) -> list[tuple[Reservation, str]]:
        """Close every reservation a stopped engine left open, and audit each: with
        ``owner``, only that data dir's and those with no owner (another wallet sharing the
        ledger has its own requests in flight).

        A reservation is taken right before its request is forwarded, so an open one may have
        reached the provider: each is billed at its reserved (worst-case) amount, marked
        ``estimated``, so that no spend can go missing.
        """
        done: list[tuple[Reservation, str]] = []
        for res in self.open_reservations(owner=owner):
            spend = SpendEntry(
                res.provider, res.model, res.price_row_ref, None, "estimated",
                note="engine stopped before the provider reported usage; billed at the "
                "reserved worst case",
            )  # fmt: skip
            # the spend and its audit entry commit together: a crash between them would
            # leave spend that the audit log never mentions (nothing open to recover after)
            with self.db.begin() as conn:
                billed = self.settle_in(conn, res.id, res.amount_nano, spend)
                outcome = "billed" if billed else "already closed"
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
