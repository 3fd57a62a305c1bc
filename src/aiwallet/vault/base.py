"""The backend protocol, a redacting Secret wrapper and key hints."""

from __future__ import annotations

from typing import Protocol


class SecretBackend(Protocol):
    kind: str  # "keyring" | "sealed-file"
    description: str

    def get(self, name: str) -> str | None: ...
    def set(self, name: str, secret: str) -> None: ...
    def delete(self, name: str) -> None: ...
    def names(self) -> list[str]: ...


def key_hint(secret: str) -> str:
    """``sk-…1a2b``: enough to tell keys apart, never more than a sixth of the key."""
    if len(secret) >= 24:
        return f"{secret[:3]}…{secret[-4:]}"
    if len(secret) >= 12:
        return f"…{secret[-2:]}"
    return "…"


class Secret:
    """A secret value that never shows itself in ``repr``, ``str`` or formatting."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({key_hint(self._value)!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")
