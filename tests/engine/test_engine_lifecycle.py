"""The engine's shape: it uses the wallet only through its port, changes it makes apply to
itself without HTTP, an approval is one transaction, and a failed start leaves nothing behind.
"""

from __future__ import annotations

import ast
import os
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from test_crash import SRC, TESTS, serve_args

import aiwallet.engine
from aiwallet.engine.client import AdminAuth
from aiwallet.engine.writer import BatchWriter
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from aiwallet.store.writer_lock import DataDirInUse
from waiting import wait_until

ENGINE_DIR = Path(aiwallet.engine.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_engine_module_imports_the_facade_or_the_gui():
    for path in sorted(ENGINE_DIR.glob("*.py")):
        found = {
            m for m in _imports(path)
            if m == "aiwallet.service" or m.startswith(("aiwallet.gui", "aiwallet.cli"))
            or m == "PySide6" or m.startswith("PySide6.")
        }  # fmt: skip
        assert found == set(), f"{path.name} imports {found}"


def test_route_modules_use_typed_app_state_not_private_attributes():
    for name in ("admin.py", "wallet_api.py"):
        text = (ENGINE_DIR / name).read_text()
        assert "._proxy" not in text and "engine._" not in text and "engine.wallet" not in text


def test_nothing_starts_in_a_constructor(rig):
    before = {t.ident for t in threading.enumerate()}
    engine = rig.wallet.new_engine(port=0)
    writer = BatchWriter(rig.wallet.db, rig.wallet.budgets.hot)
    assert {t.ident for t in threading.enumerate()} == before
    assert engine.proxy is None and engine.loop is None
    writer.close()  # closing a writer that never started is a no-op


def test_failed_starts_on_a_busy_port_leave_no_thread_or_session(rig, tmp_path):
    other = Wallet.open(DataDir(tmp_path / "other"))  # its own data dir: only the port clashes
    try:
        busy = rig.engine.port

        def fail_once() -> None:
            engine = other.new_engine(port=busy)
            with pytest.raises(OSError):
                engine.start()
            assert engine._session is None and engine._runner is None
            assert engine._thread is None

        fail_once()  # the first may start lazy library threads; count after it
        baseline = sorted(t.name for t in threading.enumerate())
        for _ in range(10):
            fail_once()
        assert sorted(t.name for t in threading.enumerate()) == baseline
        # the port's data dir lock was given back each time: an engine starts there now
        engine = other.new_engine(port=0)
        engine.start()
        engine.stop()
        assert httpx.get(rig.url + "/healthz").json() == {"ok": True}
    finally:
        other.close()


def test_a_second_engine_on_the_same_sqlite_data_dir_is_refused(rig):
    """One writer per SQLite ledger (its counters live in the engine's memory): a second
    engine on the data dir, on any port, is refused before it touches anything."""
    assert rig.engine.state.live is not None  # the running one keeps its counters in memory
    other = Wallet.open(rig.data_dir)
    try:
        engine_file = rig.data_dir.engine_file.read_text()
        for _ in range(3):
            engine = other.new_engine(port=0)
            with pytest.raises(DataDirInUse) as refused:
                engine.start()
            assert refused.value.code == "data_dir_in_use"
            assert "already running on this data dir" in str(refused.value)
            assert engine._thread is None and engine._runner is None
        # the running engine is untouched: its engine.json (the CLI's way to it) is the same
        assert rig.data_dir.engine_file.read_text() == engine_file
        assert httpx.get(rig.url + "/healthz").json() == {"ok": True}
    finally:
        other.close()


def test_aiwallet_serve_on_a_data_dir_in_use_exits_with_the_reason(rig):
    proc = subprocess.run(
        serve_args(rig.data_dir),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{TESTS}"},
    )
    assert proc.returncode != 0
    assert "another aiwallet engine is already running on this data dir" in proc.stderr
    assert httpx.get(rig.url + "/healthz").json() == {"ok": True}


def test_two_data_dirs_on_one_sqlite_file_cannot_both_run(rig, tmp_path, monkeypatch):
    """A SQLite ledger outside the data dir is locked beside its file: a second data dir
    pointed at the same file is refused too."""
    shared = tmp_path / "shared.sqlite3"
    monkeypatch.setenv("AIWALLET_DATABASE_URL", f"sqlite:///{shared}")
    first, second = Wallet.open(DataDir(tmp_path / "a")), Wallet.open(DataDir(tmp_path / "b"))
    try:
        running = first.new_engine(port=0)
        running.start()
        try:
            with pytest.raises(DataDirInUse, match="SQLite ledger"):
                second.new_engine(port=0).start()
        finally:
            running.stop()
        again = second.new_engine(port=0)  # the lock went with the first engine
        again.start()
        again.stop()
    finally:
        first.close()
        second.close()


def _approve_once(rig):
    resp = httpx.post(
        rig.url + "/wallet/v1/connect",
        json={"app_name": "notebook", "purpose": "tests", "budget": "1/day"},
    )
    req_id = resp.json()["id"]
    token = rig.data_dir.admin_token.read_text().strip()
    return httpx.post(
        rig.url + f"/admin/v1/consent/{req_id}/approve", json={}, auth=AdminAuth(token)
    )


def test_an_approval_reloads_the_engine_in_process_once(rig, monkeypatch):
    import aiwallet.engine.client as client

    def no_http_to_itself(*a, **kw):
        raise AssertionError("the engine called its own admin API")

    monkeypatch.setattr(client, "notify_reload", no_http_to_itself)
    reloads: list[dict] = []
    unsubscribe = rig.engine.events.subscribe(
        lambda name, payload: reloads.append(payload) if name == "engine.reloaded" else None
    )
    try:
        resp = _approve_once(rig)
        assert resp.status_code == 200, resp.text
        wait_until(lambda: reloads, what="the engine reloaded")
    finally:
        unsubscribe()
    assert len(reloads) == 1
    app = rig.wallet.apps.get("notebook")
    assert rig.wallet.budgets.app_budget(app.id) is not None
    rules = [r for r in rig.wallet.consent_rules.list() if r.app_id == app.id]
    assert [(r.subject_kind, r.subject, r.decision) for r in rules] == [
        ("app", "notebook", "allow")
    ]


def test_an_approval_is_one_transaction(rig, monkeypatch):
    """If any part of an approval fails (here: the remembered rule), nothing of it stays."""
    rules = rig.wallet.consent_rules

    def refuse(*a, **kw):
        raise RuntimeError("the disk filled up")

    monkeypatch.setattr(rules, "add_in", refuse)
    resp = _approve_once(rig)
    assert resp.status_code == 500
    assert [a.name for a in rig.wallet.apps.list()] == []
    actions = {e.action for e in rig.wallet.audit.entries()}
    assert actions.isdisjoint({"app.create", "budget.set", "consent.allow"})
    assert rig.wallet.verify_audit().ok


def test_a_change_made_through_the_wallet_reaches_its_own_engine_without_http(rig, monkeypatch):
    import aiwallet.engine.client as client

    def no_http(*a, **kw):
        raise AssertionError("the wallet called its own engine over HTTP")

    monkeypatch.setattr(client, "notify_reload", no_http)
    generation = rig.engine.state.generation
    rig.wallet.set_paused(True)
    assert rig.engine.state.paused is True and rig.engine.state.generation == generation + 1
    rig.wallet.set_paused(False)
    assert rig.engine.state.paused is False


def test_a_serving_process_sets_its_collector_once(rig):
    """Once an engine is up, what start-up built is frozen out of the collector's walks and
    gen 0 runs every GEN0_THRESHOLD allocations; later engines in the process change nothing."""
    import gc

    from aiwallet.engine import heap

    assert gc.get_threshold()[0] == heap.GEN0_THRESHOLD
    assert gc.get_freeze_count() > 0
    assert heap.tune_for_serving() is False
