"""The pricing catalog: one price row per (provider, model), parsed from models.dev data.

Prices are kept as integer nano-dollars per 1M tokens, so ``0.0375`` USD/1M is 37,500,000.
The parser reads JSON numbers as ``Decimal`` (never ``float``) and refuses broken or partial
files with :class:`CatalogError`; models without a ``cost`` block are skipped as unpriced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from aiwallet.domain.errors import CatalogError, NotFound

REQUIRED_PROVIDERS = ("openai", "anthropic")
# When a bare model name is listed by several providers, the model's own vendor wins.
PROVIDER_PREFERENCE = (
    "openai", "anthropic", "google", "mistral", "deepseek", "xai", "groq", "openrouter",
)  # fmt: skip
_PRICE_KEYS = ("input", "output", "cache_read", "cache_write", "reasoning")


def price_per_m_to_nano(value: object, where: str) -> int:
    """USD per 1M tokens → integer nano-dollars per 1M tokens (half-up below a nano)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise CatalogError(f"{where}: price {value!r} is not a number")
    dec = Decimal(value)
    if not dec.is_finite() or dec < 0:
        raise CatalogError(f"{where}: price {value!r} is not a non-negative number")
    try:
        return int(dec.scaleb(9).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation as exc:
        raise CatalogError(f"{where}: price {value!r} is out of range") from exc


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Prices that apply to the whole request once its prompt exceeds ``threshold_tokens``."""

    threshold_tokens: int
    input: int
    output: int
    cache_read: int | None = None
    cache_write: int | None = None

    def to_json(self) -> dict[str, int | None]:
        return {
            "threshold_tokens": self.threshold_tokens,
            "input": self.input,
            "output": self.output,
            "cache_read": self.cache_read,
            "cache_write": self.cache_write,
        }


@dataclass(frozen=True, slots=True)
class PriceRow:
    """Prices of one model at one provider, nano-dollars per 1M tokens."""

    provider: str
    model: str
    name: str
    input: int
    output: int
    cache_read: int | None = None
    cache_write: int | None = None
    reasoning: int | None = None
    context_limit: int | None = None
    output_limit: int | None = None
    tiers: tuple[PriceTier, ...] = ()
    is_reasoning_model: bool = False
    ref: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"

    def priced_fields(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "input": self.input,
            "output": self.output,
            "cache_read": self.cache_read,
            "cache_write": self.cache_write,
            "reasoning": self.reasoning,
            "tiers": [t.to_json() for t in self.tiers],
        }

    def to_json(self) -> dict[str, Any]:
        """The row as stored beside a ledger entry (prices in nano-dollars per 1M tokens)."""
        return {
            **self.priced_fields(),
            "ref": self.ref,
            "unit": "nano_usd_per_1m_tokens",
            "context_limit": self.context_limit,
            "output_limit": self.output_limit,
        }

    def tier_for(self, prompt_tokens: int) -> PriceTier | None:
        """The highest tier whose threshold the prompt exceeds, if any."""
        chosen: PriceTier | None = None
        for tier in self.tiers:
            if prompt_tokens > tier.threshold_tokens and (
                chosen is None or tier.threshold_tokens > chosen.threshold_tokens
            ):
                chosen = tier
        return chosen


def row_ref(source_tag: str, fields: Mapping[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return f"{source_tag}:{fields['provider']}/{fields['model']}@{digest}"


@dataclass(frozen=True, slots=True)
class Catalog:
    """All price rows, with look-ups by ``provider/model`` and by bare model name."""

    rows: Mapping[tuple[str, str], PriceRow]
    source: str
    digest: str
    provider_names: Mapping[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[PriceRow]:
        return iter(self.rows.values())

    def providers(self) -> list[str]:
        return sorted({p for p, _ in self.rows})

    def models_of(self, provider: str) -> list[PriceRow]:
        return sorted((r for r in self.rows.values() if r.provider == provider), key=_by_model)

    def get(self, provider: str, model: str) -> PriceRow | None:
        return self.rows.get((provider, model))

    def candidates(self, model: str) -> list[PriceRow]:
        """Rows for a bare model name, the model's own vendor first."""
        found = [r for (_, m), r in self.rows.items() if m == model]
        return sorted(found, key=_preference)

    def lookup(self, name: str) -> PriceRow:
        """``provider/model`` exactly, else the preferred row for a bare model name."""
        provider, sep, model = name.partition("/")
        if sep and (row := self.get(provider, model)) is not None:
            return row
        found = self.candidates(name)
        if found:
            return found[0]
        raise NotFound(
            f"{name!r} is not in the pricing catalog; check the spelling with "
            "'aiwallet catalog list' or refresh it with 'aiwallet catalog update'",
            code="unknown_model",
        )


def _preference(row: PriceRow) -> tuple[int, str]:
    try:
        rank = PROVIDER_PREFERENCE.index(row.provider)
    except ValueError:
        rank = len(PROVIDER_PREFERENCE)
    return rank, row.provider


def _by_model(row: PriceRow) -> str:
    return row.model


def _int_or_none(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or value < 0:
        raise CatalogError(f"{where}: {value!r} is not a token count")
    return int(value)


def _parse_tiers(cost: Mapping[str, Any], where: str) -> tuple[PriceTier, ...]:
    tiers: dict[int, PriceTier] = {}
    raw_tiers = cost.get("tiers")
    if raw_tiers is not None:
        if not isinstance(raw_tiers, list):
            raise CatalogError(f"{where}: cost.tiers is not a list")
        for i, t in enumerate(raw_tiers):
            spec = t.get("tier") if isinstance(t, dict) else None
            if not isinstance(spec, dict) or spec.get("type") != "context":
                continue  # only context-size tiers affect per-token prices
            size = _int_or_none(spec.get("size"), f"{where} tier {i}")
            if size is None:
                raise CatalogError(f"{where}: tier {i} has no size")
            tiers[size] = _tier(t, size, f"{where} tier {i}")
    legacy = cost.get("context_over_200k")
    if isinstance(legacy, dict) and 200_000 not in tiers:
        tiers[200_000] = _tier(legacy, 200_000, f"{where} context_over_200k")
    return tuple(sorted(tiers.values(), key=lambda t: t.threshold_tokens))


def _tier(raw: Mapping[str, Any], size: int, where: str) -> PriceTier:
    if "input" not in raw or "output" not in raw:
        raise CatalogError(f"{where}: a price tier needs input and output prices")
    return PriceTier(
        size,
        price_per_m_to_nano(raw["input"], where),
        price_per_m_to_nano(raw["output"], where),
        None if raw.get("cache_read") is None else price_per_m_to_nano(raw["cache_read"], where),
        None if raw.get("cache_write") is None else price_per_m_to_nano(raw["cache_write"], where),
    )


def parse_row(provider: str, model_id: str, raw: Mapping[str, Any], source_tag: str) -> PriceRow:
    """One models.dev model entry → a PriceRow (raises CatalogError when malformed)."""
    where = f"{provider}/{model_id}"
    cost = raw["cost"]
    if not isinstance(cost, dict):
        raise CatalogError(f"{where}: cost is not an object")
    if "input" not in cost or "output" not in cost:
        raise CatalogError(f"{where}: cost needs input and output prices")
    prices = {
        k: (None if cost.get(k) is None else price_per_m_to_nano(cost[k], f"{where} {k}"))
        for k in _PRICE_KEYS
    }
    limit = raw.get("limit") or {}
    if not isinstance(limit, dict):
        raise CatalogError(f"{where}: limit is not an object")
    fields: dict[str, Any] = {
        "provider": provider,
        "model": model_id,
        **prices,
        "tiers": [t.to_json() for t in _parse_tiers(cost, where)],
    }
    return PriceRow(
        provider=provider,
        model=model_id,
        name=str(raw.get("name") or model_id),
        input=prices["input"] or 0,
        output=prices["output"] or 0,
        cache_read=prices["cache_read"],
        cache_write=prices["cache_write"],
        reasoning=prices["reasoning"],
        context_limit=_int_or_none(limit.get("context"), f"{where} limit.context"),
        output_limit=_int_or_none(limit.get("output"), f"{where} limit.output"),
        tiers=_parse_tiers(cost, where),
        is_reasoning_model=bool(raw.get("reasoning", False)),
        ref=row_ref(source_tag, fields),
    )


def load_models_dev_json(raw: bytes | str) -> Any:
    """Decode models.dev JSON with every number as int or Decimal, never float."""
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CatalogError(f"the catalog file is not valid JSON ({exc})") from None


def parse_models_dev(
    raw: bytes | str | Mapping[str, Any], *, source: str, source_tag: str = "models.dev"
) -> Catalog:
    """Parse and validate a models.dev ``api.json`` (or an already-decoded copy of it)."""
    data = raw if isinstance(raw, Mapping) else load_models_dev_json(raw)
    if not isinstance(data, Mapping) or not data:
        raise CatalogError("the catalog file is not a models.dev api.json (no providers)")
    rows: dict[tuple[str, str], PriceRow] = {}
    names: dict[str, str] = {}
    for provider, pdata in data.items():
        if not isinstance(pdata, Mapping) or not isinstance(pdata.get("models"), Mapping):
            raise CatalogError(f"provider {provider!r} has no models object; the file is damaged")
        names[str(provider)] = str(pdata.get("name") or provider)
        for model_id, mdata in pdata["models"].items():
            if not isinstance(mdata, Mapping):
                raise CatalogError(f"{provider}/{model_id} is not an object; the file is damaged")
            if mdata.get("cost") is None:
                continue  # unpriced: not usable for metering, not an error
            row = parse_row(str(provider), str(model_id), mdata, source_tag)
            rows[(row.provider, row.model)] = row
    missing = [p for p in REQUIRED_PROVIDERS if not any(r.provider == p for r in rows.values())]
    if missing:
        raise CatalogError(
            f"the catalog file has no priced models for {', '.join(missing)}; it looks partial"
        )
    canonical = json.dumps(
        {f"{k[0]}/{k[1]}": v.priced_fields() for k, v in sorted(rows.items())}, sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return Catalog(rows=rows, source=source, digest=digest, provider_names=names)
