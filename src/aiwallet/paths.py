"""Where a wallet keeps its files.

Resolution order: an explicit ``--data-dir``, then ``AIWALLET_HOME``, then the platform's user
data dir (``~/.local/share/aiwallet`` on Linux). The directory is created 0700 so that other
users on the machine cannot read the database, the admin token or the sealed vault.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "aiwallet"
ENV_HOME = "AIWALLET_HOME"
ENV_DATABASE_URL = "AIWALLET_DATABASE_URL"


@dataclass(frozen=True, slots=True)
class DataDir:
    """The files of one wallet."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "wallet.sqlite3"

    @property
    def sealed_vault(self) -> Path:
        return self.root / "vault.sealed"

    @property
    def catalog(self) -> Path:
        """A user-refreshed pricing catalog (models.dev api.json); absent means the shipped one."""
        return self.root / "catalog" / "models.dev.json"

    @property
    def openrouter_models(self) -> Path:
        """OpenRouter's own price list (``GET /api/v1/models``), cached; absent: not fetched."""
        return self.root / "catalog" / "openrouter-models.json"

    @property
    def admin_token(self) -> Path:
        """Written by a running engine: the admin API's key, new at every start."""
        return self.root / "admin.token"

    @property
    def engine_file(self) -> Path:
        """Written by a running engine: its address, pid, process start time and instance id."""
        return self.root / "engine.json"

    @property
    def wallet_id_file(self) -> Path:
        """This data dir's random id, made once: written on the reservations its engine takes
        (a start recovers only its own on a PostgreSQL ledger several wallets share)."""
        return self.root / "wallet.id"

    def wallet_id(self) -> str:
        """The id in :attr:`wallet_id_file`, made on first use (blocking: file I/O)."""
        path = self.wallet_id_file
        try:
            found = path.read_text().strip()
        except FileNotFoundError:
            found = ""
        if len(found) == 32 and all(c in "0123456789abcdef" for c in found):
            return found
        made = os.urandom(16).hex()
        write_private(path, made + "\n")
        return made

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> DataDir:
        """Create the directory (0700) if needed and return self."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.name == "posix":
            self.root.chmod(0o700)
        return self


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by this user only (0600): a temporary
    file beside it, flushed to disk, then renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> DataDir:
    """The data dir chosen by flag, environment or platform default (not yet created)."""
    if explicit:
        return DataDir(Path(explicit).expanduser().resolve())
    env = os.environ.get(ENV_HOME)
    if env:
        return DataDir(Path(env).expanduser().resolve())
    return DataDir(Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)))


def database_url(data_dir: DataDir) -> str:
    """``AIWALLET_DATABASE_URL`` when set (e.g. PostgreSQL), else SQLite in the data dir."""
    env = os.environ.get(ENV_DATABASE_URL)
    if env:
        return env
    return f"sqlite:///{data_dir.database}"
