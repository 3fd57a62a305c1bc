"""Provider secrets: the OS keyring, or a passphrase-sealed file where none exists."""

from aiwallet.vault.base import Secret, SecretBackend, key_hint
from aiwallet.vault.select import Vault, open_vault

__all__ = ["Secret", "SecretBackend", "Vault", "key_hint", "open_vault"]
