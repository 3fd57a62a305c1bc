"""``aiwallet providers subkeys``: per-app provider keys (the second budget layer), and
``aiwallet providers balances`` / key age; registered under ``aiwallet providers``."""

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
from aiwallet.domain.money import format_usd


def _usd(nano: int | None) -> str:
    return "-" if nano is None else format_usd(nano, places=None)


@click.command("subkeys")
@click.argument("name")
@click.option(
    "--on",
    "turn_on",
    is_flag=True,
    help="Turn per-app keys on with the provider's management key (asked hidden, or piped).",
)
@click.option(
    "--management-key-env",
    metavar="VAR",
    help="Turn per-app keys on, reading the management key from this environment variable.",
)
@click.option(
    "--off", "turn_off", is_flag=True, help="Delete every per-app key at the provider; stop."
)
@json_option
@pass_state
def subkeys(
    state: Context,
    name: str,
    turn_on: bool,
    management_key_env: str | None,
    turn_off: bool,
    as_json: bool,
) -> None:
    """Per-app keys of provider NAME (OpenRouter): one key per app, capped at the app's budget
    by the provider itself. Without options: each key's cap and what the provider and the
    wallet count of its use this window."""
    keys = state.wallet.provider_keys
    if turn_off:
        n = keys.disable(name)
        emit_json({"provider": name, "deleted": n}) if as_json else click.echo(
            f"Deleted {n} per-app key{'s' if n != 1 else ''} at {term(name)}; its own key "
            "serves every app again."
        )
        return
    if turn_on or management_key_env:
        secret = read_secret(management_key_env, f"{name} management key")
        keys.enable(name, secret)
        if not as_json:
            click.echo(
                f"Per-app keys are on for {term(name)}: the engine makes one per app, capped "
                "at its budget (the management key is in the "
                f"{term(state.wallet.vault_status().description)})."
            )
    views = keys.report(name)
    if as_json:
        items = [v.to_json() for v in views]
        emit_json({"provider": name, "on": keys.enabled(name), "keys": items})
        return
    if turn_on or management_key_env:
        return
    if not keys.enabled(name):
        click.echo(f"Per-app keys are off for {term(name)}; turn them on with --on.")
        return
    rows = [
        [
            v.app,
            v.key_hint or "-",
            _usd(v.limit_nano) + (f" {v.limit_reset}" if v.limit_reset else ""),
            "disabled" if v.disabled else "active",
            _usd(v.provider_used_nano),
            _usd(v.wallet_used_nano),
            v.problem or "",
        ]
        for v in views
    ]
    emit_table(rows, ["app", "key", "cap", "state", f"{name} says", "wallet says", "problem"])


@click.command("balances")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait per provider.")
@json_option
@pass_state
def balances(state: Context, timeout: float, as_json: bool) -> None:
    """What each provider that publishes a balance says is left (OpenRouter, Vercel AI
    Gateway, DeepSeek); the others publish none."""
    found = asyncio.run(state.wallet.provider_balances(timeout_s=timeout))
    published = {b.provider for b in found}
    others = [p.name for p in state.wallet.list_providers() if p.name not in published]
    if as_json:
        emit_json({"balances": [b.to_json() for b in found], "not_published": others})
        return
    rows = [
        [
            b.provider,
            _usd(b.left_nano),
            _usd(b.limit_nano),
            _usd(b.credits_nano),
            _usd(b.used_nano),
            b.problem or "",
        ]
        for b in found
    ]
    rows += [[name, "not published", "", "", "", ""] for name in others]
    emit_table(rows, ["provider", "left", "key limit", "credits", "used", "problem"])
