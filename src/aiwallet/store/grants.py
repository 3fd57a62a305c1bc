"""Issuing an app: its key, its signed grant, its budget and (optionally) the remembered
consent rule that lets its program back in, all in one transaction.

The one place an app comes to be, whether the user adds it (``aiwallet apps add``, the
desktop app) or approves a consent request in the engine.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import nacl.signing

from aiwallet.domain.appkeys import hash_app_key, key_prefix, new_app_key
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import BudgetSpec
from aiwallet.domain.receipts import sign_receipt
from aiwallet.store.apps import AppRecord, Apps, GrantRecord
from aiwallet.store.budgets import Budgets
from aiwallet.store.consent import ConsentRules
from aiwallet.store.db import Database

MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class Remember:
    """The consent rule to write with the app: ``subject_kind`` ``program`` (a program and its
    OS user) or ``app`` (a name)."""

    subject_kind: str
    subject: str


@dataclass(frozen=True, slots=True)
class IssuedApp:
    app: AppRecord
    grant: GrantRecord
    key: str  # shown once, stored only hashed


def unique_name(wanted: str, taken: set[str]) -> str:
    """``wanted``, or ``wanted (2)``, ``(3)``... when an app of that name exists."""
    wanted = wanted.strip()[:90] or "app"
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted} ({n})" in taken:
        n += 1
    return f"{wanted} ({n})"


def issue_app(
    db: Database,
    apps: Apps,
    budgets: Budgets,
    rules: ConsentRules,
    *,
    name: str,
    budget: BudgetSpec | None,
    models: list[str] | None,
    expires_at: datetime | None,
    signing_key: nacl.signing.SigningKey,
    notes: str | None = None,
    make_unique: bool = False,
    remember: Remember | None = None,
    actor: str = "user",
) -> IssuedApp:
    """A new app with its grant (receipt signed with ``signing_key``), its budget and the
    ``remember`` rule: all of them committed together, or none."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"an app name is 1 to {MAX_NAME} characters")
    scopes = [m.strip() for m in (models or ["*"]) if m.strip()]
    if not scopes:
        raise InvalidInput("a grant needs at least one model or pattern (for example *)")
    key = new_app_key()
    with db.begin() as conn:
        if make_unique:
            name = unique_name(name, apps.names_in(conn))
        receipt = sign_receipt(
            {
                "receipt_id": str(uuid.uuid4()),
                "app": name,
                "scopes": scopes,
                "budget": str(budget) if budget else None,
                "period": budget.period.value if budget else None,
                "issued_at": datetime.now(UTC).isoformat(),
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
            signing_key,
        )
        app_id = apps.create_in(
            conn, name, key_hash=hash_app_key(key), key_prefix=key_prefix(key), scopes=scopes,
            budget_spec=str(budget) if budget else None, expires_at=expires_at, notes=notes,
            receipt=receipt, actor=actor,
        )  # fmt: skip
        if budget is not None:
            budgets.set_budget_in(conn, budget, app_id=app_id, actor=actor)
        if remember is not None:
            rules.add_in(
                conn, remember.subject_kind, remember.subject, "allow", app_id=app_id,
                expires_at=expires_at, actor=actor,
            )  # fmt: skip
    app = apps.by_id(app_id)
    grant = apps.grant(app_id)
    assert app is not None and grant is not None
    return IssuedApp(app, grant, key)
