"""Configured upstream providers (never their keys: those live in the vault)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, delete, insert, select, update

from aiwallet.domain.errors import InvalidInput, NotFound
from aiwallet.store import schema as t
from aiwallet.store.audit import append_audit
from aiwallet.store.db import Database


@dataclass(frozen=True, slots=True)
class ProviderRecord:
    id: int
    name: str
    kind: str
    base_url: str
    secret_ref: str | None
    key_hint: str | None
    created_at: datetime
    updated_at: datetime
    last_test_at: datetime | None
    last_test_ok: bool | None
    options: dict[str, Any] | None = None  # per-kind settings ({"prepaid": true})
    key_set_at: datetime | None = None  # when its key was stored (None: it has none)

    @property
    def prepaid(self) -> bool:
        """An x402 router paid ahead (top-ups), not per request."""
        return bool((self.options or {}).get("prepaid"))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "base_url": self.base_url,
            "key_hint": self.key_hint,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "last_test_at": self.last_test_at.isoformat() if self.last_test_at else None,
            "last_test_ok": self.last_test_ok,
            "options": self.options or {},
            "key_set_at": self.key_set_at.isoformat() if self.key_set_at else None,
        }


def _record(r: RowMapping) -> ProviderRecord:
    return ProviderRecord(**{k: r[k] for k in ProviderRecord.__slots__})


class Providers:
    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self) -> list[ProviderRecord]:
        with self.db.read() as conn:
            rows = conn.execute(select(t.providers).order_by(t.providers.c.name)).mappings()
            return [_record(r) for r in rows]

    def get(self, name: str) -> ProviderRecord:
        with self.db.read() as conn:
            r = (
                conn.execute(select(t.providers).where(t.providers.c.name == name))
                .mappings()
                .first()
            )
        if r is None:
            raise NotFound(f"no provider named {name!r}; see 'aiwallet providers list'")
        return _record(r)

    def find(self, name: str) -> ProviderRecord | None:
        try:
            return self.get(name)
        except NotFound:
            return None

    def upsert(
        self,
        name: str,
        *,
        kind: str,
        base_url: str,
        secret_ref: str | None,
        key_hint: str | None,
        replace: bool,
        actor: str = "user",
        options: dict[str, Any] | None = None,
    ) -> ProviderRecord:
        """Add a provider, or with ``replace`` update an existing one (key rotation)."""
        now = datetime.now(UTC)
        values = {
            "kind": kind,
            "base_url": base_url,
            "secret_ref": secret_ref,
            "key_hint": key_hint,
            "updated_at": now,
            "options": options or None,
            "key_set_at": now if secret_ref else None,
        }
        with self.db.begin() as conn:
            exists = conn.execute(
                select(t.providers.c.id).where(t.providers.c.name == name)
            ).scalar_one_or_none()
            if exists is not None and not replace:
                raise InvalidInput(
                    f"a provider named {name!r} exists; use --replace to rotate its key"
                )
            if exists is None:
                conn.execute(insert(t.providers).values(name=name, created_at=now, **values))
                action = "provider.add"
            else:
                conn.execute(
                    update(t.providers)
                    .where(t.providers.c.id == exists)
                    .values(last_test_at=None, last_test_ok=None, **values)
                )
                action = "provider.rotate"
            # The hint (a few characters) is all of the key that the audit log ever sees.
            append_audit(
                conn,
                actor,
                action,
                f"provider:{name}",
                {"kind": kind, "base_url": base_url, "key_hint": key_hint},
            )
        return self.get(name)

    def remove(self, name: str, *, actor: str = "user") -> ProviderRecord:
        record = self.get(name)
        with self.db.begin() as conn:
            conn.execute(delete(t.providers).where(t.providers.c.id == record.id))
            append_audit(conn, actor, "provider.remove", f"provider:{name}", {})
        return record

    def set_options(self, name: str, options: dict[str, Any], *, actor: str = "user") -> None:
        """Replace a provider's per-kind settings (audited; never a secret: those are in the
        vault)."""
        record = self.get(name)
        with self.db.begin() as conn:
            conn.execute(
                update(t.providers)
                .where(t.providers.c.id == record.id)
                .values(options=options or None, updated_at=datetime.now(UTC))
            )
            append_audit(conn, actor, "provider.options", f"provider:{name}", options)

    def record_test(self, name: str, ok: bool) -> None:
        with self.db.begin() as conn:
            conn.execute(
                update(t.providers)
                .where(t.providers.c.name == name)
                .values(last_test_at=datetime.now(UTC), last_test_ok=ok)
            )
