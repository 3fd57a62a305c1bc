"""Typed settings stored as JSON values, one row per key."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from aiwallet.domain.audit import canonical_json
from aiwallet.store import schema as t
from aiwallet.store.audit import append_audit
from aiwallet.store.db import Database


class Settings:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str, default: Any = None) -> Any:
        with self.db.read() as conn:
            row = conn.execute(select(t.settings.c.value).where(t.settings.c.key == key)).first()
        return default if row is None else row[0]

    def all(self) -> dict[str, Any]:
        with self.db.read() as conn:
            return {k: v for k, v in conn.execute(select(t.settings.c.key, t.settings.c.value))}

    def set(self, key: str, value: Any, *, actor: str = "user", audit: bool = True) -> None:
        with self.db.begin() as conn:
            set_in(conn, key, value)
            if audit:
                append_audit(conn, actor, "setting.set", f"setting:{key}", {"value": value})

    def set_changed(
        self,
        values: Mapping[str, Any],
        *,
        effective: Callable[[str, Any], Any] | None = None,
        actor: str = "user",
        action: str = "setting.set",
    ) -> dict[str, Any]:
        """Store the values that differ from what is stored, in ONE transaction, with one
        audit entry (``action``, subject ``setting:<key>``, details ``{"value": ...}``) per
        value written; returns those, in the order given. Nothing changed: nothing written.

        ``effective(key, stored)`` turns what is stored (None when unset) into the value
        compared with, e.g. a preference's default when unset or no longer valid. Values are
        compared as canonical JSON (``True`` is not ``1``, a tuple is its list). A first look
        without the write lock settles the common "nothing changed"; what is written is
        decided again inside the write transaction (under SQLite's write lock; the rows
        locked on PostgreSQL), so each audit entry records a value that really changed.
        """
        with self.db.read() as conn:
            if not self._changed_in(conn, values, effective):
                return {}
        with self.db.begin() as conn:
            changed = self._changed_in(conn, values, effective, lock=True)
            for key, value in changed.items():
                set_in(conn, key, value)
                append_audit(conn, actor, action, f"setting:{key}", {"value": value})
        return changed

    @staticmethod
    def _changed_in(
        conn: Connection,
        values: Mapping[str, Any],
        effective: Callable[[str, Any], Any] | None,
        *,
        lock: bool = False,
    ) -> dict[str, Any]:
        if not values:
            return {}
        q = select(t.settings.c.key, t.settings.c.value).where(t.settings.c.key.in_(list(values)))
        if lock and conn.dialect.name == "postgresql":
            q = q.with_for_update()
        stored = {k: v for k, v in conn.execute(q)}
        changed: dict[str, Any] = {}
        for key, value in values.items():
            current = stored.get(key)
            if effective is not None:
                current = effective(key, current)
            if canonical_json(current) != canonical_json(value):
                changed[key] = value
        return changed

    def get_or_create(self, key: str, factory: Any) -> Any:
        """The value of ``key``; if unset, store ``factory()`` first (race-safe)."""
        current = self.get(key)
        if current is not None:
            return current
        with self.db.begin() as conn:
            stmt = (pg_insert if self.db.is_postgres else sqlite_insert)(t.settings).values(
                key=key, value=factory()
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
        return self.get(key)


def set_in(conn: Connection, key: str, value: Any) -> None:
    """Store ``value`` under ``key`` inside the caller's transaction (not audited here)."""
    conn.execute(update(t.settings).where(t.settings.c.key == key).values(value=value))
    stmt = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(t.settings).values(
        key=key, value=value
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
