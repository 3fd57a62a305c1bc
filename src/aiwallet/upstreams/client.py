"""The upstream HTTP client: one pooled aiohttp session for every provider.

Measured against httpx on this machine (see docs/benchmarks.md and ../shared/notes/qt.md):
the aiohttp client sustains several thousand requests/s where one shared httpx.AsyncClient
managed a few hundred, so it is the hot path's client.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from aiwallet.domain.providers import ANTHROPIC_VERSION, ProviderKind, WireFormat
from aiwallet.upstreams.auth import auth_headers

# Client headers worth passing upstream (everything else is the wallet's business).
PASS_THROUGH = ("anthropic-version", "anthropic-beta", "openai-beta", "accept")


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 10.0
    read_s: float = 300.0  # before the first byte, and between stream events


def make_session(timeouts: Timeouts, *, limit: int = 512) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.connect_s,
            sock_connect=timeouts.connect_s,
            sock_read=timeouts.read_s,
        ),
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )


def upstream_url(kind: ProviderKind, base_url: str, path: str) -> str:
    """``path`` is the wallet's route (``/v1/chat/completions``, ``/v1/messages``)."""
    base = base_url.rstrip("/")
    if kind.wire is WireFormat.ANTHROPIC:
        return base + path  # Anthropic base URLs stop before /v1
    return base + path.removeprefix("/v1")  # OpenAI-style base URLs end in /v1


def upstream_headers(
    kind: ProviderKind, api_key: str | None, client_headers: dict[str, str]
) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    for name in PASS_THROUGH:
        if name in client_headers:
            headers[name] = client_headers[name]
    if kind.wire is WireFormat.ANTHROPIC:
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    headers.update(
        {k: v for k, v in auth_headers(kind, api_key).items() if k != "anthropic-version"}
    )
    return headers
