"""Short-lived session tokens: an app trades its key for a token valid a few minutes.

``aw_sess_<payload>.<mac>``: the payload names the app and its grant and when the token
expires; the MAC is HMAC-SHA256 under a key that lives only in this engine's memory, so a
token dies with its engine (it would expire within minutes anyway). A token is refused once
expired, and once its grant is no longer the app's active grant (revoked, replaced, expired).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from aiwallet.domain.secretforms import bytes_forms
from aiwallet.engine.errors import ProxyError

PREFIX = "aw_sess_"
MIN_TTL_S, MAX_TTL_S, DEFAULT_TTL_S = 5 * 60, 15 * 60, 10 * 60


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class SessionClaim:
    app_id: int
    grant_id: int
    expires_at: float


class SessionTokens:
    def __init__(self, ttl_s: int = DEFAULT_TTL_S) -> None:
        self.ttl_s = max(MIN_TTL_S, min(MAX_TTL_S, ttl_s))
        self._key = secrets.token_bytes(32)

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, app_id: int, grant_id: int) -> tuple[str, float]:
        expires = time.time() + self.ttl_s
        payload = _b64(json.dumps({"a": app_id, "g": grant_id, "e": int(expires)}).encode())
        return f"{PREFIX}{payload}.{self._mac(payload)}", expires

    def check(self, token: str) -> SessionClaim:
        body = token.removeprefix(PREFIX)
        payload, _, mac = body.partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac(payload)):
            raise ProxyError(
                "invalid_app_key",
                "this session token is not valid (or was issued before the wallet restarted); "
                "get a new one from POST /wallet/v1/token",
            )
        try:
            data = json.loads(_unb64(payload))
            claim = SessionClaim(int(data["a"]), int(data["g"]), float(data["e"]))
        except (ValueError, KeyError, TypeError):
            raise ProxyError("invalid_app_key", "this session token is malformed") from None
        if claim.expires_at < time.time():
            raise ProxyError(
                "invalid_app_key",
                "this session token has expired; get a new one from POST /wallet/v1/token",
            )
        return claim

    def key_forms(self) -> list[str]:
        """The MAC key's text forms, for the scrubber and the log filter (engine/scrub.py):
        it never leaves this engine, so none of them may appear in what an app receives."""
        return bytes_forms(self._key)
