"""The one owner of a proxied request's outcome.

Whatever ends a request (an answer, a refusal, the client leaving, the provider cutting off,
any exception), :class:`RequestOwner` alone closes its reservation, writes its ledger and
request-log rows and emits its events. The first ending it is given decides; later ones get
the same committed result (idempotent). The store write is handed to the writer thread at once, so
cancelling whoever awaits it (the client left) cannot interrupt it, and the ``request.logged`` and
``upstream.failed`` events are emitted only from what was committed: ledger row, request-log
row and event always agree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection

from aiwallet.domain.bounds import Bound
from aiwallet.domain.cost import cost_of
from aiwallet.domain.money import format_usd
from aiwallet.domain.usage import TokenSource, Usage
from aiwallet.engine.call import Call
from aiwallet.engine.events import EventBus
from aiwallet.engine.payflow import payment_event
from aiwallet.engine.ratelimit import RateLimiter
from aiwallet.engine.state import EngineState
from aiwallet.store.attempts import AttemptRecord
from aiwallet.store.budgets import X402_SOURCE
from aiwallet.store.payments import payment_spend
from aiwallet.store.records import RequestRecord, Reservation, SpendEntry

log = logging.getLogger(__name__)

PROVIDER_COST = "provider_cost"  # the provider's own figure for the request's cost

# Codes that say the provider failed: they notify the user (at most one a minute, in the GUI).
PROVIDER_FAILURES = frozenset({"upstream_unavailable", "upstream_timeout"})


@dataclass(frozen=True, slots=True)
class Ending:
    """How a request ended: ``usage`` None gives its reservation back (it cost nothing)."""

    status: int
    error_code: str | None = None
    usage: Usage | None = None
    note: str | None = None
    over_bound: bool = False  # the provider sent more than the request's bound allowed


@dataclass(frozen=True, slots=True)
class Committed:
    """What was made durable for a request."""

    record: RequestRecord | None  # None: nothing was written (an unknown caller's refusal)
    cost_nano: int = 0
    remaining_nano: int | None = None  # least budget left after it, where known


def _past(usage: Usage, bound: Bound | None) -> bool:
    """The provider reported more than the request's own bound allows (it broke its limits),
    whether or not the cost still fits what was reserved."""
    if bound is None:
        return False
    return (
        usage.output_tokens > bound.total_output_tokens
        or usage.total_prompt_tokens > bound.prompt_tokens
    )


def only_a_good_one(attempts: tuple[AttemptRecord, ...]) -> bool:
    """The common case, one attempt that was answered (below 400): not written apart (the
    request row holds its provider, model, status and time; store/attempts.py reads it back
    from there), so that every request does not pay for a second row."""
    return len(attempts) == 1 and attempts[0].status is not None and attempts[0].status < 400


def costs_differ(reported_nano: int, catalog_nano: int) -> bool:
    """A provider-reported cost and the catalog's figure differ by more than 1 % of the
    catalog's (any difference when the catalog says nothing is due)."""
    return abs(reported_nano - catalog_nano) * 100 > catalog_nano


def _left_after(res: Reservation, cost: int) -> int | None:
    """The least budget left once ``res`` is settled at ``cost`` (None: no budget applies)."""
    if res.remaining_nano is None:
        return None
    return res.remaining_nano + res.amount_nano - cost


