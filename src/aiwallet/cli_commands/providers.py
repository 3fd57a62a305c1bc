"""``aiwallet providers``: add, list, test and remove provider keys."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

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
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.gateways import CLOUDFLARE_ROOT
from aiwallet.domain.local_servers import local_options, local_price, parse_price_per_m
from aiwallet.domain.money import format_usd
from aiwallet.domain.providers import KINDS
from aiwallet.preferences import KEY_ROTATION_DAYS
from aiwallet.service import ProviderInfo

if TYPE_CHECKING:
    from aiwallet.service import ProviderInfo


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
@click.option(
    "--base-url",
    help="Base URL (required for *-compatible kinds; for cloudflare* kinds the root, default "
    f"{CLOUDFLARE_ROOT}).",
)
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
@click.option("--account-id", metavar="ID", help="Cloudflare account id (cloudflare* kinds).")
@click.option("--gateway-id", metavar="ID", help="Cloudflare AI Gateway id (cloudflare* kinds).")
@click.option(
    "--gateway-token-env",
    metavar="VAR",
    help="An authenticated Cloudflare gateway's token, from this environment variable.",
)
@click.option(
    "--gateway-token",
    "ask_gateway_token",
    is_flag=True,
    help="Ask for an authenticated Cloudflare gateway's token (hidden prompt).",
)
@click.option(
    "--no-key",
    is_flag=True,
    help="Store no provider key: the Cloudflare gateway holds it (needs a gateway token).",
)
@click.option("--price-input", metavar="USD_PER_1M", help="Price a local server's input tokens.")
@click.option("--price-output", metavar="USD_PER_1M", help="Price a local server's output tokens.")
@click.option(
    "--budgeted",
    is_flag=True,
    help="Count a local server's calls against budgets (they are outside every budget else).",
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
    account_id: str | None,
    gateway_id: str | None,
    gateway_token_env: str | None,
    ask_gateway_token: bool,
    no_key: bool,
    price_input: str | None,
    price_output: str | None,
    budgeted: bool,
    as_json: bool,
) -> None:
    """Add a provider NAME and store its key in the secret store."""
    kind_id = kind or name
    pkind, _ = state.wallet.check_new_provider(
        name, kind=kind_id, base_url=base_url, replace=replace,
        account_id=account_id, gateway_id=gateway_id,
    )  # fmt: skip
    wants_token = bool(gateway_token_env) or ask_gateway_token
    if wants_token and pkind.gateway is None:
        raise InvalidInput("--gateway-token and --gateway-token-env are for cloudflare* kinds")
    if no_key and not (pkind.gateway and wants_token):
        raise InvalidInput(
            "--no-key is for cloudflare* kinds with a gateway token (--gateway-token or "
            "--gateway-token-env), whose gateway holds the provider's key"
        )
    options = _price_options(price_input, price_output, budgeted)
    key_from_stdin = pkind.needs_key and not no_key and not api_key_env
    if key_from_stdin and ask_gateway_token and not gateway_token_env and not sys.stdin.isatty():
        raise InvalidInput(
            "both the key and the gateway token would be read from stdin; give one of them "
            "with --api-key-env VAR or --gateway-token-env VAR"
        )
    key = (
        read_secret(api_key_env, f"{pkind.label} API key")
        if pkind.needs_key and not no_key
        else None
    )
    token = read_secret(gateway_token_env, "AI Gateway token") if wants_token else None
    info = state.wallet.add_provider(
        name, kind=kind_id, api_key=key, base_url=base_url, replace=replace, prepaid=prepaid,
        options=options, gateway_token=token, account_id=account_id, gateway_id=gateway_id,
    )  # fmt: skip
    if as_json:
        emit_json(info.to_json())
        return
    notes = f"; {term(info.notes)}" if info.notes else ""
    click.echo(
        f"{'Replaced' if replace else 'Added'} provider {term(info.name)} ({pkind.label}, "
        f"{term(info.base_url)}{notes}); key {term(info.key_hint or '(none)')} is in the "
        f"{term(state.wallet.vault_status().description)}."
    )


def _price_options(
    price_input: str | None, price_output: str | None, budgeted: bool
) -> dict[str, Any] | None:
    """A local server's options from ``--price-input/--price-output`` and ``--budgeted``."""
    price = _price_pair(price_input, price_output)
    if price is None and not budgeted:
        return None
    return local_options(None, price=price or False, budgeted=True if budgeted else None)


