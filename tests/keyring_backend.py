"""A keyring backend for the tests, standing in for the OS keyring (none on a headless box).

Selected with ``PYTHON_KEYRING_BACKEND=keyring_backend.TestFileKeyring``; it keeps its
entries in ``$AIWALLET_TEST_KEYRING_FILE``, outside every data dir, so tests can prove a
stored key is absent from the data dir and present only in "the OS keyring".
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

_lock = threading.Lock()


class TestFileKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    @property
    def _path(self) -> Path:
        return Path(os.environ["AIWALLET_TEST_KEYRING_FILE"])

    def _load(self) -> dict[str, str]:
        try:
            return json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}

    def _save(self, data: dict[str, str]) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.write_text(json.dumps(data))

    def get_password(self, service: str, username: str) -> str | None:
        with _lock:
            return self._load().get(f"{service}\0{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        with _lock:
            data = self._load()
            data[f"{service}\0{username}"] = password
            self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        with _lock:
            data = self._load()
            if data.pop(f"{service}\0{username}", None) is None:
                raise PasswordDeleteError("not found")
            self._save(data)
