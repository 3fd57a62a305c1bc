"""``providers test``: does this base URL answer, and does it accept this key?

Lists the provider's models (``GET {base}/models`` for OpenAI-style APIs, ``GET
{base}/v1/models`` for Anthropic). The result never carries the key or the response body,
only what a person needs to fix the set-up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from aiwallet.domain.providers import ProviderKind, WireFormat
from aiwallet.upstreams.auth import auth_headers


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    status: int | None
    latency_ms: int
    models: int | None
    message: str


# gateway endpoints that answer requests but list no models (Cloudflare's OpenAI-compatible one)
LISTLESS_GATEWAYS = frozenset({"cloudflare"})


def models_url(kind: ProviderKind, base_url: str) -> str:
    base = base_url.rstrip("/")
    if kind.wire is WireFormat.ANTHROPIC:
        return f"{base}/v1/models"
    return f"{base}/models"


def _explain(status: int) -> str:
    if status in (401, 403):
        return f"the provider refused the key (HTTP {status}); check or rotate it"
    if status == 404:
        return "the base URL answered 404 for its model list; check the base URL"
    if status == 429:
        return "the provider is rate limiting this key (HTTP 429); try again later"
    if status >= 500:
        return f"the provider is failing (HTTP {status}); try again later"
    return f"unexpected answer HTTP {status}"


async def probe_provider(
    kind: ProviderKind,
    base_url: str,
    api_key: str | None,
    *,
    timeout_s: float = 10.0,
    gateway_token: str | None = None,
) -> ProbeResult:
    """One ``GET`` of the model list; never raises for network faults, says what happened.
    ``gateway_token``: an authenticated gateway's own token (sent beside the key)."""
    url = models_url(kind, base_url)
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            resp = await client.get(url, headers=auth_headers(kind, api_key, gateway_token))
    except httpx.ConnectError:
        return ProbeResult(False, None, _ms(started), None, f"cannot connect to {base_url}")
    except httpx.TimeoutException:
        return ProbeResult(
            False, None, _ms(started), None, f"{base_url} did not answer within {timeout_s:g} s"
        )
    except httpx.HTTPError as exc:
        return ProbeResult(
            False, None, _ms(started), None, f"request to {base_url} failed: {type(exc).__name__}"
        )
    latency = _ms(started)
    if resp.status_code == 404 and kind.id in LISTLESS_GATEWAYS:
        # Cloudflare's /compat endpoint lists no models; its 404 comes after the gateway
        # checked the request's authentication, which an authenticated gateway refuses (401)
        return ProbeResult(
            True, 404, latency, None,
            "the gateway answered and accepted its token (its /compat endpoint lists no "
            "models, so the vendor's key is first checked by a request)",
        )  # fmt: skip
    if resp.status_code in (401, 403) and kind.gateway is not None:
        return ProbeResult(
            False, resp.status_code, latency, None,
            f"the gateway or the provider behind it refused (HTTP {resp.status_code}); check "
            "the gateway token ('--gateway-token') and the provider key",
        )  # fmt: skip
    if resp.status_code != 200:
        return ProbeResult(False, resp.status_code, latency, None, _explain(resp.status_code))
    count: int | None = None
    try:
        data = resp.json().get("data")
        count = len(data) if isinstance(data, list) else None
    except (ValueError, AttributeError):
        return ProbeResult(
            False, 200, latency, None, "the base URL answered, but not with a model list"
        )
    return ProbeResult(True, 200, latency, count, "the provider accepted the key")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
