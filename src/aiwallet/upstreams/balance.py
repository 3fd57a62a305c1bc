"""What a provider says is left on its account, where it says it at all.

* OpenRouter: ``GET {base}/key`` tells the key's limit, what it used and what is left; with
  the account's management key, ``GET {base}/credits`` tells the credits bought and used.
* Vercel AI Gateway: ``GET {base}/credits`` → ``{"balance": "95.50", "total_used": "4.50"}``.
* DeepSeek: ``GET {root}/user/balance`` → ``balance_infos`` per currency (USD is read; a
  balance only in another currency is said so, not converted).

Amounts are read as exact decimals and cut to whole nano-dollars. OpenAI and Anthropic
publish no balance to an API key: for them there is nothing to ask.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

import httpx

from aiwallet.domain.providers import Balance, ProviderKind, provider_kind
from aiwallet.domain.subkeys import management_ref
from aiwallet.upstreams.auth import auth_headers
from aiwallet.upstreams.openrouter_api import ManagementClient, OpenRouterError, nano_of
from aiwallet.vault import Vault


async def _get(url: str, headers: dict[str, str], timeout_s: float, base: str) -> Any | str:
    """The JSON answer of ``GET url``, or a short problem naming the provider's base URL
    (never the response body)."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            resp = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return f"cannot reach {base} ({type(exc).__name__})"
    if resp.status_code != 200:
        return f"the provider answered HTTP {resp.status_code}"
    try:
        return json.loads(resp.content, parse_float=Decimal)
    except ValueError:
        return "the provider's answer was not JSON"


async def _openrouter(
    name: str, kind: ProviderKind, base: str, key: str | None, mgmt: str | None, t: float
) -> Balance:
    doc = await _get(f"{base}/key", auth_headers(kind, key), t, base)
    if isinstance(doc, str):
        return Balance(name, None, None, None, doc)
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict):
        return Balance(name, None, None, None, "the provider's answer had no key data")
    credits = None
    if mgmt is not None:
        try:
            bought, used = await ManagementClient(base, mgmt, timeout_s=t).credits()
            credits = bought - used
        except OpenRouterError:
            credits = None  # the key's own figures still stand
    return Balance(
        name,
        nano_of(data.get("limit_remaining")),
        nano_of(data.get("limit")),
        nano_of(data.get("usage")),
        credits_nano=credits,
    )


async def _vercel(name: str, kind: ProviderKind, base: str, key: str | None, t: float) -> Balance:
    root = base.removesuffix("/v1")
    doc = await _get(f"{root}/v1/credits", auth_headers(kind, key), t, base)
    if isinstance(doc, str):
        return Balance(name, None, None, None, doc)
    if not isinstance(doc, dict) or nano_of(doc.get("balance")) is None:
        return Balance(name, None, None, None, "the gateway's answer had no balance")
    return Balance(
        name, None, None, nano_of(doc.get("total_used")), credits_nano=nano_of(doc["balance"])
    )


async def _deepseek(name: str, kind: ProviderKind, base: str, key: str | None, t: float) -> Balance:
    root = base.removesuffix("/v1")
    doc = await _get(f"{root}/user/balance", auth_headers(kind, key), t, base)
    if isinstance(doc, str):
        return Balance(name, None, None, None, doc)
    infos = doc.get("balance_infos") if isinstance(doc, dict) else None
    if not isinstance(infos, list):
        return Balance(name, None, None, None, "the provider's answer had no balance")
    for info in infos:
        if isinstance(info, dict) and info.get("currency") == "USD":
            return Balance(name, None, None, None, credits_nano=nano_of(info.get("total_balance")))
    currencies = ", ".join(
        str(i.get("currency"))[:8] for i in infos if isinstance(i, dict) and i.get("currency")
    )
    return Balance(
        name, None, None, None,
        f"the balance is published in {currencies or 'no currency'}, not USD",
    )  # fmt: skip


async def provider_balance(
    name: str,
    kind: ProviderKind,
    base_url: str,
    api_key: str | None,
    *,
    management_key: str | None = None,
    timeout_s: float = 10.0,
) -> Balance | None:
    """The balance of one provider, or None where the provider publishes none."""
    base = base_url.rstrip("/")
    if kind.balance_api == "openrouter":
        return await _openrouter(name, kind, base, api_key, management_key, timeout_s)
    if kind.balance_api == "vercel":
        return await _vercel(name, kind, base, api_key, timeout_s)
    if kind.balance_api == "deepseek":
        return await _deepseek(name, kind, base, api_key, timeout_s)
    return None


class ProviderLike(Protocol):
    """What a balance look-up needs of a configured provider (store.providers's record)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def secret_ref(self) -> str | None: ...
    @property
    def options(self) -> dict[str, Any] | None: ...


async def read_balances(
    vault: Vault, providers: Iterable[ProviderLike], *, timeout_s: float = 10.0
) -> list[Balance]:
    """The balance of each provider that publishes one (the vault read off the loop)."""
    out: list[Balance] = []
    for record in providers:
        kind = provider_kind(record.kind)
        if kind.balance_api is None:
            continue
        secret = await vault.aget(record.secret_ref) if record.secret_ref else None
        mgmt = None
        if (record.options or {}).get("subkeys"):
            found = await vault.aget(management_ref(record.name))
            mgmt = found.reveal() if found is not None else None
        balance = await provider_balance(
            record.name, kind, record.base_url, secret.reveal() if secret else None,
            management_key=mgmt, timeout_s=timeout_s,
        )  # fmt: skip
        if balance is not None:
            out.append(balance)
    return out
