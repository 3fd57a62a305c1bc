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


@group.command("connect")
@click.argument("provider", type=click.Choice(["openrouter"]))
@click.option(
    "--name", default="openrouter", show_default=True, help="The provider's name in the wallet."
)
@click.option("--replace", is_flag=True, help="Replace the key of an existing provider NAME.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=3000,
    show_default=True,
    help="Loopback port for the browser's callback (taken: any free one; 0: any free one).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(1, 3600),
    default=300.0,
    show_default=True,
    help="Seconds to wait for the sign-in in the browser.",
)
@click.option("--no-browser", is_flag=True, help="Only print the URL to open in a browser.")
@click.option("--auth-url", metavar="URL", help="OpenRouter's sign-in page (for testing).")
@click.option("--api-base", metavar="URL", help="OpenRouter's API base URL (for testing).")
@json_option
@pass_state
def connect(
    state: Context,
    provider: str,
    name: str,
    replace: bool,
    port: int,
    timeout: float,
    no_browser: bool,
    auth_url: str | None,
    api_base: str | None,
    as_json: bool,
) -> None:
    """Connect PROVIDER (openrouter) by signing in in the browser; its key goes to the vault.

    Ctrl-C cancels: nothing is stored."""
    from aiwallet.provider_signin import connect_openrouter
    from aiwallet.upstreams.openrouter_signin import SignInCancelled

    def show_and_open(url: str) -> object:
        # stderr: stdout stays the result alone (the --json document)
        click.echo(
            "Sign in to OpenRouter in the browser to connect it. If no browser opens,", err=True
        )
        click.echo(f"open this URL on this computer:\n\n  {url}\n", err=True)
        if no_browser:
            return False
        import webbrowser

        return webbrowser.open(url)

    try:
        info = connect_openrouter(
            state.wallet,
            name=name,
            replace=replace,
            open_browser=show_and_open,
            auth_url=auth_url,
            api_base=api_base,
            port=port,
            timeout_s=timeout,
        )
    except KeyboardInterrupt:
        raise SignInCancelled("the OpenRouter sign-in was cancelled; nothing was stored") from None
    if as_json:
        emit_json(info.to_json())
        return
    click.echo(
        f"Connected OpenRouter as provider {term(info.name)}; key "
        f"{term(info.key_hint or '(none)')} is in the "
        f"{term(state.wallet.vault_status().description)}."
    )
