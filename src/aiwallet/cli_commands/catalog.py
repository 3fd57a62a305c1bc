"""``aiwallet catalog``: what models cost, and refreshing the prices."""

from __future__ import annotations

import click

from aiwallet.cli_commands.common import (
    Context,
    emit_json,
    emit_table,
    json_option,
    pass_state,
    term,
)
from aiwallet.domain.catalog import PriceRow
from aiwallet.domain.money import format_usd


def _price(nano_per_m: int | None) -> str:
    return "-" if nano_per_m is None else format_usd(nano_per_m, places=None)


def _limit(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


@click.group("catalog")
def group() -> None:
    """The pricing catalog (USD per 1M tokens, from models.dev)."""


@group.command("list")
@click.option("--provider", help="Only this provider's models (e.g. openai).")
@json_option
@pass_state
def list_(state: Context, provider: str | None, as_json: bool) -> None:
    """List priced models."""
    cat = state.wallet.catalog
    rows: list[PriceRow] = (
        cat.models_of(provider) if provider else sorted(cat, key=lambda r: (r.provider, r.model))
    )
    if as_json:
        emit_json([r.to_json() for r in rows])
        return
    emit_table(
        [
            [
                r.provider,
                r.model,
                _price(r.input),
                _price(r.output),
                _price(r.cache_read),
                _limit(r.context_limit),
            ]
            for r in rows
        ],
        ["provider", "model", "input/1M", "output/1M", "cache read/1M", "context"],
    )
    click.echo(f"{len(rows)} models; source: {cat.source}")


@group.command("show")
@click.argument("model")
@json_option
@pass_state
def show(state: Context, model: str, as_json: bool) -> None:
    """Show the prices and limits of MODEL (``model`` or ``provider/model``)."""
    cat = state.wallet.catalog
    row = cat.lookup(model)
    if as_json:
        emit_json(row.to_json())
        return
    click.echo(f"{term(row.provider)}/{term(row.model)}  ({term(row.name)})")
    for label, value in (
        ("input", row.input),
        ("output", row.output),
        ("cache read", row.cache_read),
        ("cache write", row.cache_write),
        ("reasoning", row.reasoning),
    ):
        fallback = {"reasoning": "billed as output", "cache write": "1.25 × input"}
        text = (
            f"{_price(value)} per 1M tokens"
            if value is not None
            else fallback.get(label, "billed as input")
        )
        click.echo(f"  {label + ':':13} {text}")
    for tier in row.tiers:
        click.echo(
            f"  above {tier.threshold_tokens:,} prompt tokens: input {_price(tier.input)}, "
            f"output {_price(tier.output)} per 1M"
        )
    click.echo(f"  context:      {_limit(row.context_limit)} tokens")
    click.echo(f"  max output:   {_limit(row.output_limit)} tokens")
    click.echo(f"  price row:    {term(row.ref)}")
    others = [r.provider for r in cat.candidates(row.model) if r.provider != row.provider]
    if others:
        click.echo(f"  also sold by: {term(', '.join(others))} (use provider/model)")


@group.command("update")
@click.option(
    "--from",
    "source",
    metavar="URL|FILE",
    help="A models.dev api.json URL or saved file (default: https://models.dev/api.json).",
)
@json_option
@pass_state
def update(state: Context, source: str | None, as_json: bool) -> None:
    """Refresh prices; a broken or partial file is refused and the old catalog kept."""
    result = state.wallet.update_catalog(source)
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(
        f"Catalog updated from {term(result.source)}: {result.models} models from "
        f"{result.providers} providers ({result.added} new, {result.removed} gone, "
        f"{result.price_changes} price changes)."
    )


@group.command("openrouter")
@click.option("--provider", help="Through this OpenRouter provider (default: the first one).")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait.")
@json_option
@pass_state
def openrouter(state: Context, provider: str | None, timeout: float, as_json: bool) -> None:
    """Refresh OpenRouter's own price list (GET /api/v1/models): it prices OpenRouter's
    models before the catalog's snapshot of them. A broken list changes nothing."""
    result = state.wallet.refresh_openrouter_prices(provider, timeout_s=timeout)
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(
        f"OpenRouter's list ({term(result.provider)}): {result.models} priced models, "
        f"saved to {term(result.written_to)}."
    )
