"""OpenRouter's account APIs: its price list, and the management API that makes per-app keys.

Management keys (``/api/v1/keys``) make, change, read and delete other keys, each with a
spending ``limit`` in USD and a ``limit_reset`` (daily, weekly, monthly: UTC midnight, weeks
Monday to Sunday). Amounts go on the wire as exact decimal numbers and come back read as
:class:`~decimal.Decimal`, never as floats. No error carries a key or a response body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

import httpx

from aiwallet.domain.catalog import PriceRow
from aiwallet.domain.errors import CatalogError, InvalidInput
from aiwallet.domain.money import usd_to_nano
from aiwallet.domain.openrouter_models import parse_openrouter_models

MAX_LIST_BYTES = 20 * 1024 * 1024


class OpenRouterError(Exception):
    """A management call failed; the message says what to do and carries no secret."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class KeyFigures:
    """What OpenRouter says of one key (nano-dollars; None where it has no limit)."""

    key_id: str  # its hash
    disabled: bool
    limit_nano: int | None
    limit_reset: str | None
    remaining_nano: int | None
    usage_nano: int
    daily_nano: int
    weekly_nano: int
    monthly_nano: int

    def usage_json(self) -> dict[str, int | None]:
        return {
            "usage_nano": self.usage_nano,
            "daily_nano": self.daily_nano,
            "weekly_nano": self.weekly_nano,
            "monthly_nano": self.monthly_nano,
            "remaining_nano": self.remaining_nano,
            "limit_nano": self.limit_nano,
        }


def nano_of(value: Any) -> int | None:
    """A JSON amount in USD (read as Decimal) in whole nano-dollars, cut down; None if absent."""
    if value is None or isinstance(value, bool):
        return None
    try:
        dec = value if isinstance(value, Decimal) else Decimal(str(value))
        return usd_to_nano(dec.quantize(Decimal("1e-9"), rounding=ROUND_DOWN))
    except (InvalidOperation, ValueError, ArithmeticError, InvalidInput):
        return None


def usd_number(nano: int) -> str:
    """Nano-dollars as the exact decimal number OpenRouter takes (``2.5``)."""
    text = format(Decimal(nano).scaleb(-9).normalize(), "f")
    return text


def _body(fields: dict[str, Any]) -> bytes:
    """JSON with amounts as exact numbers (a :class:`Decimal` is written as its digits)."""
    marks: dict[str, str] = {}
    plain: dict[str, Any] = {}
    for k, v in fields.items():
        if isinstance(v, Decimal):
            token = f"@@{k}@@"
            marks[token] = format(v.normalize(), "f")
            plain[k] = token
        else:
            plain[k] = v
    text = json.dumps(plain, separators=(",", ":"))
    for token, number in marks.items():
        text = text.replace(f'"{token}"', number)
    return text.encode()


def figures(data: Any) -> KeyFigures:
    if not isinstance(data, dict) or not isinstance(data.get("hash"), str):
        raise OpenRouterError("OpenRouter's answer did not describe a key")
    return KeyFigures(
        key_id=data["hash"],
        disabled=bool(data.get("disabled")),
        limit_nano=nano_of(data.get("limit")),
        limit_reset=data.get("limit_reset") if isinstance(data.get("limit_reset"), str) else None,
        remaining_nano=nano_of(data.get("limit_remaining")),
        usage_nano=nano_of(data.get("usage")) or 0,
        daily_nano=nano_of(data.get("usage_daily")) or 0,
        weekly_nano=nano_of(data.get("usage_weekly")) or 0,
        monthly_nano=nano_of(data.get("usage_monthly")) or 0,
    )


