"""A wallet paying an x402 router on a real offline chain: the engine rig (engine/conftest.py)
plus a ChainKit (LiteSVM behind JSON-RPC, the SDK's facilitator, the test router), the
wallet's Solana key imported from a funded payer, and the router added as providers."""

from __future__ import annotations

from dataclasses import dataclass

from solders.keypair import Keypair

from aiwallet.domain.money import parse_budget_spec
from aiwallet.engine.payflow import payee_id
from aiwallet.payments.keys import SolanaKey
from chainkit import ChainKit
from engine.conftest import Rig, make_rig
from leakscan import register_key

MODEL = "router-model"  # a model only the router prices: the 402 names its price
OPENAI_MODEL = f"router/{MODEL}"
ANTHROPIC_MODEL = f"router-messages/{MODEL}"


@dataclass
class PayRig:
    rig: Rig
    kit: ChainKit
    payer: Keypair

    @property
    def wallet(self):
        return self.rig.wallet

    def app(self, name: str = "paid", budget: str | None = "2/day") -> str:
        return self.rig.app(name, budget=budget)

    def payer_usdc(self) -> int:
        return self.kit.usdc(self.payer)

    def payee_usdc(self) -> int:
        return self.kit.usdc(self.kit.payee)

    def allow_payee(self) -> None:
        pid = payee_id(self.kit.network.caip2, str(self.kit.payee.pubkey()))
        self.wallet.consent_rules.add("payee", pid, "allow")

    def x402_ledger(self) -> list[dict]:
        return [r for r in self.rig.ledger_rows() if r["token_source"] == "x402"]

    def close(self) -> None:
        self.rig.engine.stop()
        self.rig.wallet.close()


def make_pay_rig(tmp_path, fake, kit: ChainKit, *, usdc_atomic: int = 5_000_000, **kw) -> PayRig:
    payer = kit.new_payer(usdc_atomic=usdc_atomic)
    secret = SolanaKey(payer).secret_text()
    register_key(secret)  # the leak scan looks for it in every file and answer
    rig = make_rig(tmp_path, fake, **kw)
    w = rig.wallet
    w.solana.set_network("devnet", kit.rpc.url)
    w.solana.import_key(secret)
    w.add_provider("router", kind="x402", api_key=None, base_url=kit.router.url + "/v1")
    w.add_provider("router-messages", kind="x402-anthropic", api_key=None, base_url=kit.router.url)
    w.notify_engine()
    return PayRig(rig, kit, payer)


def budget(text: str):
    return parse_budget_spec(text)
