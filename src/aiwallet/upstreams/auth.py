"""The headers that carry a provider key upstream. The only place a key (or a gateway's
token) is put on the wire."""

from __future__ import annotations

from aiwallet.domain.gateways import GATEWAY_HEADER
from aiwallet.domain.providers import ANTHROPIC_VERSION, AuthStyle, ProviderKind, WireFormat


def auth_headers(
    kind: ProviderKind, api_key: str | None, gateway_token: str | None = None
) -> dict[str, str]:
    """Headers authenticating a request to a provider of ``kind`` with ``api_key``, and to
    an authenticated gateway in front of it with ``gateway_token`` (Cloudflare AI Gateway's
    ``cf-aig-authorization``). A kind that takes no key (a server on this machine) gets no
    ``Authorization`` header at all."""
    headers: dict[str, str] = {}
    if kind.wire is WireFormat.ANTHROPIC:
        headers["anthropic-version"] = ANTHROPIC_VERSION
    if api_key and kind.auth is AuthStyle.BEARER:
        headers["authorization"] = f"Bearer {api_key}"
    elif api_key and kind.auth is AuthStyle.X_API_KEY:
        headers["x-api-key"] = api_key
    if gateway_token and kind.gateway == "cloudflare":
        headers[GATEWAY_HEADER] = f"Bearer {gateway_token}"
    return headers