class RequestOwner:
    def __init__(
        self,
        call: Call,
        state: EngineState,
        events: EventBus,
        limiter: RateLimiter,
        background: set[asyncio.Future[Any]],
    ) -> None:
        self.call = call
        self._state = state
        self._events = events
        self._limiter = limiter
        self._background = background
        self._result: asyncio.Future[Committed] | None = None

    @property
    def ended(self) -> bool:
        return self._result is not None

    async def end(self, ending: Ending) -> Committed:
        """End the request (the first ending wins) and wait until it is committed."""
        return await asyncio.shield(self._start(ending))

    def end_soon(self, ending: Ending) -> None:
        """End the request without waiting (from a cancellation: nothing may be awaited)."""
        self._start(ending)

    def _start(self, ending: Ending) -> asyncio.Future[Committed]:
        """The first ending is planned at once and handed to the writer thread, whose commit
        no cancellation can stop; its result (and the events) follow from the commit."""
        if self._result is not None:
            return self._result
        loop = asyncio.get_running_loop()
        self._result = result = loop.create_future()
        self._free_rate_limit(ending)
        try:
            write, finish = self._plan(ending)
        except Exception:
            log.exception("could not price the end of %s", self.call.request_id)
            self._fall_back(ending)
            return result
        if write is None:
            result.set_result(finish(None))
            return result
        write = self._with_attempts(write)
        written = self._state.writer.submit_nowait(write)
        self._background.add(written)
        written.add_done_callback(lambda f: self._written(f, finish, ending))
        written.add_done_callback(self._background.discard)  # after: events are out first
        return result

    def _written(
        self, written: asyncio.Future[Any], finish: Callable[[Any], Committed], ending: Ending
    ) -> None:
        assert self._result is not None
        if written.cancelled() or written.exception() is not None:
            exc = None if written.cancelled() else written.exception()
            log.error("could not record the end of %s: %r", self.call.request_id, exc)
            self._fall_back(ending)
            return
        done = finish(written.result())
        if done.record is not None:
            self._announce(done.record)
        self._result.set_result(done)

    def _fall_back(self, ending: Ending) -> None:
        async def run() -> None:
            assert self._result is not None
            done = await self._fallback(ending)
            if done.record is not None:
                self._announce(done.record)
            self._result.set_result(done)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _with_attempts(self, write: Callable[[Connection], Any]) -> Callable[[Connection], Any]:
        """``write``, and the request's attempts at providers with it (same transaction),
        unless it wrote no row (its reservation was closed already: someone else ended it)."""
        call = self.call
        attempts = tuple(call.attempts)  # as they are now: the ending decides
        if not attempts or only_a_good_one(attempts):
            return write  # none, or one answered: the request's own row says it all
        hot = self._state.budgets.hot  # batched with the request's row (the hot statements)

        def both(conn: Connection) -> Any:
            done = write(conn)
            if done is not False:
                for attempt in attempts:
                    hot.insert(conn, "insert_attempt", attempt.row(call.request_id))
            return done

        return both

    def _free_rate_limit(self, ending: Ending) -> None:
        call = self.call
        if call.rl_tokens is not None and call.ctx is not None:
            u = ending.usage
            used = u.total_prompt_tokens + u.output_tokens if u is not None else 0
            self._limiter.done(call.ctx.app.id, call.rl_tokens, used)

    # -- committing -----------------------------------------------------------------------------
    def _plan(
        self, ending: Ending
    ) -> tuple[Callable[[Connection], Any] | None, Callable[[Any], Committed]]:
        """What to write for ``ending`` (None: nothing), and what was committed once the
        write returned its value."""
        call, state = self.call, self._state
        res = call.reservation
        if res is None:
            if call.ctx is None:
                return None, lambda _: Committed(None)  # nobody to log it for
            record = self._record(ending, cost=0)
            return (
                lambda conn: state.requests.record_in(conn, record),
                lambda _: Committed(record),
            )
        if call.payment is not None and call.payment.billable:
            return self._plan_paid(ending, res)  # whatever the answer: the payment was made
        if call.payment is not None and call.payment.outcome == "held":
            # the router said it did not settle: nothing billed, the amount stays reserved
            # until the chain tells (engine/reconcile.py releases or bills it)
            held = self._record(ending, cost=0)
            return (
                lambda conn: state.requests.record_in(conn, held),
                lambda _: Committed(held),
            )
        if ending.usage is None:
            record = self._record(ending, cost=0)
            return (
                lambda conn: state.budgets.release_in(conn, res.id, record),
                lambda freed: Committed(record if freed else None),
            )
        assert call.route is not None
        route, usage = call.route, ending.usage
        priced = cost_of(usage, route.row).nano
        trusted = route.provider.prepaid or route.kind.reports_cost
        reported = usage.reported_cost_nano if trusted else None
        cost = reported if reported is not None else priced
        over = ending.over_bound or cost > res.amount_nano or _past(usage, call.bound)
        if over:
            log.warning(
                "%s: provider %s billed %d nano-dollars, %d reserved",
                call.request_id, route.provider.name, cost, res.amount_nano,
            )  # fmt: skip
            ending = replace(ending, error_code=ending.error_code or "over_reserved")
        differs = reported is not None and costs_differ(reported, priced)
        record = replace(
            self._record(ending, cost=cost),
            over_reserved=over,
            catalog_cost_nano=priced if reported is not None else None,
            cost_differs=differs,
        )
        note = ending.note if not over else f"{ending.note or ''} over the reservation".strip()
        if differs:
            gap = (
                f"the provider billed {format_usd(reported or 0, places=None)}; the catalog's "
                f"price is {format_usd(priced, places=None)}"
            )
            note = f"{note}; {gap}" if note else gap
        spend = SpendEntry(
            provider=route.provider.name,
            model=route.upstream_model,
            price_row_ref=route.row.ref,
            price_row=route.row.to_json(),
            token_source=PROVIDER_COST if reported is not None else usage.source.value,
            note=note,
            catalog_cost_nano=priced if reported is not None else None,
        )
        remaining = _left_after(res, cost)

        def settled(ok: bool) -> Committed:
            if not ok:
                log.warning("reservation of %s was already closed", call.request_id)
                return Committed(None)
            return Committed(record, cost, remaining)

        return lambda conn: state.budgets.settle_in(conn, res.id, cost, spend, record), settled

    def _plan_paid(
        self, ending: Ending, res: Reservation
    ) -> tuple[Callable[[Connection], Any], Callable[[Any], Committed]]:
        """A request paid by x402: billed exactly the payment (its price row is the
        payment), whatever the answer was; a failed answer after payment is flagged."""
        call, state = self.call, self._state
        paid = call.payment
        assert paid is not None and call.route is not None
        pay = paid.record
        cost = pay.amount_nano
        flagged = ending.error_code is not None or ending.status >= 400
        settled = paid.outcome == "settled"
        notes = []
        if not settled:
            notes.append("paid; the router did not confirm the settlement, the chain will tell")
        if flagged:
            notes.append(
                f"the answer failed after the payment ({ending.error_code or ending.status})"
            )
        if ending.note:
            notes.append(ending.note)
        note = "; ".join(notes) or None
        record = replace(self._record(ending, cost=cost), token_source=X402_SOURCE)
        spend = replace(
            payment_spend(replace(pay, tx_signature=paid.tx_signature), note),
            model=call.route.upstream_model,
        )
        payments = state.port.payments
        state_name = "settled" if settled else "unconfirmed"

        def write(conn: Connection) -> bool:
            ok = state.budgets.settle_in(conn, res.id, cost, spend, record)
            payments.finish_in(
                conn, pay.id, state_name, tx_signature=paid.tx_signature, billed=True,
                flagged=flagged, note=note,
            )  # fmt: skip
            return ok

        remaining = _left_after(res, cost)

        def done(ok: bool) -> Committed:
            if not ok:
                log.warning("reservation of %s was already closed", call.request_id)
                return Committed(None)
            self._events.emit(
                "payment.settled" if settled else "payment.unconfirmed",
                payment_event(pay, state_name, paid.tx_signature),
            )
            return Committed(record, cost, remaining)

        return write, done

    async def _fallback(self, ending: Ending) -> Committed:
        """The ending could not be written as it was: bill a reservation at its reserved worst
        case (so no spend that may have reached the provider is lost), else log the refusal
        without its details. If even that fails the reservation stays open, and the next
        start bills it the same way."""
        call, state = self.call, self._state
        res, route = call.reservation, call.route
        try:
            if res is None or route is None:
                return Committed(None)
            record = self._record(
                ending, cost=res.amount_nano, usage=Usage(source=TokenSource.ESTIMATED)
            )
            spend = SpendEntry(
                route.provider.name, route.upstream_model, route.row.ref, route.row.to_json(),
                "estimated", note="the real cost could not be recorded; billed at the reserved "
                "worst case",
            )  # fmt: skip
            if not call.sent:
                ok = await state.write(
                    self._with_attempts(lambda conn: state.budgets.release_in(conn, res.id, record))
                )
            else:
                ok = await state.write(
                    self._with_attempts(
                        lambda conn: state.budgets.settle_in(
                            conn, res.id, res.amount_nano, spend, record
                        )
                    )
                )
            return Committed(record if ok else None, res.amount_nano if call.sent else 0)
        except Exception:
            log.exception("could not close the reservation of %s", call.request_id)
            return Committed(None)

    def _record(self, ending: Ending, *, cost: int, usage: Usage | None = None) -> RequestRecord:
        call = self.call
        counted = usage or ending.usage
        u = counted or Usage()
        route = call.route
        return RequestRecord(
            id=call.request_id,
            ts=call.ts,
            endpoint=call.endpoint.path,
            status=ending.status,
            app_id=call.ctx.app.id if call.ctx else None,
            model=route.upstream_model if route else None,
            provider=route.provider.name if route else None,
            input_tokens=u.input_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens + u.cache_write_1h_tokens,
            output_tokens=u.output_tokens,
            reasoning_tokens=u.reasoning_tokens,
            cost_nano=cost,
            token_source=counted.source.value if counted is not None else None,
            latency_ms=call.elapsed_ms(),
            ttfb_ms=call.ttfb_ms,
            error_code=ending.error_code,
            stream=call.stream,
        )

    def _announce(self, record: RequestRecord) -> None:
        """Events from what was committed, and only from here."""
        self._events.emit(
            "request.logged",
            {
                "id": record.id,
                "app_id": record.app_id,
                "status": record.status,
                "cost_nano": record.cost_nano,
                "error_code": record.error_code,
            },
        )
        if record.over_reserved:
            self._events.emit(
                "request.over_reserved",
                {
                    "id": record.id,
                    "app_id": record.app_id,
                    "provider": record.provider,
                    "cost_nano": record.cost_nano,
                    "reserved_nano": self.call.reservation.amount_nano
                    if self.call.reservation
                    else None,
                },
            )
        if record.error_code == "provider_limit_reached":
            self._events.emit(
                "provider.limit_reached",
                {"provider": record.provider, "app_id": record.app_id, "id": record.id},
            )
        if record.error_code in PROVIDER_FAILURES and record.provider is not None:
            self._events.emit(
                "upstream.failed",
                {"provider": record.provider, "status": record.status, "code": record.error_code},
            )
