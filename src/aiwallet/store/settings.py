"""Typed settings stored as JSON values, one row per key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

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
            conn.execute(update(t.settings).where(t.settings.c.key == key).values(value=value))
            stmt = (pg_insert if self.db.is_postgres else sqlite_insert)(t.settings).values(
                key=key, value=value
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
            if audit:
                append_audit(conn, actor, "setting.set", f"setting:{key}", {"value": value})

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
