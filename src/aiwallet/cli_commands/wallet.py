"""``aiwallet wallet``: the user's Solana wallet (key, network, balances), x402 payments and
prepaid routers' top-ups."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from aiwallet.cli_commands.common import (
    Context,
    emit_json,
    emit_table,
    json_option,
    pass_state,
    term,
)
from aiwallet.domain.chains import USDC_DECIMALS, format_atomic, format_sol
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import format_usd, parse_usd

group = click.Group("wallet", help="Your Solana wallet: key, network, balances, x402 payments.")


def _network_line(state: Context) -> str:
    net = state.wallet.solana.network()
    warn = "  ** mainnet: payments are REAL MONEY **" if net.real_money else ""
    return f"{net.describe()}{warn}"


@group.command("create")
@click.option("--replace", is_flag=True, help="Replace the key the wallet holds (it is gone).")
@json_option
@pass_state
def create(state: Context, replace: bool, as_json: bool) -> None:
    """Create a new Solana keypair in the secret store and print its address."""
    address = state.wallet.solana.create(replace=replace)
    if as_json:
        emit_json(state.wallet.solana.status().to_json())
        return
    click.echo(f"Created a Solana wallet: {address}")
    click.echo(f"Network: {_network_line(state)}")
    click.echo("Its secret key is in the secret store only; fund the address to pay x402 routers.")


@group.command("import")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A Solana CLI keypair file (JSON list of 64 numbers).",
)
@click.option("--replace", is_flag=True, help="Replace the key the wallet holds (it is gone).")
@json_option
@pass_state
def import_key(state: Context, path: Path | None, replace: bool, as_json: bool) -> None:
    """Import a keypair: --file KEYPAIR.json, or a base58 secret on stdin (or typed, hidden)."""
    if path is not None:
        text = path.read_text()
    elif not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        text = click.prompt("Base58 secret key", hide_input=True)
    address = state.wallet.solana.import_key(text.strip(), replace=replace)
    if as_json:
        emit_json(state.wallet.solana.status().to_json())
        return
    click.echo(f"Imported the Solana wallet {address}")
    click.echo(f"Network: {_network_line(state)}")


@group.command("address")
@json_option
@pass_state
def address(state: Context, as_json: bool) -> None:
    """Print the wallet's address, network and per-payment cap."""
    st = state.wallet.solana.status()
    if as_json:
        emit_json(st.to_json())
        return
    if st.address is None:
        raise InvalidInput("this wallet holds no Solana key yet: 'aiwallet wallet create'")
    click.echo(st.address)
    click.echo(f"Network: {_network_line(state)}")
    click.echo(f"Largest single payment: {format_usd(st.cap_nano, places=None)}")
    click.echo(f"Explorer: {st.network.address_url(st.address)}")


@group.command("network")
@click.argument("network", required=False, type=click.Choice(["mainnet", "devnet"]))
@click.option("--rpc-url", help="A custom RPC URL for that network (default: the public one).")
@json_option
@pass_state
def network(state: Context, network: str | None, rpc_url: str | None, as_json: bool) -> None:
    """Show the network, or choose mainnet or devnet (and an RPC URL)."""
    if network is not None:
        state.wallet.solana.set_network(network, rpc_url)
    elif rpc_url is not None:
        raise InvalidInput("name the network with the RPC URL: 'wallet network devnet --rpc-url U'")
    st = state.wallet.solana.status()
    if as_json:
        emit_json(st.to_json())
        return
    click.echo(f"Network: {_network_line(state)}")
    click.echo(f"USDC mint: {st.network.usdc_mint}")


