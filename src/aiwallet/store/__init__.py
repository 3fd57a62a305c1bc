"""Persistence: SQLAlchemy 2.x Core tables, Alembic migrations and repositories.

The only part of aiwallet that writes SQL. SQLite (WAL) by default, PostgreSQL by URL.
"""
