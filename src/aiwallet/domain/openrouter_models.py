"""OpenRouter's own price list (``GET /api/v1/models``), read into price rows.

OpenRouter writes each price as a string of USD per token (``"0.000003"``); a row keeps
nano-dollars per 1M tokens like every catalog row. Models whose price is variable (``"-1"``,
the auto router) or that add a per-request fee the worst case cannot bound are left out
(the models.dev row, where there is one, prices them instead).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from aiwallet.domain.catalog import PriceRow, price_per_m_to_nano, row_ref
from aiwallet.domain.errors import CatalogError

SOURCE_TAG = "openrouter-api"
# the list has hundreds of models: one that lists none, or a few, is a broken answer
MIN_MODELS = 1


def _per_m(value: Any, where: str) -> int | None:
    """A per-token USD string as nano-dollars per 1M tokens; None when absent or variable."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CatalogError(f"{where}: price {str(value)[:30]!r} is not a decimal string")
    try:
        usd = Decimal(str(value))
    except InvalidOperation:
        raise CatalogError(f"{where}: price {str(value)[:30]!r} is not a number") from None
    if not usd.is_finite():
        raise CatalogError(f"{where}: price {value!r} is not finite")
    if usd < 0:
        return None  # "-1": priced per request by the router it picks
    return price_per_m_to_nano(usd.scaleb(6), where)


def _limit(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def parse_row(raw: Mapping[str, Any]) -> PriceRow | None:
    """One model of the list, or None when it cannot be priced per token."""
    model_id = raw.get("id")
    if not isinstance(model_id, str) or not model_id or len(model_id) > 200:
        raise CatalogError("a model of OpenRouter's list has no usable id")
    pricing = raw.get("pricing")
    if not isinstance(pricing, Mapping):
        return None
    where = f"openrouter/{model_id}"
    input_ = _per_m(pricing.get("prompt"), where)
    output = _per_m(pricing.get("completion"), where)
    if input_ is None or output is None:
        return None
    request_fee = _per_m(pricing.get("request"), where)
    if request_fee is None and pricing.get("request") not in (None, ""):
        return None
    if request_fee:  # a fee per request: not a per-token price the bound could hold
        return None
    reasoning = _per_m(pricing.get("internal_reasoning"), where)
    top = raw.get("top_provider") if isinstance(raw.get("top_provider"), Mapping) else {}
    assert isinstance(top, Mapping)
    cache_read = _per_m(pricing.get("input_cache_read"), where)
    cache_write = _per_m(pricing.get("input_cache_write"), where)
    # reasoning tokens are completion tokens; a separate price only where it differs
    reasoning = reasoning if reasoning and reasoning != output else None
    fields = {
        "provider": "openrouter",
        "model": model_id,
        "input": input_,
        "output": output,
        "cache_read": cache_read,
        "cache_write": cache_write,
        "reasoning": reasoning,
    }
    name = raw.get("name")
    return PriceRow(
        provider="openrouter",
        model=model_id,
        name=name if isinstance(name, str) and name else model_id,
        input=input_,
        output=output,
        cache_read=cache_read,
        cache_write=cache_write,
        reasoning=reasoning,
        context_limit=_limit(raw.get("context_length")) or _limit(top.get("context_length")),
        output_limit=_limit(top.get("max_completion_tokens")),
        ref=row_ref(SOURCE_TAG, fields),
    )


def parse_openrouter_models(raw: bytes | str) -> dict[str, PriceRow]:
    """Every per-token priced model of the list, by id; :class:`CatalogError` for a list
    that is not one (nothing of it is used then)."""
    try:
        doc = json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        raise CatalogError(f"OpenRouter's model list is not JSON ({exc})") from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise CatalogError("OpenRouter's model list has no 'data' array")
    rows: dict[str, PriceRow] = {}
    for item in data:
        if not isinstance(item, Mapping):
            raise CatalogError("OpenRouter's model list holds something that is not a model")
        row = parse_row(item)
        if row is not None:
            rows[row.model] = row
    if len(rows) < MIN_MODELS:
        raise CatalogError("OpenRouter's model list priced no model")
    return rows
