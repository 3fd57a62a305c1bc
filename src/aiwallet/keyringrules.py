"""Which keyring backends the wallet trusts with a secret: one rule for the vault's provider
keys and the notebook helper's remembered app keys (which imports it without the vault)."""

from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail

# Backends that do not protect secrets, or do not store them at all.
_INSECURE_MODULES = ("keyrings.alt.file", "keyring.backends.null", "keyring.backends.fail")
_INSECURE_NAMES = ("PlaintextKeyring", "NullKeyring", "Keyring")


def leaves(backend: KeyringBackend) -> list[KeyringBackend]:
    """The backends a (possibly chained) backend stores into."""
    if isinstance(backend, chainer.ChainerBackend):
        return list(backend.backends)
    return [backend]


def is_secure(backend: KeyringBackend) -> bool:
    """True for a backend that really stores secrets and is not plaintext on disk."""
    found = leaves(backend)
    if not found:
        return False
    for leaf in found:
        cls = type(leaf)
        if isinstance(leaf, fail.Keyring):
            return False
        if cls.__module__.startswith(_INSECURE_MODULES) and cls.__name__ in _INSECURE_NAMES:
            return False
        if "plaintext" in cls.__name__.lower():
            return False
        try:
            if float(leaf.priority) <= 0:
                return False
        except Exception:  # a backend whose priority raises is not viable
            return False
    return True
