"""Apps (local programs with a key) and their grants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, insert, select, update

from aiwallet.domain.errors import InvalidInput, NotFound
from aiwallet.store import schema as t
from aiwallet.store.audit import append_audit
from aiwallet.store.db import Database


@dataclass(frozen=True, slots=True)
class AppRecord:
    id: int
    name: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None
    paused: bool
    last_used_at: datetime | None
    notes: str | None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    concurrency_limit: int | None = None
    ask_over_nano: int | None = None  # ask before a request whose worst case is over this
    downgrade: bool = False  # a cheaper model of a route when the budget cannot pay (0009)

    @property
    def active(self) -> bool:
        return self.revoked_at is None and not self.paused


def _app(r: RowMapping) -> AppRecord:
    return AppRecord(**{k: r[k] for k in AppRecord.__slots__})


@dataclass(frozen=True, slots=True)
class GrantRecord:
    id: int
    app_id: int
    scopes: tuple[str, ...]
    budget_spec: str | None
    issued_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    receipt: dict[str, Any] | None

    def active_at(self, at: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or at < self.expires_at)


def _grant(r: RowMapping) -> GrantRecord:
    return GrantRecord(
        id=int(r["id"]),
        app_id=int(r["app_id"]),
        scopes=tuple(r["scopes"]),
        budget_spec=r["budget_spec"],
        issued_at=r["issued_at"],
        expires_at=r["expires_at"],
        revoked_at=r["revoked_at"],
        receipt=r["receipt"],
    )


class Apps:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        name: str,
        *,
        key_hash: str,
        key_prefix: str,
        scopes: list[str],
        budget_spec: str | None,
        expires_at: datetime | None = None,
        notes: str | None = None,
        receipt: dict[str, Any] | None = None,
        actor: str = "user",
    ) -> tuple[AppRecord, GrantRecord]:
        with self.db.begin() as conn:
            app_id = self.create_in(
                conn, name, key_hash=key_hash, key_prefix=key_prefix, scopes=scopes,
                budget_spec=budget_spec, expires_at=expires_at, notes=notes, receipt=receipt,
                actor=actor,
            )  # fmt: skip
        grant = self.grant(app_id)
        assert grant is not None
        return self.get(name), grant

    def create_in(
        self,
        conn: Connection,
        name: str,
        *,
        key_hash: str,
        key_prefix: str,
        scopes: list[str],
        budget_spec: str | None,
        expires_at: datetime | None = None,
        notes: str | None = None,
        receipt: dict[str, Any] | None = None,
        actor: str = "user",
    ) -> int:
        """:meth:`create` inside the caller's transaction; returns the new app's id."""
        now = datetime.now(UTC)
        if conn.execute(select(t.apps.c.id).where(t.apps.c.name == name)).first():
            raise InvalidInput(f"an app named {name!r} already exists; pick another name")
        pk = conn.execute(
            insert(t.apps).values(
                name=name,
                key_hash=key_hash,
                key_prefix=key_prefix,
                created_at=now,
                paused=False,
                notes=notes,
            )
        ).inserted_primary_key
        assert pk is not None
        app_id = int(pk[0])
        conn.execute(
            insert(t.grants).values(
                app_id=app_id,
                scopes=scopes,
                budget_spec=budget_spec,
                issued_at=now,
                expires_at=expires_at,
                receipt=receipt,
            )
        )
        append_audit(
            conn,
            actor,
            "app.create",
            f"app:{name}",
            {"scopes": scopes, "budget": budget_spec, "key_prefix": key_prefix},
        )
        return app_id

    def names_in(self, conn: Connection) -> set[str]:
        return set(conn.execute(select(t.apps.c.name)).scalars())

    def list(self) -> list[AppRecord]:
        with self.db.read() as conn:
            return [
                _app(r) for r in conn.execute(select(t.apps).order_by(t.apps.c.name)).mappings()
            ]

    def get(self, name: str) -> AppRecord:
        with self.db.read() as conn:
            r = conn.execute(select(t.apps).where(t.apps.c.name == name)).mappings().first()
        if r is None:
            raise NotFound(f"no app named {name!r}; see 'aiwallet apps list'")
        return _app(r)

    def by_id(self, app_id: int) -> AppRecord | None:
        with self.db.read() as conn:
            r = conn.execute(select(t.apps).where(t.apps.c.id == app_id)).mappings().first()
        return None if r is None else _app(r)

    def by_key_hash(self, key_hash: str) -> AppRecord | None:
        with self.db.read() as conn:
            r = conn.execute(select(t.apps).where(t.apps.c.key_hash == key_hash)).mappings().first()
        return None if r is None else _app(r)

    def grant(self, app_id: int) -> GrantRecord | None:
        """The app's newest grant (active or not)."""
        with self.db.read() as conn:
            r = (
                conn.execute(
                    select(t.grants)
                    .where(t.grants.c.app_id == app_id)
                    .order_by(t.grants.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return None if r is None else _grant(r)

    def revoke(self, name: str, *, actor: str = "user") -> AppRecord:
        app = self.get(name)
        now = datetime.now(UTC)
        with self.db.begin() as conn:
            conn.execute(update(t.apps).where(t.apps.c.id == app.id).values(revoked_at=now))
            conn.execute(
                update(t.grants)
                .where(t.grants.c.app_id == app.id, t.grants.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            append_audit(conn, actor, "app.revoke", f"app:{name}", {})
        return self.get(name)

    def remove(self, name: str, *, actor: str = "user") -> AppRecord:
        """Delete an app with its grants, budget and per-app provider keys' rows (its spend
        and request rows stay, no longer attributed to it; the audit log keeps its name)."""
        app = self.get(name)
        with self.db.begin() as conn:
            conn.execute(delete(t.apps).where(t.apps.c.id == app.id))
            append_audit(conn, actor, "app.remove", f"app:{name}", {"app_id": app.id})
        return app

    def set_paused(self, name: str, paused: bool, *, actor: str = "user") -> AppRecord:
        app = self.get(name)
        with self.db.begin() as conn:
            conn.execute(update(t.apps).where(t.apps.c.id == app.id).values(paused=paused))
            append_audit(conn, actor, "app.pause" if paused else "app.resume", f"app:{name}", {})
        return self.get(name)

    def set_limits(
        self,
        name: str,
        *,
        rpm: int | None,
        tpm: int | None,
        concurrency: int | None,
        actor: str = "user",
    ) -> AppRecord:
        """Rate limits of one app (None removes a limit)."""
        for label, value in (("rpm", rpm), ("tpm", tpm), ("concurrency", concurrency)):
            if value is not None and value < 1:
                raise InvalidInput(f"a {label} limit must be at least 1")
        app = self.get(name)
        values = {"rpm_limit": rpm, "tpm_limit": tpm, "concurrency_limit": concurrency}
        with self.db.begin() as conn:
            conn.execute(update(t.apps).where(t.apps.c.id == app.id).values(**values))
            append_audit(conn, actor, "app.limits", f"app:{name}", values)
        return self.get(name)

    def set_downgrade(self, name: str, on: bool, *, actor: str = "user") -> AppRecord:
        """Let the wallet serve this app a cheaper model of a route when its budget cannot
        pay for the model asked (and say so in a header), instead of refusing."""
        app = self.get(name)
        with self.db.begin() as conn:
            conn.execute(update(t.apps).where(t.apps.c.id == app.id).values(downgrade=on))
            append_audit(conn, actor, "app.downgrade", f"app:{name}", {"downgrade": on})
        return self.get(name)

    def set_ask_over(self, name: str, nano: int | None, *, actor: str = "user") -> AppRecord:
        """Ask the user before serving any single request of this app whose worst case is
        over ``nano`` (None: only the wallet-wide threshold applies)."""
        if nano is not None and nano <= 0:
            raise InvalidInput("the amount to ask over must be above $0")
        app = self.get(name)
        with self.db.begin() as conn:
            conn.execute(update(t.apps).where(t.apps.c.id == app.id).values(ask_over_nano=nano))
            append_audit(conn, actor, "app.ask_over", f"app:{name}", {"ask_over_nano": nano})
        return self.get(name)
