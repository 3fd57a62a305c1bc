"""Errors the wallet raises on purpose.

Every error carries a stable ``code`` (the blueprint's error codes where one fits) and a
message that says what happened and what the user can do. Interfaces (CLI, HTTP) print the
message as-is; they never need a traceback to explain one of these.

Each code is a row of ``aiwallet.engine.errors.CODES`` (its HTTP status, its OpenAI and
Anthropic error types), so the engine answers any of these with its own status, never a 500;
a new subclass or code needs its row there (a test walks every subclass to check).
"""

from __future__ import annotations


class WalletError(Exception):
    """Base of every deliberate error. ``code`` is stable; ``str(err)`` is for people."""

    code: str = "wallet_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(WalletError):
    """Something the user or an app typed could not be understood; ``param`` names the field
    of a request it is about, when there is one."""

    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message, code=code)
        self.param = param


class NotFound(WalletError):
    """A named thing (app, provider, model, entry) does not exist."""

    code = "not_found"


class BudgetExceeded(WalletError):
    """A reservation would take a budget below zero."""

    code = "budget_exceeded"


class CatalogError(WalletError):
    """A pricing catalog file is broken, partial or of the wrong shape."""

    code = "catalog_invalid"


class VaultError(WalletError):
    """The secret store cannot be used (missing, unreadable, damaged)."""

    code = "vault_error"


class VaultLocked(VaultError):
    """The secret store is locked: it needs its passphrase (or the OS keyring unlocked)."""

    code = "vault_locked"
