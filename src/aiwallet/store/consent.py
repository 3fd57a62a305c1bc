"""Remembered consent decisions: allow and deny, listed, changeable, revocable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, update

from aiwallet.domain.errors import InvalidInput, NotFound
from aiwallet.store import schema as t
from aiwallet.store.audit import append_audit
from aiwallet.store.db import Database

SUBJECT_KINDS = ("program", "app", "exe", "payee")


@dataclass(frozen=True, slots=True)
class ConsentRule:
    id: int
    # "program": a program calling without a key, as that program and its OS user (canonical
    # JSON, engine/peer.py ProcessInfo.rule_subject); "app": a name asking through connect;
    # "exe": a program by path alone (rules from before the OS user was part of it; the engine
    # applies only their denials)
    subject_kind: str
    subject: str
    decision: str  # "allow" | "deny"
    app_id: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    note: str | None

    def active_at(self, at: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or at < self.expires_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject_kind": self.subject_kind,
            "subject": self.subject,
            "decision": self.decision,
            "app_id": self.app_id,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "note": self.note,
        }


def _rule(r: RowMapping) -> ConsentRule:
    return ConsentRule(**{k: r[k] for k in ConsentRule.__slots__})


class ConsentRules:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        subject_kind: str,
        subject: str,
        decision: str,
        *,
        app_id: int | None = None,
        expires_at: datetime | None = None,
        note: str | None = None,
        actor: str = "user",
    ) -> ConsentRule:
        with self.db.begin() as conn:
            rule_id = self.add_in(
                conn, subject_kind, subject, decision, app_id=app_id, expires_at=expires_at,
                note=note, actor=actor,
            )  # fmt: skip
        return self.get(rule_id)

    def add_in(
        self,
        conn: Connection,
        subject_kind: str,
        subject: str,
        decision: str,
        *,
        app_id: int | None = None,
        expires_at: datetime | None = None,
        note: str | None = None,
        actor: str = "user",
    ) -> int:
        """:meth:`add` inside the caller's transaction; returns the new rule's id."""
        if decision not in ("allow", "deny") or subject_kind not in SUBJECT_KINDS:
            raise InvalidInput(
                "a consent rule is allow/deny for a program, an exe, an app name or a payee"
            )
        now = datetime.now(UTC)
        # A new decision about a subject replaces the old one.
        conn.execute(
            update(t.consent_rules)
            .where(
                t.consent_rules.c.subject_kind == subject_kind,
                t.consent_rules.c.subject == subject,
                t.consent_rules.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        pk = conn.execute(
            insert(t.consent_rules).values(
                subject_kind=subject_kind,
                subject=subject,
                decision=decision,
                app_id=app_id,
                created_at=now,
                expires_at=expires_at,
                note=note,
            )
        ).inserted_primary_key
        assert pk is not None
        append_audit(
            conn,
            actor,
            f"consent.{decision}",
            f"{subject_kind}:{subject}",
            {"app_id": app_id, "expires_at": expires_at.isoformat() if expires_at else None},
        )
        return int(pk[0])

    def get(self, rule_id: int) -> ConsentRule:
        with self.db.read() as conn:
            r = (
                conn.execute(select(t.consent_rules).where(t.consent_rules.c.id == rule_id))
                .mappings()
                .first()
            )
        if r is None:
            raise NotFound(f"no consent rule {rule_id}; see 'aiwallet consent list'")
        return _rule(r)

    def find(self, subject_kind: str, subject: str) -> ConsentRule | None:
        """The subject's current decision, if any is active."""
        now = datetime.now(UTC)
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.consent_rules)
                .where(
                    t.consent_rules.c.subject_kind == subject_kind,
                    t.consent_rules.c.subject == subject,
                    t.consent_rules.c.revoked_at.is_(None),
                )
                .order_by(t.consent_rules.c.id.desc())
            ).mappings()
            for r in rows:
                rule = _rule(r)
                if rule.active_at(now):
                    return rule
        return None

    def list(self, *, include_revoked: bool = False) -> list[ConsentRule]:
        q = select(t.consent_rules).order_by(t.consent_rules.c.id)
        if not include_revoked:
            q = q.where(t.consent_rules.c.revoked_at.is_(None))
        with self.db.read() as conn:
            return [_rule(r) for r in conn.execute(q).mappings()]

    def revoke(self, rule_id: int, *, actor: str = "user") -> ConsentRule:
        rule = self.get(rule_id)
        with self.db.begin() as conn:
            conn.execute(
                update(t.consent_rules)
                .where(t.consent_rules.c.id == rule_id)
                .values(revoked_at=datetime.now(UTC))
            )
            append_audit(
                conn,
                actor,
                "consent.revoke",
                f"{rule.subject_kind}:{rule.subject}",
                {"rule": rule_id},
            )
        return self.get(rule_id)
