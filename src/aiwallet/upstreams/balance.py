"""What a provider says is left on its account, where it says it at all.

OpenRouter answers ``GET {base}/key`` with the key's credit limit, what it used and what is
left (dollars as JSON numbers, read here as exact decimals and cut to whole nano-dollars).
OpenAI and Anthropic publish no balance to an API key: for them there is nothing to ask.
"""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

import httpx

from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import usd_to_nano
from aiwallet.domain.providers import KINDS_WITH_BALANCE, Balance, ProviderKind
from aiwallet.upstreams.auth import auth_headers


def _nano(value: Any) -> int | None:
    if value is None:
        return None
    try:
        dec = Decimal(str(value)) if not isinstance(value, Decimal) else value
        return usd_to_nano(dec.quantize(Decimal("1e-9"), rounding=ROUND_DOWN))
    except (InvalidOperation, ValueError, ArithmeticError, InvalidInput):
        return None


async def provider_balance(
    name: str, kind: ProviderKind, base_url: str, api_key: str | None, *, timeout_s: float = 10.0
) -> Balance | None:
    """The balance of one provider, or None where the provider publishes none."""
    if kind.id not in KINDS_WITH_BALANCE:
        return None
    url = base_url.rstrip("/") + "/key"
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            resp = await client.get(url, headers=auth_headers(kind, api_key))
    except httpx.HTTPError as exc:
        return Balance(name, None, None, None, f"cannot reach {base_url} ({type(exc).__name__})")
    if resp.status_code != 200:
        return Balance(name, None, None, None, f"the provider answered HTTP {resp.status_code}")
    try:
        data = json.loads(resp.content, parse_float=Decimal).get("data") or {}
    except (ValueError, AttributeError):
        return Balance(name, None, None, None, "the provider's answer was not JSON")
    if not isinstance(data, dict):
        return Balance(name, None, None, None, "the provider's answer had no key data")
    return Balance(
        name,
        _nano(data.get("limit_remaining")),
        _nano(data.get("limit")),
        _nano(data.get("usage")),
    )
