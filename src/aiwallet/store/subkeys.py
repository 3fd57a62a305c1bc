"""Per-app provider keys (``provider_subkeys``): which key the provider made for which app,
capped how, and what the provider last said of its use. The keys themselves are in the vault.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, delete, insert, select, update

from aiwallet.store import schema as t
from aiwallet.store.audit import append_audit
from aiwallet.store.db import Database


@dataclass(frozen=True, slots=True)
class SubKey:
    id: int
    provider: str
    app_id: int
    key_id: str
    secret_ref: str
    key_hint: str | None
    limit_nano: int | None
    limit_reset: str | None
    disabled: bool
    usage: dict[str, Any] | None
    problem: str | None
    created_at: datetime
    updated_at: datetime
    synced_at: datetime | None


def _record(r: RowMapping) -> SubKey:
    return SubKey(**{k: r[k] for k in SubKey.__slots__})


class SubKeys:
    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self, provider: str | None = None) -> list[SubKey]:
        q = select(t.provider_subkeys).order_by(
            t.provider_subkeys.c.provider, t.provider_subkeys.c.app_id
        )
        if provider is not None:
            q = q.where(t.provider_subkeys.c.provider == provider)
        with self.db.read() as conn:
            return [_record(r) for r in conn.execute(q).mappings()]

    def find(self, provider: str, app_id: int) -> SubKey | None:
        c = t.provider_subkeys.c
        with self.db.read() as conn:
            r = (
                conn.execute(
                    select(t.provider_subkeys).where(c.provider == provider, c.app_id == app_id)
                )
                .mappings()
                .first()
            )
        return None if r is None else _record(r)

    def add(
        self,
        provider: str,
        app_id: int,
        *,
        key_id: str,
        secret_ref: str,
        key_hint: str | None,
        limit_nano: int | None,
        limit_reset: str | None,
        disabled: bool,
        usage: dict[str, Any] | None,
    ) -> SubKey:
        now = datetime.now(UTC)
        with self.db.begin() as conn:
            conn.execute(
                insert(t.provider_subkeys).values(
                    provider=provider, app_id=app_id, key_id=key_id, secret_ref=secret_ref,
                    key_hint=key_hint, limit_nano=limit_nano, limit_reset=limit_reset,
                    disabled=disabled, usage=usage, created_at=now, updated_at=now,
                    synced_at=now,
                )
            )  # fmt: skip
            append_audit(
                conn, "engine", "subkey.create", f"provider:{provider}",
                {"app_id": app_id, "key_hint": key_hint, "limit_nano": limit_nano,
                 "limit_reset": limit_reset, "disabled": disabled},
            )  # fmt: skip
        found = self.find(provider, app_id)
        assert found is not None
        return found

    def set_state(
        self,
        sub: SubKey,
        *,
        limit_nano: int | None,
        limit_reset: str | None,
        disabled: bool,
        usage: dict[str, Any] | None,
    ) -> None:
        now = datetime.now(UTC)
        with self.db.begin() as conn:
            conn.execute(
                update(t.provider_subkeys)
                .where(t.provider_subkeys.c.id == sub.id)
                .values(
                    limit_nano=limit_nano, limit_reset=limit_reset, disabled=disabled,
                    usage=usage, problem=None, updated_at=now, synced_at=now,
                )
            )  # fmt: skip
            append_audit(
                conn, "engine", "subkey.update", f"provider:{sub.provider}",
                {"app_id": sub.app_id, "limit_nano": limit_nano, "limit_reset": limit_reset,
                 "disabled": disabled},
            )  # fmt: skip

    def set_usage(self, sub: SubKey, usage: dict[str, Any]) -> None:
        with self.db.begin() as conn:
            conn.execute(
                update(t.provider_subkeys)
                .where(t.provider_subkeys.c.id == sub.id)
                .values(usage=usage, problem=None, synced_at=datetime.now(UTC))
            )

    def set_problem(self, provider: str, app_id: int, problem: str | None) -> None:
        c = t.provider_subkeys.c
        with self.db.begin() as conn:
            conn.execute(
                update(t.provider_subkeys)
                .where(c.provider == provider, c.app_id == app_id)
                .values(problem=problem)
            )

    def remove(self, sub: SubKey) -> None:
        with self.db.begin() as conn:
            conn.execute(delete(t.provider_subkeys).where(t.provider_subkeys.c.id == sub.id))
            append_audit(
                conn, "engine", "subkey.delete", f"provider:{sub.provider}",
                {"app_id": sub.app_id, "key_hint": sub.key_hint},
            )  # fmt: skip
