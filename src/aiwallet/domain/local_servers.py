"""Servers on this machine (Ollama, LM Studio, llama.cpp): free and outside every budget,
unless the user prices them or counts them.

A local provider serves any model name it is asked for, at the price row
:func:`local_price_row` makes: zero, or the user's own prices from the provider's options
(``{"price": {"input": nano, "output": nano}}``, nano-dollars per 1M tokens), so its calls are
metered (tokens and a ledger row) all the same. ``{"budgeted": true}`` counts them against
budgets like any provider's; without it no budget counter is held for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from aiwallet.domain.catalog import PriceRow, price_per_m_to_nano
from aiwallet.domain.errors import CatalogError, InvalidInput


def local_price(options: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """The user's (input, output) prices in nano-dollars per 1M tokens; None: free."""
    price = (options or {}).get("price")
    if not isinstance(price, Mapping):
        return None
    inp, out = price.get("input"), price.get("output")
    if not _nano(inp) or not _nano(out):
        return None
    assert isinstance(inp, int) and isinstance(out, int)
    return inp, out


def _nano(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_budgeted(options: Mapping[str, Any] | None) -> bool:
    """Whether the user counts this local provider against budgets."""
    return (options or {}).get("budgeted") is True


def local_price_row(provider: str, model: str, options: Mapping[str, Any] | None) -> PriceRow:
    """The price row of ``model`` at local provider ``provider`` (any name is served)."""
    prices = local_price(options)
    inp, out = prices if prices is not None else (0, 0)
    ref = f"local:{provider}/{model}"
    if prices is not None:
        ref = f"{ref}@in={inp},out={out}"
    return PriceRow(provider=provider, model=model, name=model, input=inp, output=out, ref=ref)


def parse_price_per_m(text: str, what: str) -> int:
    """A price the user typed in USD per 1M tokens (``0.15``) → nano-dollars per 1M."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidInput(
            f"{what} {text!r} is not a price; write USD per 1M tokens, such as 0.15"
        ) from None
    try:
        return price_per_m_to_nano(value, what)
    except CatalogError:
        raise InvalidInput(
            f"{what} {text!r} is not a usable price; write a non-negative number of USD per "
            "1M tokens, such as 0.15"
        ) from None


def local_options(
    current: Mapping[str, Any] | None,
    *,
    price: tuple[int, int] | Literal[False] | None = False,
    budgeted: bool | None = None,
) -> dict[str, Any]:
    """``current`` options with a new price (``(input, output)``; None: free; False: keep)
    and budgeting (None: keep)."""
    out = dict(current or {})
    if price is None:
        out.pop("price", None)
    elif isinstance(price, tuple):
        out["price"] = {"input": price[0], "output": price[1]}
    if budgeted is True:
        out["budgeted"] = True
    elif budgeted is False:
        out.pop("budgeted", None)
    return out


def local_notes(options: Mapping[str, Any] | None) -> str:
    """What ``providers list`` says of a local provider's pricing and budgets."""
    priced = local_price(options) is not None
    counted = is_budgeted(options)
    what = "priced" if priced else "free"
    return f"{what}, {'counted in budgets' if counted else 'outside budgets'}"
