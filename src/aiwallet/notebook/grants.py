"""Grants remembered per notebook: the key in the OS keyring, the rest in the data dir.

``<data dir>/notebooks.json`` (0600) holds only what is not secret: the notebook's path, the
app's name, what was granted and until when, the key's display prefix. The key itself goes
to the OS keyring (service ``aiwallet-notebook/<data dir hash>``, one entry per notebook),
the same store the wallet keeps provider keys in. Where no secure keyring exists (plaintext,
null or failing backends are refused, as the wallet's vault refuses them) nothing is
remembered and the notebook asks again in a new kernel.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

from aiwallet.keyringrules import is_secure

FILE_NAME = "notebooks.json"


@dataclass(frozen=True, slots=True)
class Remembered:
    notebook: str
    app: str
    models: list[str]
    budget: str | None
    expires_at: str | None  # ISO 8601, or None: until revoked
    granted_at: str
    key_prefix: str
    asked: dict[str, Any]  # what connect() asked for: a different ask asks the wallet again

    def expired(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        return datetime.fromisoformat(self.expires_at) <= (now or datetime.now(UTC))


class GrantStore:
    """The grants remembered for the notebooks of the wallet in ``root``."""

    def __init__(self, root: Path, backend: KeyringBackend | None = None) -> None:
        self.root = root
        self.path = root / FILE_NAME
        self.service = "aiwallet-notebook/" + hashlib.sha256(str(root).encode()).hexdigest()[:16]
        self._backend = backend

    @property
    def backend(self) -> KeyringBackend:
        return self._backend or keyring.get_keyring()

    @property
    def can_remember(self) -> bool:
        return is_secure(self.backend)

    # -- the metadata file --------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        grants = data.get("grants") if isinstance(data, dict) else None
        return grants if isinstance(grants, dict) else {}

    def _save(self, grants: dict[str, dict[str, Any]]) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".notebooks-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump({"version": 1, "grants": grants}, fh, indent=1, sort_keys=True)
            if os.name == "posix":
                Path(tmp).chmod(0o600)
            Path(tmp).replace(self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
            raise

    # -- remembered grants --------------------------------------------------------------------
    def get(self, notebook: str) -> tuple[Remembered, str] | None:
        """The grant remembered for ``notebook`` and its key; None when there is none (or its
        key is gone from the keyring)."""
        entry = self._load().get(notebook)
        if entry is None:
            return None
        try:
            meta = Remembered(**entry)
            key = self.backend.get_password(self.service, notebook)
        except (TypeError, keyring.errors.KeyringError):
            return None
        if not key:
            return None
        return meta, key

    def put(self, meta: Remembered, key: str) -> bool:
        """Remember ``meta`` with its ``key``; False (nothing kept) without a secure keyring."""
        if not self.can_remember:
            return False
        try:
            self.backend.set_password(self.service, meta.notebook, key)
        except keyring.errors.KeyringError:
            return False
        grants = self._load()
        grants[meta.notebook] = asdict(meta)
        self._save(grants)
        return True

    def forget(self, notebook: str) -> bool:
        """Forget ``notebook``'s grant (key and metadata); True when there was one."""
        grants = self._load()
        had = grants.pop(notebook, None) is not None
        if had:
            self._save(grants)
        with contextlib.suppress(keyring.errors.KeyringError):
            self.backend.delete_password(self.service, notebook)
        return had

    def notebooks(self) -> list[str]:
        return sorted(self._load())
