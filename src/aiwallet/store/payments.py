"""x402 payments signed from the user's Solana wallet: one row per signed payment.

A payment is written (state ``signed``) before the paid request leaves the engine, so a
crash at any later moment leaves a record to look for on chain. It then becomes
``settled`` (with the transaction's signature, which is unique: billed once per
signature), ``held`` (the router said it did not settle: not billed, its reservation
kept until the chain tells), ``failed`` (never billed), or ``unconfirmed`` (billed at its
amount while the chain cannot yet tell; the reconciler settles it, or refunds it once it
can never land).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, update

from aiwallet.domain.errors import NotFound
from aiwallet.store import schema as t
from aiwallet.store.budgets import X402_SOURCE, Budgets
from aiwallet.store.db import Database
from aiwallet.store.records import SpendEntry

STATES = ("signed", "held", "settled", "failed", "unconfirmed")
OPEN_STATES = ("signed", "held", "unconfirmed")  # the chain may still tell


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    id: str
    kind: str  # "request" | "topup"
    request_id: str
    app_id: int | None
    provider: str
    payee: str
    network: str
    asset: str
    amount_atomic: int
    amount_nano: int
    payer: str
    payer_signature: str
    blockhash: str
    created_at: datetime
    state: str = "signed"
    tx_signature: str | None = None
    resource: str | None = None
    billed: bool = False
    flagged: bool = False
    note: str | None = None
    settled_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    def to_json(self) -> dict[str, Any]:
        out = self.row()
        out["created_at"] = self.created_at.isoformat()
        out["settled_at"] = self.settled_at.isoformat() if self.settled_at else None
        return out


def _record(r: RowMapping) -> PaymentRecord:
    values = {k: r[k] for k in PaymentRecord.__slots__}
    values["amount_atomic"] = int(values["amount_atomic"])
    values["amount_nano"] = int(values["amount_nano"])
    return PaymentRecord(**values)


class Payments:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes (inside the caller's transaction) ------------------------------------------------
    def add_in(self, conn: Connection, payment: PaymentRecord) -> None:
        conn.execute(insert(t.payments).values(**payment.row()))

    def finish_in(
        self,
        conn: Connection,
        payment_id: str,
        state: str,
        *,
        tx_signature: str | None = None,
        billed: bool | None = None,
        flagged: bool | None = None,
        note: str | None = None,
    ) -> PaymentRecord | None:
        """Move an open payment (signed, held or unconfirmed) to ``state``; None if it was not
        open any more (finishing twice changes nothing)."""
        if state not in STATES:
            raise ValueError(f"unknown payment state {state!r}")
        c = t.payments.c
        values: dict[str, Any] = {"state": state}
        if tx_signature is not None:
            values["tx_signature"] = tx_signature
        if state == "settled":
            values["settled_at"] = datetime.now(UTC)
        if billed is not None:
            values["billed"] = billed
        if flagged is not None:
            values["flagged"] = flagged
        if note is not None:
            values["note"] = note
        row = (
            conn.execute(
                update(t.payments)
                .where(c.id == payment_id, c.state.in_(OPEN_STATES))
                .values(**values)
                .returning(*t.payments.c)
            )
            .mappings()
            .first()
        )
        return _record(row) if row is not None else None

    def add(self, payment: PaymentRecord) -> None:
        with self.db.begin() as conn:
            self.add_in(conn, payment)

    # -- reads ---------------------------------------------------------------------------------
    def get(self, payment_id: str) -> PaymentRecord:
        with self.db.read() as conn:
            r = conn.execute(select(t.payments).where(t.payments.c.id == payment_id)).mappings()
            row = r.first()
        if row is None:
            raise NotFound(f"no payment {payment_id}")
        return _record(row)

    def for_request(self, request_id: str) -> list[PaymentRecord]:
        with self.db.read() as conn:
            q = select(t.payments).where(t.payments.c.request_id == request_id)
            rows = conn.execute(q.order_by(t.payments.c.created_at)).mappings()
            return [_record(r) for r in rows]

    def recent(self, limit: int = 50, *, kind: str | None = None) -> list[PaymentRecord]:
        with self.db.read() as conn:
            q = select(t.payments)
            if kind is not None:
                q = q.where(t.payments.c.kind == kind)
            q = q.order_by(t.payments.c.created_at.desc(), t.payments.c.id).limit(limit)
            return [_record(r) for r in conn.execute(q).mappings()]

    def open(self) -> list[PaymentRecord]:
        """Payments whose outcome the chain has not yet told (oldest first)."""
        with self.db.read() as conn:
            q = select(t.payments).where(t.payments.c.state.in_(OPEN_STATES))
            rows = conn.execute(q.order_by(t.payments.c.created_at)).mappings()
            return [_record(r) for r in rows]


def payment_spend(payment: PaymentRecord, note: str | None) -> SpendEntry:
    """The ledger entry of a payment: its price row is the payment itself."""
    return SpendEntry(
        provider=payment.provider,
        model=None,
        price_row_ref=f"x402:{payment.id}",
        price_row={
            "kind": "x402",
            "payment_id": payment.id,
            "payee": payment.payee,
            "network": payment.network,
            "asset": payment.asset,
            "amount_atomic": str(payment.amount_atomic),
            "tx_signature": payment.tx_signature,
        },
        token_source=X402_SOURCE,
        note=note,
        kind="topup" if payment.kind == "topup" else "spend",
    )


def open_reservation_of(conn: Connection, request_id: str) -> str | None:
    """The id of the open reservation a request holds, if any."""
    r = t.reservations.c
    row = conn.execute(select(r.id).where(r.request_id == request_id, r.state == "open")).first()
    return str(row[0]) if row is not None else None


def bill_in(
    conn: Connection,
    budgets: Budgets,
    payments: Payments,
    payment: PaymentRecord,
    *,
    state: str,
    tx_signature: str | None,
    note: str,
) -> bool:
    """Bill a payment found after the fact (recovery, reconciliation) on its request's open
    reservation, exactly its amount, and move it to ``state``; False if nothing was open."""
    res_id = open_reservation_of(conn, payment.request_id)
    if res_id is None:
        return False
    spend = payment_spend(replace(payment, tx_signature=tx_signature), note)
    if not budgets.settle_in(conn, res_id, payment.amount_nano, spend):
        return False
    payments.finish_in(conn, payment.id, state, tx_signature=tx_signature, billed=True, note=note)
    return True
