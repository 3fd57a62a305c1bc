"""Secrets in the OS keyring (Secret Service, macOS Keychain, Windows Credential Locker)."""

from __future__ import annotations

import json

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

from aiwallet.domain.errors import VaultError
from aiwallet.keyringrules import is_secure, leaves

__all__ = ["KeyringStore", "describe_backend", "is_secure"]

_INDEX = "__index__"


def describe_backend(backend: KeyringBackend) -> str:
    names = ", ".join(getattr(leaf, "name", type(leaf).__name__) for leaf in leaves(backend))
    return f"OS keyring ({names})"


class KeyringStore:
    """Entries under service ``aiwallet/<wallet id>``; an index entry lists the names."""

    kind = "keyring"

    def __init__(self, wallet_id: str, backend: KeyringBackend | None = None) -> None:
        self.service = f"aiwallet/{wallet_id}"
        self.backend = backend or keyring.get_keyring()
        self.description = describe_backend(self.backend)

    def _call(self, what: str, fn: object, *args: str) -> object:
        try:
            return fn(*args)  # type: ignore[operator]
        except keyring.errors.KeyringError as exc:
            # Never echo the arguments: one of them may be the secret.
            raise VaultError(
                f"the OS keyring refused to {what} ({type(exc).__name__}); is it unlocked?"
            ) from None

    def get(self, name: str) -> str | None:
        value = self._call("read a secret", self.backend.get_password, self.service, name)
        return value if isinstance(value, str) else None

    def names(self) -> list[str]:
        raw = self.get(_INDEX)
        if not raw:
            return []
        try:
            names = json.loads(raw)
        except ValueError:
            return []
        return sorted(n for n in names if isinstance(n, str))

    def _write_index(self, names: list[str]) -> None:
        self._call(
            "store the index", self.backend.set_password, self.service, _INDEX, json.dumps(names)
        )

    def set(self, name: str, secret: str) -> None:
        if name == _INDEX:
            raise VaultError("that secret name is reserved")
        self._call("store a secret", self.backend.set_password, self.service, name, secret)
        names = self.names()
        if name not in names:
            self._write_index([*names, name])

    def delete(self, name: str) -> None:
        try:
            self.backend.delete_password(self.service, name)
        except keyring.errors.PasswordDeleteError:
            pass
        except keyring.errors.KeyringError as exc:
            raise VaultError(
                f"the OS keyring refused to delete a secret ({type(exc).__name__})"
            ) from None
        self._write_index([n for n in self.names() if n != name])
