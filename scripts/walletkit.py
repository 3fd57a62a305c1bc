"""A real chain for the screenshots of the Wallet page and the payment prompt: the test kit
(``tests/chainkit``: LiteSVM behind a Solana JSON-RPC server, the x402 SDK's facilitator,
an x402 router) on 127.0.0.1, a funded key imported into the wallet, an x402 router paid per
request and a prepaid one, and real payments through a running engine.

Used by ``screenshots.py`` and ``prompt_screenshots.py`` inside their child processes (the
kit is on the path: ``shotkit.child_env`` puts ``tests/`` there)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from aiwallet.domain.chains import DEVNET, MAINNET, Network
from aiwallet.domain.money import parse_budget_spec, usd_to_nano
from aiwallet.service import Wallet

ROUTER = "x402-router"  # paid per request
PREPAID = "credit-router"  # paid ahead by top-ups
PRICE = 10_000  # $0.01 a request
FUNDS = 12_500_000  # the wallet's USDC: $12.50
AGENT = "research-agent"  # the app that pays


def start_chain(network: Network | None = None) -> Any:
    """A running ``ChainKit`` on devnet or ``network`` (stop it with ``.stop()``)."""
    from chainkit import ChainKit

    return ChainKit(network=network or DEVNET, price_atomic=PRICE).start()


def prepare(wallet: Wallet, kit: Any, *, routers: bool = True) -> str:
    """Fund a key on the kit's chain, import it, point the wallet at the kit's RPC (on the
    kit's network) and add the routers (at the kit's router); the payer's address."""
    payer = kit.new_payer(sol=25_000_000, usdc_atomic=FUNDS)
    wallet.solana.import_key(str(payer), replace=True)
    wallet.solana.set_network(kit.network.id, kit.rpc.url)
    if routers:
        for name, prepaid in ((ROUTER, False), (PREPAID, True)):
            wallet.add_provider(
                name, kind="x402", api_key=None, base_url=kit.router.url + "/v1",
                prepaid=prepaid, replace=wallet.providers.find(name) is not None,
            )  # fmt: skip
    return str(payer.pubkey())


def allow_payee(wallet: Wallet, kit: Any) -> None:
    """Pay the kit's router without asking (as after "Always pay this payee")."""
    payee = f"{wallet.solana.network().caip2}:{kit.payee.pubkey()}"
    wallet.consent_rules.add("payee", payee, "allow", note="screenshots")


def pay_history(wallet: Wallet, kit: Any, url: str) -> None:
    """Real payments through the engine at ``url`` (blocking: call it from a thread): three
    paid requests, one the router failed to settle, and a top-up of the prepaid router."""
    import openai

    taken = {a.name for a in wallet.apps.list()}
    name = AGENT if AGENT not in taken else f"{AGENT}-2"
    _, key = wallet.create_app(name, budget=parse_budget_spec("5/day"))
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)

    def ask() -> None:
        with contextlib.suppress(openai.APIStatusError):  # the failed settlement: refused
            client.chat.completions.create(
                model=f"{ROUTER}/gpt-4o-mini",
                messages=[{"role": "user", "content": "Summarise this week's papers"}],
            )

    for _ in range(2):
        ask()
    kit.router.settle_fails = True
    ask()
    kit.router.settle_fails = False
    wallet.solana.topup(PREPAID, usd_to_nano("2.00"))
    ask()


def in_thread(fn: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


def to_mainnet(wallet: Wallet, kit: Any, payer: str) -> None:
    """The same key on mainnet (still the kit's RPC), holding mainnet USDC."""
    kit.rpc.mint_to(payer, MAINNET.usdc_mint, 48_250_000)
    wallet.solana.set_network("mainnet", kit.rpc.url)
