"""One engine per data dir, and one writer per SQLite ledger: enforced with OS file locks.

An engine that keeps its budget counters in memory (engine/live_budgets.py) must be the only
process reserving on its SQLite ledger, or two of them could each grant the same last dollar.
:func:`hold_engine_locks` takes, without waiting, an exclusive lock on ``engine.lock`` in the
data dir and, when the ledger is a SQLite file elsewhere, on ``<file>.lock`` beside it too
(two data dirs pointed at one SQLite file). ``filelock`` uses ``flock``/``LockFileEx``: the
kernel drops the lock when the process dies, ``kill -9`` included, so a crashed engine never
blocks the next start. PostgreSQL ledgers are shared on purpose (several wallets, one set of
budgets) and need no ledger lock; the database's conditional updates keep them exact.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from filelock import FileLock, Timeout

from aiwallet.domain.errors import WalletError

ENGINE_LOCK = "engine.lock"


class DataDirInUse(WalletError):
    """Another engine (or a top-up holding the ledger) already works on this data."""

    code = "data_dir_in_use"


class EngineLocks:
    """The locks one engine holds; :meth:`release` gives them back (idempotent)."""

    def __init__(self, locks: list[FileLock]) -> None:
        self._locks = locks

    def release(self) -> None:
        while self._locks:
            with contextlib.suppress(OSError):
                self._locks.pop().release(force=True)


def _paths(data_dir: Path, sqlite_file: Path | None) -> list[Path]:
    paths = [data_dir / ENGINE_LOCK]
    if sqlite_file is not None and sqlite_file.parent.resolve() != data_dir.resolve():
        paths.append(sqlite_file.with_name(sqlite_file.name + ".lock"))
    return paths


def hold_engine_locks(data_dir: Path, sqlite_file: Path | None) -> EngineLocks:
    """Take every lock an engine on ``data_dir`` needs, or raise :class:`DataDirInUse`
    (taking none)."""
    taken: list[FileLock] = []
    for path in _paths(data_dir, sqlite_file):
        # not thread-local (taken on one thread, given back on another); never a "soft" lock
        # (a file's existence), which a killed engine would leave behind
        lock = FileLock(
            path, timeout=0, mode=0o600, thread_local=False, fallback_to_soft=False,
            preserve_lock_file=True,
        )  # fmt: skip
        try:
            lock.acquire()
        except Timeout:
            EngineLocks(taken).release()
            what = "data dir" if path.name == ENGINE_LOCK else "SQLite ledger"
            raise DataDirInUse(
                f"another aiwallet engine is already running on this {what} ({path.parent}); "
                "stop it first (or use the one that runs: 'aiwallet status'), or choose another "
                "data dir with --data-dir"
            ) from None
        taken.append(lock)
    return EngineLocks(taken)


def engine_running(data_dir: Path, sqlite_file: Path | None) -> bool:
    """Whether an engine holds ``data_dir``'s locks now (a momentary look)."""
    try:
        hold_engine_locks(data_dir, sqlite_file).release()
    except DataDirInUse:
        return True
    return False
