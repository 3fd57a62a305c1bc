"""What became of payments whose outcome the router did not tell: asked of the chain.

A payment is written before the paid request leaves, so after a crash (or an answer that
said nothing of the settlement) its record is there to look for: the payer's own signature
is inside the transaction, so the payer's recent transactions find it. Then:

- landed: billed exactly its amount (once: the transaction signature is unique), on the
  request's reservation if it is still open (a crash), else it was billed already
  (``unconfirmed``) and is only marked settled;
- never (not found, and its blockhash expired, so it can no longer land): a reservation
  still open is released; one billed while unconfirmed is refunded;
- pending or unknown (the chain cannot yet tell, or did not answer): at start, a signed
  payment whose reservation is still open is billed at its amount as ``unconfirmed`` (never
  less than what may have been paid); later rounds settle or refund it.

Runs at start (before open reservations are recovered) and then every ``interval_s``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Connection

from aiwallet.domain.providers import provider_kind
from aiwallet.engine.events import EventBus
from aiwallet.engine.payflow import payment_event
from aiwallet.engine.periodic import Periodic
from aiwallet.engine.state import EngineState
from aiwallet.payments.chainlookup import Lookup, find_payment
from aiwallet.store.audit import append_audit
from aiwallet.store.payments import PaymentRecord, bill_in, open_reservation_of

log = logging.getLogger(__name__)

LOOKUP_TIMEOUT_S = 10.0
MAX_PER_ROUND = 50


@dataclass
class Round:
    settled: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)  # x402 reservations nothing paid


class Reconciler(Periodic):
    """Poked when a payment ended without word: the chain is asked now, not at the next
    round. Its first round is run by the engine's start (``run_once(at_start=True)``)."""

    wait_first = True
    what = "reconciling open payments"

    def __init__(self, state: EngineState, events: EventBus, interval_s: float = 30.0) -> None:
        super().__init__()
        self.state = state
        self.events = events
        self.interval_s = interval_s

    async def tick(self, poked: bool) -> None:
        await self.run_once()

    async def run_once(self, *, at_start: bool = False) -> Round:
        state = self.state
        done = Round()
        theirs: set[str] = set()  # requests another wallet's engine has in flight (shared)
        if at_start:
            done.released = await state.db(self._release_unpaid)
            theirs = await state.db(self._in_flight_elsewhere)
        open_payments = await state.db(state.port.payments.open)
        if not open_payments:
            return done
        net = await state.db(state.port.solana_network)
        for payment in open_payments[:MAX_PER_ROUND]:
            if payment.network not in net.names:
                done.waiting.append(payment.id)  # another network's: looked up once back on it
                continue
            lookup = await find_payment(
                net, payment.payer, payment.payer_signature, payment.blockhash,
                timeout=LOOKUP_TIMEOUT_S,
            )  # fmt: skip
            # another wallet's payment in flight on a shared ledger is not a crash's: only
            # what the chain says is applied to it, never the start's billing
            ours = at_start and payment.request_id not in theirs
            outcome = await state.db(self._apply, payment, lookup, ours)
            getattr(done, outcome).append(payment.id)
            if outcome != "waiting":
                self.events.emit(
                    f"payment.{outcome}", payment_event(payment, outcome, lookup.tx_signature)
                )
        return done

    def _in_flight_elsewhere(self) -> set[str]:
        """Request ids of open reservations that are not this wallet's to recover: another
        wallet's engine on a shared PostgreSQL ledger has them in flight (none on SQLite)."""
        port = self.state.port
        if not port.db.is_postgres:
            return set()
        mine = {r.id for r in port.left_open()}
        return {r.request_id for r in port.budgets.open_reservations() if r.id not in mine}

    def _release_unpaid(self) -> list[str]:
        """Open reservations for a per-request x402 router with no payment signed: such a
        router serves nothing unpaid, so nothing can be owed (the engine stopped between
        reserving and signing); released rather than billed at their worst case."""
        port = self.state.port
        routers = {
            p.name for p in port.providers.list() if provider_kind(p.kind).x402 and not p.prepaid
        }
        released: list[str] = []
        for res in port.left_open():  # never another wallet's in flight on a shared ledger
            if res.provider not in routers or port.payments.for_request(res.request_id):
                continue
            with port.db.begin() as conn:
                if port.budgets.release_in(conn, res.id):
                    append_audit(
                        conn, "engine", "reservation.recover", f"reservation:{res.id}",
                        {"request_id": res.request_id, "outcome": "released: nothing was paid"},
                    )  # fmt: skip
                    released.append(res.id)
        return released

    def _apply(self, payment: PaymentRecord, lookup: Lookup, at_start: bool) -> str:
        """One payment's new state from what the chain said (blocking: one transaction)."""
        port = self.state.port
        budgets, payments = port.budgets, port.payments
        with port.db.begin() as conn:
            if lookup.state == "landed" and lookup.succeeded:
                note = "settled on chain (found after the fact)"
                billed = bill_in(
                    conn, budgets, payments, payment, state="settled",
                    tx_signature=lookup.tx_signature, note=note,
                )  # fmt: skip
                if not billed:
                    payments.finish_in(
                        conn, payment.id, "settled", tx_signature=lookup.tx_signature
                    )
                self._audit(conn, payment, "settled", lookup.tx_signature)
                return "settled"
            if lookup.state == "never" or (lookup.state == "landed" and not lookup.succeeded):
                note = "never landed on chain: not billed"
                res_id = open_reservation_of(conn, payment.request_id)
                if res_id is not None:
                    budgets.release_in(conn, res_id)
                elif payment.billed:
                    budgets.refund_in(conn, payment.request_id, payment.amount_nano, note)
                    note = "never landed on chain: refunded"
                payments.finish_in(conn, payment.id, "failed", note=note)
                self._audit(conn, payment, "failed", None)
                return "failed"
            if at_start and payment.state in ("signed", "held"):
                note = "the engine stopped before the router answered; billed at the payment's "
                note += "amount until the chain tells"
                if bill_in(
                    conn, budgets, payments, payment, state="unconfirmed", tx_signature=None,
                    note=note,
                ):  # fmt: skip
                    self._audit(conn, payment, "unconfirmed", None)
                    return "unconfirmed"
            return "waiting"

    @staticmethod
    def _audit(conn: Connection, payment: PaymentRecord, outcome: str, tx: str | None) -> None:
        append_audit(
            conn,
            "engine",
            "payment.reconcile",
            f"payment:{payment.id}",
            {
                "request_id": payment.request_id,
                "outcome": outcome,
                "amount_atomic": payment.amount_atomic,
                "tx_signature": tx,
            },
        )