class ManagementClient:
    """The management API of one OpenRouter account (its management key)."""

    def __init__(self, base_url: str, management_key: str, *, timeout_s: float = 15.0) -> None:
        self.base = base_url.rstrip("/")
        self._headers = {
            "authorization": f"Bearer {management_key}",
            "content-type": "application/json",
        }
        self._timeout = timeout_s

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.base}{path}"
        try:
            async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as c:
                resp = await c.request(
                    method, url, headers=self._headers,
                    content=_body(body) if body is not None else None,
                )  # fmt: skip
        except httpx.HTTPError as exc:
            raise OpenRouterError(
                f"cannot reach OpenRouter's key management ({type(exc).__name__})"
            ) from None
        if resp.status_code in (401, 403):
            raise OpenRouterError(
                f"OpenRouter refused the management key (HTTP {resp.status_code}); add a "
                "management key from openrouter.ai/settings/management-keys",
                resp.status_code,
            )
        if resp.status_code == 404:
            raise OpenRouterError("OpenRouter has no such key (HTTP 404)", 404)
        if resp.status_code >= 400:
            raise OpenRouterError(
                f"OpenRouter's key management answered HTTP {resp.status_code}", resp.status_code
            )
        try:
            return json.loads(resp.content, parse_float=Decimal)
        except ValueError:
            raise OpenRouterError(
                "OpenRouter's key management answered something not JSON"
            ) from None

    async def create(
        self, name: str, limit_nano: int | None, limit_reset: str | None
    ) -> tuple[KeyFigures, str]:
        """A new key: its figures and the key itself (shown only this once)."""
        body: dict[str, Any] = {"name": name, "limit_reset": limit_reset}
        body["limit"] = None if limit_nano is None else Decimal(usd_number(limit_nano))
        doc = await self._call("POST", "/keys", body)
        key = doc.get("key") if isinstance(doc, dict) else None
        if not isinstance(key, str) or not key.startswith("sk-or-"):
            raise OpenRouterError("OpenRouter made a key but did not return it")
        return figures(doc.get("data")), key

    async def update(
        self, key_id: str, *, limit_nano: int | None, limit_reset: str | None, disabled: bool
    ) -> KeyFigures:
        body: dict[str, Any] = {"disabled": disabled, "limit_reset": limit_reset}
        body["limit"] = None if limit_nano is None else Decimal(usd_number(limit_nano))
        doc = await self._call("PATCH", f"/keys/{key_id}", body)
        return figures(doc.get("data") if isinstance(doc, dict) else None)

    async def get(self, key_id: str) -> KeyFigures:
        doc = await self._call("GET", f"/keys/{key_id}")
        return figures(doc.get("data") if isinstance(doc, dict) else None)

    async def delete(self, key_id: str) -> None:
        try:
            await self._call("DELETE", f"/keys/{key_id}")
        except OpenRouterError as exc:
            if exc.status != 404:  # already gone is what was wanted
                raise

    async def credits(self) -> tuple[int, int]:
        """The account's credits bought and used, nano-dollars."""
        doc = await self._call("GET", "/credits")
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, dict):
            raise OpenRouterError("OpenRouter's credits answer had no data")
        return nano_of(data.get("total_credits")) or 0, nano_of(data.get("total_usage")) or 0


async def fetch_price_list(
    base_url: str, api_key: str | None = None, *, timeout_s: float = 30.0
) -> tuple[bytes, dict[str, PriceRow]]:
    """OpenRouter's model list (the raw bytes to cache, and its price rows); CatalogError
    when it cannot be read or is not a usable list."""
    url = base_url.rstrip("/") + "/models"
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with (
            httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client,
            client.stream("GET", url, headers=headers) as resp,
        ):
            if resp.status_code != 200:
                raise CatalogError(
                    f"OpenRouter's model list answered HTTP {resp.status_code}; prices not changed"
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > MAX_LIST_BYTES:
                    raise CatalogError("OpenRouter's model list is over 20 MB; prices not changed")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise CatalogError(
            f"cannot download OpenRouter's model list ({type(exc).__name__}); prices not changed"
        ) from None
    raw = b"".join(chunks)
    return raw, parse_openrouter_models(raw)
