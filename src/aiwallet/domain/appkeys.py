"""App keys: ``aw_app_`` + 256 random bits, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

APP_KEY_PREFIX = "aw_app_"


def new_app_key() -> str:
    return APP_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_app_key(key: str) -> str:
    """The stored form of a key; a 256-bit random key needs no salt or slow KDF."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str:
    """What the UI may show of a key to tell keys apart (``aw_app_AbC1…``)."""
    return key[: len(APP_KEY_PREFIX) + 4] + "…"


def looks_like_app_key(value: str) -> bool:
    return value.startswith(APP_KEY_PREFIX) and len(value) > len(APP_KEY_PREFIX) + 16