@group.command("balance")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the RPC.")
@json_option
@pass_state
def balance(state: Context, timeout: float, as_json: bool) -> None:
    """SOL, USDC and added tokens of the wallet's address, read from the network."""
    solana = state.wallet.solana
    st = solana.status()
    if st.address is None:
        raise InvalidInput("this wallet holds no Solana key yet: 'aiwallet wallet create'")
    found = solana.balances_blocking(timeout_s=timeout)
    assert found is not None
    if as_json:
        emit_json({**st.to_json(), **found.to_json()})
        return
    click.echo(f"{st.address} on {_network_line(state)}")
    if found.problem:
        click.echo(f"Could not read the balances: {term(found.problem)}")
        return
    rows = [["SOL", format_sol(found.sol_lamports).removesuffix(" SOL"), "native"]]
    for mint, tb in found.tokens.items():
        name = "USDC" if mint == st.network.usdc_mint else mint
        rows.append([name, format_atomic(tb.amount_atomic, tb.decimals), mint])
    emit_table(rows, ["token", "amount", "mint"])


@group.command("payments")
@click.option("--limit", default=20, show_default=True, help="How many, newest first.")
@json_option
@pass_state
def payments(state: Context, limit: int, as_json: bool) -> None:
    """x402 payments the wallet made (requests and top-ups), with their transactions."""
    found = state.wallet.solana.payments(limit)
    net = state.wallet.solana.network()
    if as_json:
        emit_json(
            [
                {**p.to_json(), "explorer": net.tx_url(p.tx_signature) if p.tx_signature else None}
                for p in found
            ]
        )
        return
    rows = [
        [
            p.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            p.kind,
            p.provider,
            f"{format_atomic(p.amount_atomic, USDC_DECIMALS)} USDC",
            p.state + (" (answer failed)" if p.flagged else ""),
            p.tx_signature or "-",
        ]
        for p in found
    ]
    emit_table(rows, ["when", "for", "provider", "amount", "state", "transaction"])


@group.command("topup")
@click.argument("provider")
@click.argument("amount")
@json_option
@pass_state
def topup(state: Context, provider: str, amount: str, as_json: bool) -> None:
    """Top up a prepaid x402 router's credit by AMOUNT dollars (paid in USDC now)."""
    nano = parse_usd(amount)
    w = state.wallet
    if w.ledger_kept_elsewhere():  # the running engine grants it, from its live counters
        result = w.engine_call(
            "POST", "/admin/v1/wallet/topup", {"provider": provider, "amount_nano": nano}
        )
    else:
        result = w.solana.topup(provider, nano).to_json()
    if as_json:
        emit_json(result)
        return
    p = result["payment"]
    click.echo(
        f"Paid {format_usd(int(p['amount_nano']), places=None)} to {term(provider)} "
        f"({p['state']}; transaction {p['tx_signature'] or 'not yet known'})"
    )
    balance = result["router_balance_atomic"]
    if balance is not None:
        click.echo(f"Its credit is now {format_atomic(int(balance), USDC_DECIMALS)} USDC")


@group.command("credit")
@click.argument("provider")
@json_option
@pass_state
def credit(state: Context, provider: str, as_json: bool) -> None:
    """What a prepaid x402 router says is left of its credit."""
    found = state.wallet.solana.router_balance(provider)
    if as_json:
        emit_json(found)
        return
    atomic = found.get("amount_atomic")
    shown = f"{format_atomic(atomic, USDC_DECIMALS)} USDC" if isinstance(atomic, int) else "?"
    click.echo(f"{term(provider)}: {shown}")


@group.command("tokens")
@click.option("--add", "add", multiple=True, metavar="MINT", help="Show this SPL token too.")
@click.option("--remove", "remove", multiple=True, metavar="MINT", help="Stop showing it.")
@json_option
@pass_state
def tokens(state: Context, add: tuple[str, ...], remove: tuple[str, ...], as_json: bool) -> None:
    """The SPL tokens shown beside SOL and USDC (balances and the Wallet page)."""
    solana = state.wallet.solana
    if add or remove:
        kept = [m for m in solana.status().tokens if m not in set(remove)]
        solana.set_tokens([*kept, *add])
    shown = solana.status().tokens
    if as_json:
        emit_json(list(shown))
        return
    click.echo("\n".join(shown) if shown else "No tokens added (SOL and USDC are always shown).")
