"""Choosing the secret store, and the Vault facade (sync and async)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import keyring
from keyring.backend import KeyringBackend

from aiwallet.domain.errors import VaultError
from aiwallet.logsetup import REDACTOR
from aiwallet.paths import DataDir
from aiwallet.vault.base import Secret, SecretBackend
from aiwallet.vault.keyring_store import KeyringStore, is_secure
from aiwallet.vault.sealed import SealedFileStore

log = logging.getLogger(__name__)

Preference = Literal["auto", "keyring", "sealed-file"]


@dataclass(frozen=True, slots=True)
class VaultStatus:
    kind: str
    description: str
    is_fallback: bool

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "description": self.description, "is_fallback": self.is_fallback}


class Vault:
    """Secrets by name. Every value read is registered with the log redactor."""

    def __init__(self, backend: SecretBackend, *, is_fallback: bool) -> None:
        self.backend = backend
        self.status = VaultStatus(backend.kind, backend.description, is_fallback)

    def __repr__(self) -> str:
        return f"Vault({self.status.kind})"

    def get(self, name: str) -> Secret | None:
        value = self.backend.get(name)
        if value is None:
            return None
        REDACTOR.register(value)
        return Secret(value)

    def set(self, name: str, secret: str) -> None:
        REDACTOR.register(secret)
        self.backend.set(name, secret)

    def delete(self, name: str) -> None:
        self.backend.delete(name)

    def names(self) -> list[str]:
        return self.backend.names()

    # Blocking work (keyring D-Bus calls, the KDF) never runs on an event loop.
    async def aget(self, name: str) -> Secret | None:
        return await asyncio.to_thread(self.get, name)

    async def aset(self, name: str, secret: str) -> None:
        await asyncio.to_thread(self.set, name, secret)

    async def adelete(self, name: str) -> None:
        await asyncio.to_thread(self.delete, name)


def open_vault(
    data_dir: DataDir,
    wallet_id: str,
    *,
    passphrase_provider: Callable[[], str] | None = None,
    prefer: Preference = "auto",
    backend: KeyringBackend | None = None,
) -> Vault:
    """The OS keyring when a secure one exists, else the sealed file."""
    kr = backend or keyring.get_keyring()
    if prefer != "sealed-file":
        if is_secure(kr):
            return Vault(KeyringStore(wallet_id, kr), is_fallback=False)
        if prefer == "keyring":
            raise VaultError(
                "no secure OS keyring is available (found only plaintext or no backend)"
            )
        log.warning("no secure OS keyring; using the passphrase-sealed file")

    def _no_passphrase() -> str:
        raise VaultError(
            "keys are kept in a passphrase-sealed file here (no OS keyring); "
            "a passphrase is needed to open it"
        )

    store = SealedFileStore(data_dir.sealed_vault, passphrase_provider or _no_passphrase)
    return Vault(store, is_fallback=prefer != "sealed-file")