def _price_pair(price_input: str | None, price_output: str | None) -> tuple[int, int] | None:
    if price_input is None and price_output is None:
        return None
    if price_input is None or price_output is None:
        raise InvalidInput("give both --price-input and --price-output (USD per 1M tokens)")
    return (
        parse_price_per_m(price_input, "--price-input"),
        parse_price_per_m(price_output, "--price-output"),
    )


@group.command("set")
@click.argument("name")
@click.option("--price-input", metavar="USD_PER_1M", help="Price the input tokens.")
@click.option("--price-output", metavar="USD_PER_1M", help="Price the output tokens.")
@click.option("--free", is_flag=True, help="Free again (no price; the default).")
@click.option(
    "--budgeted/--unbudgeted",
    default=None,
    help="Count its calls against budgets, or keep them outside every budget (the default).",
)
@json_option
@pass_state
def set_(
    state: Context,
    name: str,
    price_input: str | None,
    price_output: str | None,
    free: bool,
    budgeted: bool | None,
    as_json: bool,
) -> None:
    """Change how a server on this machine (ollama, lmstudio, llamacpp) is billed."""
    price = _price_pair(price_input, price_output)
    if free and price is not None:
        raise InvalidInput("--free and --price-input/--price-output contradict each other")
    if not free and price is None and budgeted is None:
        raise InvalidInput(
            "nothing to change; give --price-input and --price-output, --free, or "
            "--budgeted/--unbudgeted"
        )
    info = state.wallet.set_local_pricing(
        name, price=None if free else (price or False), budgeted=budgeted
    )
    if as_json:
        emit_json(info.to_json())
    else:
        click.echo(f"Provider {term(info.name)}: {term(info.notes)}{_prices_text(info)}.")


def _prices_text(info: ProviderInfo) -> str:
    price = local_price(info.options)
    if price is None:
        return ""
    inp, out = (format_usd(nano, places=None) for nano in price)
    return f" (input {inp}, output {out} per 1M tokens)"


@group.command("list")
@json_option
@pass_state
def list_(state: Context, as_json: bool) -> None:
    """List configured providers (keys are never shown, only a hint)."""
    items = state.wallet.list_providers()
    rotate_after = state.wallet.pref(KEY_ROTATION_DAYS)
    health = {h["provider"]: h for h in state.wallet.provider_health() or []}
    if as_json:
        emit_json(
            [
                {
                    **p.to_json(),
                    "rotation_due": p.rotation_due(rotate_after),
                    "health": health.get(p.name),  # None: no engine runs to say
                }
                for p in items
            ]
        )
        return
    rows = [
        [
            p.name,
            p.kind,
            p.base_url,
            p.key_hint or "-",
            _age(p, rotate_after),
            "-" if p.last_test_ok is None else ("ok" if p.last_test_ok else "failed"),
            health_text(health.get(p.name)),
            ", ".join(n for n in (p.notes, "per-app keys" if p.subkeys else "") if n) or "-",
        ]
        for p in items
    ]
    emit_table(rows, ["name", "kind", "base url", "key", "key age", "last test", "health", "notes"])
    due = [p.name for p in items if p.rotation_due(rotate_after)]
    if due:
        click.echo(
            f"Rotate the key of {', '.join(term(n) for n in due)}: older than "
            f"{rotate_after} days ('aiwallet providers add NAME --replace').",
            err=True,
        )


def health_text(health: dict[str, Any] | None) -> str:
    """A provider's breaker as the health column says it: ok, open until HH:MM:SS (local
    time), probing; ``-`` when no engine runs to say."""
    if health is None:
        return "-"
    word = str(health.get("health", "-"))
    retry_at = health.get("retry_at")
    if word == "open" and isinstance(retry_at, str):
        try:
            until = datetime.fromisoformat(retry_at).astimezone()
        except ValueError:
            return word
        return f"open until {until:%H:%M:%S}"
    return word


def _age(p: ProviderInfo, rotate_after: int) -> str:
    if p.key_age_days is None:
        return "-"
    days = f"{p.key_age_days} day{'s' if p.key_age_days != 1 else ''}"
    return f"{days} (rotate)" if p.rotation_due(rotate_after) else days


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
