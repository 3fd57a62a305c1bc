"""The migrations build exactly the tables and columns ``store/schema.py`` declares (a column
added to one and not the other would break on the next write, or silently not be kept)."""

from __future__ import annotations

from sqlalchemy import inspect

from aiwallet.store import schema as t
from aiwallet.store.db import open_database


def test_migrated_sqlite_has_every_declared_table_and_column(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        found = inspect(db.engine)
        tables = set(found.get_table_names()) - {"alembic_version"}
        declared = set(t.metadata.tables)
        assert declared <= tables
        for name, table in t.metadata.tables.items():
            migrated = {c["name"] for c in found.get_columns(name)}
            assert migrated == {c.name for c in table.columns}, name
            nullable = {c["name"]: c["nullable"] for c in found.get_columns(name)}
            for column in table.columns:
                if not column.primary_key:
                    assert nullable[column.name] == column.nullable, f"{name}.{column.name}"
    finally:
        db.dispose()
