"""The admin API's challenge-response scheme, shared by the engine and the CLI (stdlib only).

The admin token (the data dir's 0600 ``admin.token``, new at every engine start) never goes on
the wire. A caller first asks ``GET /admin/v1/challenge?client_nonce=C`` and gets a fresh
single-use ``nonce`` N, the engine's ``instance`` id I and a ``proof``:

    proof = HMAC-SHA256(token, "aiwallet-admin-v1\\nengine\\n" C "\\n" N "\\n" I)

The caller checks the proof (so a listener that does not know the token is found out before
anything that depends on the token is sent to it), then sends one request with

    Authorization: AW-HMAC nonce="N", mac="M"
    M = HMAC-SHA256(token, "aiwallet-admin-v1\\ncli\\n" N "\\n" METHOD "\\n" TARGET "\\n"
                    hex(SHA-256(body)))

where TARGET is the request target as sent (path and query). The engine consumes N whatever
the outcome, so a captured request cannot be replayed, and the MAC binds the method, target and
body, so it cannot be put to any other use. The two messages start with different labels, so a
proof the engine hands out (to anyone: the challenge needs no authentication) is never a valid
request MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

SCHEME = "AW-HMAC"
CHALLENGE_PATH = "/admin/v1/challenge"
NONCE_TTL_S = 30.0
MAX_NONCES = 256
_LABEL = b"aiwallet-admin-v1\n"
# nonces are token_urlsafe text; a client's nonce is held to the same alphabet and a sane size
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_HEADER_RE = re.compile(
    r'^\s*AW-HMAC\s+nonce="(?P<nonce>[A-Za-z0-9_-]{1,128})"\s*,\s*mac="(?P<mac>[0-9a-f]{64})"\s*$'
)


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def valid_nonce(value: str) -> bool:
    return _NONCE_RE.fullmatch(value) is not None


def _mac(token: str, message: bytes) -> str:
    return hmac.new(token.encode(), _LABEL + message, hashlib.sha256).hexdigest()


def engine_proof(token: str, client_nonce: str, nonce: str, instance: str) -> str:
    """What the engine answers a challenge with: it knows ``token``."""
    return _mac(token, b"engine\n" + "\n".join((client_nonce, nonce, instance)).encode())


def request_mac(token: str, nonce: str, method: str, target: str, body: bytes) -> str:
    """The MAC of one admin request (``target``: path and query, as on the request line)."""
    digest = hashlib.sha256(body).hexdigest()
    parts = (nonce, method.upper(), target, digest)
    return _mac(token, b"cli\n" + "\n".join(parts).encode("utf-8", "surrogateescape"))


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two MACs (text that is not ASCII never matches)."""
    try:
        return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))
    except UnicodeEncodeError:
        return False


def auth_header(nonce: str, mac: str) -> str:
    return f'{SCHEME} nonce="{nonce}", mac="{mac}"'


def parse_auth_header(value: str) -> tuple[str, str] | None:
    """``(nonce, mac)`` from an ``Authorization: AW-HMAC ...`` value; None when it is not one."""
    match = _HEADER_RE.match(value)
    if match is None:
        return None
    return match["nonce"], match["mac"]


class ChallengeStore:
    """The engine's outstanding nonces: each single use, dead after ``ttl_s``, at most
    ``capacity`` at once (past it the oldest is dropped: a flood of challenges costs a caller
    at most a retry, never memory). Used from the engine's loop only."""

    def __init__(
        self,
        ttl_s: float = NONCE_TTL_S,
        capacity: int = MAX_NONCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s, self.capacity, self._clock = ttl_s, capacity, clock
        self._nonces: OrderedDict[str, float] = OrderedDict()  # nonce -> expiry, oldest first

    def __len__(self) -> int:
        return len(self._nonces)

    def issue(self) -> str:
        now = self._clock()
        self._expire(now)
        while len(self._nonces) >= self.capacity:
            self._nonces.popitem(last=False)
        nonce = new_nonce()
        self._nonces[nonce] = now + self.ttl_s
        return nonce

    def consume(self, nonce: str) -> bool:
        """True once for a nonce this store issued and that has not expired."""
        expiry = self._nonces.pop(nonce, None)
        return expiry is not None and self._clock() < expiry

    def _expire(self, now: float) -> None:
        while self._nonces:
            nonce, expiry = next(iter(self._nonces.items()))
            if expiry > now:
                return
            del self._nonces[nonce]
