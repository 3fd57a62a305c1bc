"""Signing admin requests in tests the way the CLI does (engine/adminauth.py): a challenge
whose proof is checked, then the request signed for its nonce. For clients other than httpx
(which takes ``aiwallet.engine.client.AdminAuth`` as its ``auth``)."""

from __future__ import annotations

from typing import Any

import httpx

from aiwallet.engine import adminauth


def challenge(base_url: str, token: str) -> str:
    """A fresh nonce from the engine at ``base_url``, its proof checked."""
    client_nonce = adminauth.new_nonce()
    resp = httpx.get(
        base_url + adminauth.CHALLENGE_PATH, params={"client_nonce": client_nonce}, timeout=10
    )
    info = resp.json()
    expected = adminauth.engine_proof(token, client_nonce, info["nonce"], info["instance"])
    assert adminauth.same(info["proof"], expected), "the engine did not prove it has the token"
    return str(info["nonce"])


def signed(base_url: str, token: str, method: str, target: str, body: bytes = b"") -> str:
    """The ``Authorization`` value for one request (``target``: path and query as sent)."""
    nonce = challenge(base_url, token)
    return adminauth.auth_header(nonce, adminauth.request_mac(token, nonce, method, target, body))


class RequestsAdminAuth:
    """``requests`` authentication (schemathesis calls through requests): each prepared
    request is signed with a fresh nonce."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url, self.token = base_url, token

    def __call__(self, r: Any) -> Any:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        r.headers["Authorization"] = signed(self.base_url, self.token, r.method, r.path_url, body)
        return r
