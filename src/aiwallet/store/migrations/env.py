"""Alembic environment: runs on the connection that aiwallet.store.db hands in."""

from __future__ import annotations

from alembic import context

from aiwallet.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via aiwallet.store.db.Database.migrate
    raise RuntimeError("run migrations through aiwallet.store.db.Database.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
context.run_migrations()
