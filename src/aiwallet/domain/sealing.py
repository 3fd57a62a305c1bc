"""Rules for the passphrase that seals the vault file (where there is no OS keyring), shared
by the desktop app's dialog and the command line."""

from __future__ import annotations

MIN_SEAL_LENGTH = 8  # characters; Argon2id makes each guess slow, not a short one safe


def new_seal_problem(first: str, again: str) -> str | None:
    """Why a newly chosen passphrase (typed twice) is refused; None when it is accepted."""
    if not first:
        return "the passphrase is empty"
    if len(first) < MIN_SEAL_LENGTH:
        return f"the passphrase is shorter than {MIN_SEAL_LENGTH} characters"
    if first != again:
        return "the two passphrases differ; type the same one twice"
    return None
