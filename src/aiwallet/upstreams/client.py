"""The upstream HTTP client: one pooled aiohttp session for every provider.

Measured against httpx on this machine (see docs/benchmarks.md and ../shared/notes/qt.md):
the aiohttp client sustains several thousand requests/s where one shared httpx.AsyncClient
managed a few hundred, so it is the hot path's client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from aiwallet.domain.providers import ANTHROPIC_VERSION, ProviderKind, WireFormat
from aiwallet.upstreams.auth import auth_headers

# Client headers worth passing upstream (everything else is the wallet's business).
PASS_THROUGH = ("anthropic-version", "anthropic-beta", "openai-beta", "accept")
# Upstream response headers the clients use (the SDKs' request ids, rate limits, retry hints,
# processing time); nothing else of the provider's reaches an app, and of these, a header
# whose name or value holds a secret of the wallet is dropped (engine/scrub.py).
PASS_BACK = frozenset(
    {"x-request-id", "request-id", "openai-processing-ms", "openai-version", "retry-after",
     "retry-after-ms"}
)  # fmt: skip
PASS_BACK_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")


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


def upstream_url(kind: ProviderKind, base_url: str, path: str, query: str = "") -> str:
    """``path`` is the wallet's route (``/v1/chat/completions``, ``/v1/messages``); ``query``
    the client's query string, forwarded as sent (Anthropic's ``?beta=true``)."""
    base = base_url.rstrip("/")
    # Anthropic base URLs stop before /v1; OpenAI-style base URLs end in /v1
    url = base + (path if kind.wire is WireFormat.ANTHROPIC else path.removeprefix("/v1"))
    return f"{url}?{query}" if query else url


def client_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    """The upstream response headers that go back to the client (the allow-list)."""
    out: dict[str, str] = {}
    for name, value in upstream.items():
        low = name.lower()
        if low in PASS_BACK or low.startswith(PASS_BACK_PREFIXES):
            out[low] = value
    return out


def upstream_headers(
    kind: ProviderKind,
    api_key: str | None,
    client_headers: dict[str, str],
    gateway_token: str | None = None,
) -> dict[str, str]:
    # identity: the answer is relayed only after the scrubber read it, which it cannot do
    # through a compression (the engine refuses an answer encoded anyway: engine/proxy.py)
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    for name in PASS_THROUGH:
        if name in client_headers:
            headers[name] = client_headers[name]
    if kind.wire is WireFormat.ANTHROPIC:
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    headers.update(
        {
            k: v
            for k, v in auth_headers(kind, api_key, gateway_token).items()
            if k != "anthropic-version"
        }
    )
    return headers
