"""The headers that carry a provider key upstream. The only place a key is put on the wire."""

from __future__ import annotations

from aiwallet.domain.providers import ANTHROPIC_VERSION, AuthStyle, ProviderKind, WireFormat


def auth_headers(kind: ProviderKind, api_key: str | None) -> dict[str, str]:
    """Headers authenticating a request to a provider of ``kind`` with ``api_key``."""
    headers: dict[str, str] = {}
    if kind.wire is WireFormat.ANTHROPIC:
        headers["anthropic-version"] = ANTHROPIC_VERSION
    if api_key and kind.auth is AuthStyle.BEARER:
        headers["authorization"] = f"Bearer {api_key}"
    elif api_key and kind.auth is AuthStyle.X_API_KEY:
        headers["x-api-key"] = api_key
    return headers
