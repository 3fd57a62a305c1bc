"""Shared fixtures: isolated data dirs, a real keyring backend, SQLite and PostgreSQL, the
fake upstream."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from fakeupstream import FakeUpstream
from pgserver import PgServer, start_pg_server

# After the session, fail it if a provider key landed in any file (tests/leakscan.py).
pytest_plugins = ["leakscan", "chainkit.fixtures"]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test touches the real user data dir, keyring or database settings."""
    monkeypatch.setenv("AIWALLET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AIWALLET_DATABASE_URL", raising=False)
    monkeypatch.delenv("AIWALLET_VAULT_PASSPHRASE", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring_backend.TestFileKeyring")
    monkeypatch.setenv("AIWALLET_TEST_KEYRING_FILE", str(tmp_path / "os-keyring" / "keyring.json"))
    import keyring.core

    keyring.core._keyring_backend = None  # re-read PYTHON_KEYRING_BACKEND
    yield
    keyring.core._keyring_backend = None


@pytest.fixture(scope="session")
def pg_server():
    server = start_pg_server()
    if isinstance(server, str):
        yield server
        return
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """A fresh database URL on each backend (PostgreSQL skipped, visibly, when absent)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wallet.sqlite3'}"
    server = request.getfixturevalue("pg_server")
    if isinstance(server, str):
        if os.environ.get("AIWALLET_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here: {server}")
        pytest.skip(server)
    assert isinstance(server, PgServer)
    return server.create_database()


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    """The in-process fake upstream (tests/fakeupstream), one for the whole session.

    It is shared by every test that asks for it: a test (or its rig) that reads back what was
    served, or scripts it, calls ``fake.reset()`` first. The leak scan tees its record
    (tests/leakscan.py tees any fixture that yields a ``FakeUpstream``)."""
    f = FakeUpstream()
    f.start_in_thread()
    yield f
    f.stop()
