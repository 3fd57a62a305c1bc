"""``aiwallet providers``: add, list, test and remove provider keys."""

from __future__ import annotations

import asyncio

import click

from aiwallet.cli_commands.common import (
    Context,
    emit_json,
    emit_table,
    json_option,
    pass_state,
    read_secret,
    term,
)
from aiwallet.domain.providers import KINDS


@click.group("providers")
def group() -> None:
    """Provider keys (OpenAI, Anthropic, OpenRouter, any OpenAI-compatible server...)."""


@group.command("add")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(sorted(KINDS)),
    help="What kind of provider (default: the NAME when it is a kind, e.g. 'openai').",
)
@click.option("--base-url", help="Base URL (required for *-compatible kinds).")
@click.option(
    "--api-key-env",
    metavar="VAR",
    help="Read the key from this environment variable (else stdin, else a hidden prompt).",
)
@click.option("--replace", is_flag=True, help="Replace the key of an existing provider (rotate).")
@click.option(
    "--prepaid",
    is_flag=True,
    help="An x402 router paid ahead: top it up with 'aiwallet wallet topup NAME AMOUNT'.",
)
@json_option
@pass_state
def add(
    state: Context,
    name: str,
    kind: str | None,
    base_url: str | None,
    api_key_env: str | None,
    replace: bool,
    prepaid: bool,
    as_json: bool,
) -> None:
    """Add a provider NAME and store its key in the secret store."""
    kind_id = kind or name
    pkind, _ = state.wallet.check_new_provider(
        name, kind=kind_id, base_url=base_url, replace=replace
    )
    key = read_secret(api_key_env, f"{pkind.label} API key") if pkind.needs_key else None
    info = state.wallet.add_provider(
        name, kind=kind_id, api_key=key, base_url=base_url, replace=replace, prepaid=prepaid
    )
    if as_json:
        emit_json(info.to_json())
        return
    click.echo(
        f"{'Replaced' if replace else 'Added'} provider {term(info.name)} ({pkind.label}, "
        f"{term(info.base_url)}); key {term(info.key_hint or '(none)')} is in the "
        f"{term(state.wallet.vault_status().description)}."
    )


@group.command("list")
@json_option
@pass_state
def list_(state: Context, as_json: bool) -> None:
    """List configured providers (keys are never shown, only a hint)."""
    items = state.wallet.list_providers()
    if as_json:
        emit_json([p.to_json() for p in items])
        return
    rows = [
        [
            p.name,
            p.kind,
            p.base_url,
            p.key_hint or "-",
            "-" if p.last_test_ok is None else ("ok" if p.last_test_ok else "failed"),
        ]
        for p in items
    ]
    emit_table(rows, ["name", "kind", "base url", "key", "last test"])


@group.command("remove")
@click.argument("name")
@json_option
@pass_state
def remove(state: Context, name: str, as_json: bool) -> None:
    """Remove provider NAME and delete its key from the secret store."""
    state.wallet.remove_provider(name)
    if as_json:
        emit_json({"removed": name})
    else:
        click.echo(f"Removed provider {term(name)} and its key.")


@group.command("test")
@click.argument("name")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait.")
@json_option
@pass_state
def test(state: Context, name: str, timeout: float, as_json: bool) -> None:
    """Check that provider NAME answers and accepts its key."""
    result = asyncio.run(state.wallet.test_provider(name, timeout_s=timeout))
    if as_json:
        emit_json(
            {
                "provider": name,
                "ok": result.ok,
                "status": result.status,
                "latency_ms": result.latency_ms,
                "models": result.models,
                "message": result.message,
            }
        )
    else:
        extra = f", {result.models} models" if result.models is not None else ""
        click.echo(f"{term(name)}: {term(result.message)} ({result.latency_ms} ms{extra})")
    if not result.ok:
        raise SystemExit(1)
