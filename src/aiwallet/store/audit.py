"""The audit log table: append-only, hash-chained, verifiable."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, update

from aiwallet.domain.audit import AuditEntry, AuditVerification, entry_hash, verify_chain
from aiwallet.store import schema as t
from aiwallet.store.db import Database


def append_audit(
    conn: Connection,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's transaction.

    The chain head row is locked first (``FOR UPDATE`` on PostgreSQL; on SQLite the whole
    transaction already holds the write lock), so concurrent appenders queue up and the chain
    never forks.
    """
    head_q = select(t.audit_head.c.seq, t.audit_head.c.hash).where(t.audit_head.c.id == 1)
    if conn.dialect.name == "postgresql":
        head_q = head_q.with_for_update()
    head = conn.execute(head_q).one()
    seq = int(head.seq) + 1
    ts = (at or datetime.now(UTC)).astimezone(UTC)
    body = dict(details or {})
    digest = entry_hash(head.hash, seq, ts, actor, action, subject, body)
    conn.execute(
        insert(t.audit).values(
            seq=seq,
            ts=ts,
            actor=actor,
            action=action,
            subject=subject,
            details=body,
            prev_hash=head.hash,
            hash=digest,
        )
    )
    conn.execute(update(t.audit_head).where(t.audit_head.c.id == 1).values(seq=seq, hash=digest))
    return AuditEntry(seq, ts, actor, action, subject, body, head.hash, digest)


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append(
        self, actor: str, action: str, subject: str, details: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        with self.db.begin() as conn:
            return append_audit(conn, actor, action, subject, details)

    def head_seq(self) -> int:
        """The newest entry's number (0: none yet): it moves with every audited change."""
        with self.db.read() as conn:
            seq = conn.execute(
                select(t.audit_head.c.seq).where(t.audit_head.c.id == 1)
            ).scalar_one_or_none()
        return int(seq or 0)

    def entries(self, *, limit: int | None = None, newest_first: bool = False) -> list[AuditEntry]:
        order = t.audit.c.seq.desc() if newest_first else t.audit.c.seq
        q = select(t.audit).order_by(order)
        if limit is not None:
            q = q.limit(limit)
        with self.db.read() as conn:
            return [_entry(r) for r in conn.execute(q).mappings()]

    def verify(self) -> AuditVerification:
        """Walk the whole chain in storage order (by ``seq``) and check every link."""
        with self.db.read() as conn:
            head = conn.execute(select(t.audit_head).where(t.audit_head.c.id == 1)).one()
            rows = conn.execute(select(t.audit).order_by(t.audit.c.seq)).mappings()
            return verify_chain((_entry(r) for r in rows), int(head.seq), str(head.hash))


def _entry(r: RowMapping) -> AuditEntry:
    return AuditEntry(
        seq=int(r["seq"]),
        ts=r["ts"],
        actor=r["actor"],
        action=r["action"],
        subject=r["subject"],
        details=r["details"],
        prev_hash=r["prev_hash"],
        hash=r["hash"],
    )
