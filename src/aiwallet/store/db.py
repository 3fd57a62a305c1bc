"""Opening the database: engine set-up per backend, transactions, migrations.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the
process being killed (``kill -9``), which is what the ledger promises; only an OS crash or
power loss can lose the last commits. Every write transaction starts with ``BEGIN IMMEDIATE``
so concurrent writers queue on the lock instead of failing half-way with "database is
locked". PostgreSQL uses READ COMMITTED with row locks taken by conditional UPDATEs.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.pool import NullPool

from aiwallet.domain.errors import WalletError
from aiwallet.store import counter_events
from aiwallet.store.counter_events import CounterEvent

_migrate_lock = threading.Lock()


class StoreError(WalletError):
    code = "store_error"


def _sqlite_engine(url: str) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:":
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not p.exists():
            fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
    engine = create_engine(
        url,
        connect_args={"timeout": 30, "check_same_thread": False, "isolation_level": None},
        pool_size=8,
        max_overflow=32,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Reads begin deferred (WAL readers never wait for the writer); writes take the lock.
        read_only = conn.get_execution_options().get("aiwallet_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: str) -> Engine:
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return create_engine(u, pool_size=8, max_overflow=32, pool_pre_ping=True)


WRITE_LOCK = 8403  # PostgreSQL advisory lock of every write transaction (8402: migrations')


class Database:
    """One database: an engine and its dialect facts."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        if engine is not None:
            self.engine = engine
        elif url.startswith("sqlite"):
            self.engine = _sqlite_engine(url)
        elif url.startswith("postgres"):
            self.engine = _postgres_engine(url)
        else:
            raise StoreError(
                f"unsupported database URL scheme in {make_url(url).drivername!r}; "
                "use sqlite:///path or postgresql+psycopg://..."
            )
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.is_postgres = self.engine.dialect.name == "postgresql"
        # told of every committed budget counter change (store/counter_events.py): set by an
        # engine that keeps its counters in memory; called on the committing thread
        self.counter_listener: Callable[[int, list[CounterEvent]], None] | None = None
        self.counter_epoch = 0  # the number of the last committed batch of counter events

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database's file (None: PostgreSQL, or SQLite in memory)."""
        if not self.is_sqlite:
            return None
        path = make_url(self.url).database
        return Path(path).resolve() if path and path != ":memory:" else None

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), committed on success. Budget
        counter changes made in it reach :attr:`counter_listener` after the commit."""
        listener = self.counter_listener
        with self.engine.begin() as conn:
            self.take_write_lock(conn)
            if listener is None:
                yield conn
                return
            counter_events.collect(conn)
            try:
                yield conn
            finally:
                epoch, events = self.stamp_counter_events(conn)
        if events:  # committed: the block and the commit both succeeded
            listener(epoch, events)

    def take_write_lock(self, conn: Connection) -> None:
        """First in every write transaction. SQLite: nothing to do (BEGIN IMMEDIATE took its
        lock). PostgreSQL, which several wallets' engines and CLIs may share: writes take turns
        on a transaction-scoped advisory lock, so that two transactions locking budget counter
        rows in different orders (a write batch holds many) can never deadlock."""
        if self.is_postgres:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")

    def stamp_counter_events(self, conn: Connection) -> tuple[int, list[CounterEvent]]:
        """The counter events noted in ``conn``'s transaction, numbered while it still holds
        the write lock (SQLite has one writer at a time): a reader of the counters in a write
        transaction knows which numbers its read already includes."""
        events = counter_events.take(conn)
        if events:
            self.counter_epoch += 1
        return self.counter_epoch, events

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (on SQLite a deferred transaction: it never blocks writers)."""
        with self.engine.connect() as conn:
            yield conn.execution_options(aiwallet_read_only=True)

    def describe(self) -> str:
        """The URL without a password, for people."""
        return make_url(self.url).render_as_string(hide_password=True)

    def migrate(self) -> None:
        """Bring the schema to the newest migration (safe to call on every start)."""
        script_dir = resources.files("aiwallet.store").joinpath("migrations")
        cfg = Config()
        cfg.set_main_option("script_location", str(script_dir))
        cfg.attributes["connection_engine"] = self.engine
        with _migrate_lock:
            if self.is_postgres:
                # Two processes starting at once: one migrates, the other waits for it.
                with self.engine.begin() as conn:
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(8402)")
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
            else:
                with self.engine.begin() as conn:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str, *, migrate: bool = True) -> Database:
    """Open (and by default migrate) the database at ``url``."""
    db = Database(url)
    if migrate:
        db.migrate()
    return db


def null_pool_database(url: str) -> Database:
    """A Database without connection pooling (for short-lived helper processes)."""
    if url.startswith("sqlite"):
        return Database(url)
    return Database(url, engine=create_engine(_pg_url(url), poolclass=NullPool))


def _pg_url(url: str) -> str:
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)
