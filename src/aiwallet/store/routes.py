"""Routes (named fallback chains) and prompt templates, as the user stored them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from aiwallet.domain.errors import InvalidInput, NotFound
from aiwallet.store import schema as t
from aiwallet.store.audit import append_audit
from aiwallet.store.db import Database


@dataclass(frozen=True, slots=True)
class RouteRecord:
    name: str
    targets: tuple[str, ...]
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "targets": list(self.targets),
            "updated_at": self.updated_at.isoformat(),
        }


class Routes:
    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self) -> list[RouteRecord]:
        with self.db.read() as conn:
            rows = conn.execute(select(t.routes).order_by(t.routes.c.name)).mappings()
            return [RouteRecord(r["name"], tuple(r["targets"]), r["updated_at"]) for r in rows]

    def put(self, name: str, targets: Sequence[str], *, replace: bool, actor: str = "user") -> None:
        now = datetime.now(UTC)
        with self.db.begin() as conn:
            exists = conn.execute(
                select(t.routes.c.id).where(t.routes.c.name == name)
            ).scalar_one_or_none()
            if exists is not None and not replace:
                raise InvalidInput(f"a route named {name!r} exists; use --replace to change it")
            if exists is None:
                conn.execute(
                    insert(t.routes).values(
                        name=name, targets=list(targets), created_at=now, updated_at=now
                    )
                )
            else:
                conn.execute(
                    update(t.routes)
                    .where(t.routes.c.id == exists)
                    .values(targets=list(targets), updated_at=now)
                )
            append_audit(conn, actor, "route.set", f"route:{name}", {"targets": list(targets)})

    def remove(self, name: str, *, actor: str = "user") -> None:
        with self.db.begin() as conn:
            gone = conn.execute(delete(t.routes).where(t.routes.c.name == name)).rowcount
            if not gone:
                raise NotFound(f"no route named {name!r}; see 'aiwallet routes list'")
            append_audit(conn, actor, "route.remove", f"route:{name}", {})


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    name: str
    version: int
    messages: tuple[dict[str, str], ...]
    variables: tuple[str, ...]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "messages": list(self.messages),
            "variables": list(self.variables),
            "created_at": self.created_at.isoformat(),
        }


def _template(r: Any) -> TemplateRecord:
    return TemplateRecord(
        r["name"], int(r["version"]), tuple(r["messages"]), tuple(r["variables"]), r["created_at"]
    )


class Templates:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        name: str,
        messages: Sequence[dict[str, str]],
        variables: Sequence[str],
        *,
        actor: str = "user",
    ) -> TemplateRecord:
        """A new version of template ``name`` (1 for a new name)."""
        c = t.prompt_templates.c
        with self.db.begin() as conn:
            last = conn.execute(select(func.max(c.version)).where(c.name == name)).scalar()
            version = int(last or 0) + 1
            conn.execute(
                insert(t.prompt_templates).values(
                    name=name, version=version, messages=list(messages), variables=list(variables),
                    created_at=datetime.now(UTC),
                )
            )  # fmt: skip
            append_audit(
                conn, actor, "template.add", f"template:{name}",
                {"version": version, "variables": list(variables)},
            )  # fmt: skip
        return self.get(name, version)

    def get(self, name: str, version: int | None = None) -> TemplateRecord:
        """Version ``version`` of ``name``, or its latest."""
        c = t.prompt_templates.c
        q = select(t.prompt_templates).where(c.name == name)
        q = q.where(c.version == version) if version is not None else q.order_by(c.version.desc())
        with self.db.read() as conn:
            r = conn.execute(q.limit(1)).mappings().first()
        if r is None:
            which = f" version {version}" if version is not None else ""
            raise NotFound(f"no prompt template {name!r}{which}; see 'aiwallet prompts list'")
        return _template(r)

    def list(self) -> list[TemplateRecord]:
        c = t.prompt_templates.c
        with self.db.read() as conn:
            rows = conn.execute(select(t.prompt_templates).order_by(c.name, c.version)).mappings()
            return [_template(r) for r in rows]

    def remove(self, name: str, version: int | None = None, *, actor: str = "user") -> int:
        c = t.prompt_templates.c
        q = delete(t.prompt_templates).where(c.name == name)
        if version is not None:
            q = q.where(c.version == version)
        with self.db.begin() as conn:
            gone = conn.execute(q).rowcount
            if not gone:
                raise NotFound(f"no prompt template {name!r} to remove")
            append_audit(conn, actor, "template.remove", f"template:{name}", {"version": version})
        return int(gone)
