"""No secret of the wallet in anything an app receives.

A :class:`Scrubber` holds every secret the engine knows, in every form
``domain/secretforms.py`` finds (as is, a long fragment, JSON-escaped, URL-encoded, the hex
and base64 forms of binary keys): every provider key configured and every other entry of the
vault (the receipt-signing key), loaded when the engine starts and on each reload, off the
event loop (:func:`load_vault_secrets`); and the engine's own (the admin token, the
session-token key), added at start. The proxy passes through it every body it relays (whole
answers and relayed 4xx errors), every SSE event of a stream, and every upstream header
value it copies; a header whose name or value holds a secret is dropped (an app has no use
for a request id or rate-limit figure that is a key), a body or event has the secret replaced
by ``[redacted]``, which keeps it valid JSON. The log filter (``logsetup.REDACTOR``) uses the
same matcher.

Scrubbed data is the same object when nothing was found (the common case: one
``bytes.find`` per 8-byte block of each secret); ``docs/benchmarks.md`` has the cost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from aiwallet.domain.errors import VaultError
from aiwallet.domain.secretforms import SecretMatcher, text_forms
from aiwallet.store.providers import ProviderRecord
from aiwallet.vault import Vault

log = logging.getLogger(__name__)

Labelled = tuple[str, str]  # (what the secret is, shown in logs and notes; the secret)


def provider_label(name: str) -> str:
    return f"the key of provider {name!r}"


class Scrubber:
    """An immutable set of labelled secrets and the scrubbing of bytes, text and headers."""

    def __init__(self, secrets: Iterable[Labelled] = ()) -> None:
        pairs = [(label, form) for label, value in secrets for form in text_forms(value)]
        self.secrets: tuple[Labelled, ...] = tuple(pairs)
        self.matcher = SecretMatcher(pairs)

    def __len__(self) -> int:
        return len(self.matcher)

    def with_secrets(self, more: Iterable[Labelled]) -> Scrubber:
        return Scrubber([*self.secrets, *more])

    def scrub(self, data: bytes) -> tuple[bytes, frozenset[str]]:
        """``data`` without any secret (the same object when none was there), and the labels
        of the secrets found."""
        out, hits = self.matcher.redact(data)
        return out, frozenset(h.label for h in hits)

    def scrub_bytes(self, data: bytes) -> bytes:
        return self.matcher.redact(data)[0]

    def scrub_text(self, text: str) -> str:
        return self.matcher.redact_text(text)

    def scrub_headers(self, headers: Mapping[str, str]) -> tuple[dict[str, str], frozenset[str]]:
        """The headers whose name and value hold no secret, and the labels of those found in
        the others (dropped whole: a header value is not JSON to redact inside)."""
        lines = [
            f"{name}: {value}".encode("utf-8", "surrogateescape") for name, value in headers.items()
        ]
        if not self.matcher.find(b"\n".join(lines)):  # one pass for all of them
            return dict(headers), frozenset()
        kept: dict[str, str] = {}
        labels: set[str] = set()
        for name, value in headers.items():
            hits = self.matcher.find(f"{name}: {value}".encode("utf-8", "surrogateescape"))
            if hits:
                labels.update(h.label for h in hits)
            else:
                kept[name] = value
        return kept, frozenset(labels)


def load_vault_secrets(
    vault: Vault, providers: Iterable[ProviderRecord]
) -> tuple[list[Labelled], dict[str, str | None]]:
    """Every secret the vault holds, labelled, and each provider's key by provider name
    (blocking: keyring calls, perhaps the sealed file's KDF; run it off the loop). A locked
    or failing vault gives what could be read: nothing reaches a provider without its key,
    so nothing can be echoed that was not loaded."""
    labelled: list[Labelled] = []
    keys: dict[str, str | None] = {}
    by_ref: dict[str, str] = {}
    for p in providers:
        if p.secret_ref is None:
            continue
        by_ref[p.secret_ref] = p.name
        try:
            secret = vault.get(p.secret_ref)
        except VaultError as exc:
            log.warning("cannot load the key of provider %r to scrub answers: %s", p.name, exc)
            continue
        keys[p.name] = secret.reveal() if secret is not None else None
        if secret is not None:
            labelled.append((provider_label(p.name), secret.reveal()))
    try:
        names = vault.names()
    except VaultError as exc:
        log.warning("cannot list the vault's secrets to scrub answers: %s", exc)
        names = []
    for name in names:
        if name in by_ref:
            continue
        try:
            secret = vault.get(name)
        except VaultError:
            continue
        if secret is not None:
            labelled.append((f"the vault secret {name!r}", secret.reveal()))
    return labelled, keys
