"""What the wallet adds to an x402 payment: one paid chat completion through the wallet (its
policy, payee rule, reservation grown, signing off-loop, the payment recorded before the
retry, billed in the ledger) against the same call paid by the x402 SDK's own httpx client
straight to the router, on the same offline chain (LiteSVM), facilitator and router, same run.
An unpaid call through the wallet to the router's fake upstream is the floor.

    PYTHONPATH=src:tests python bench/paid.py [--calls 100]

Prints median and p95 in milliseconds. Bounded: ``--calls`` (20 to 1,000) sequential calls of
each, 30 s timeout each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from benchkit import bench_env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

CHAT = {"model": "router/router-model", "messages": [{"role": "user", "content": "hi"}]}


def line(name: str, ms: list[float]) -> str:
    p95 = statistics.quantiles(ms, n=20)[-1]
    return f"{name:<52} median {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms"


async def sdk_direct(kit, payer, calls: int) -> list[float]:
    from x402 import x402Client
    from x402.http.clients.httpx import x402HttpxClient
    from x402.mechanisms.svm import KeypairSigner
    from x402.mechanisms.svm.exact import register_exact_svm_client

    client = x402Client()
    register_exact_svm_client(client, KeypairSigner(payer), rpc_url=kit.rpc.url)
    out = []
    body = {**CHAT, "model": "router-model"}
    async with x402HttpxClient(client, timeout=30) as http:
        for _ in range(calls):
            start = time.perf_counter()
            resp = await http.post(kit.router.url + "/v1/chat/completions", json=body)
            assert resp.status_code == 200, resp.text
            out.append((time.perf_counter() - start) * 1000)
    return out


def through_wallet(url: str, key: str, body: dict, calls: int) -> list[float]:
    out = []
    with httpx.Client(timeout=30) as http:
        for _ in range(calls):
            start = time.perf_counter()
            resp = http.post(
                url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            )
            assert resp.status_code == 200, resp.text
            out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100)
    calls = min(max(parser.parse_args().calls, 20), 1000)
    with tempfile.TemporaryDirectory() as tmp:
        bench_env(Path(tmp))
        from aiwallet.domain.money import parse_budget_spec
        from aiwallet.engine.payflow import payee_id
        from aiwallet.paths import DataDir
        from aiwallet.payments.keys import SolanaKey
        from aiwallet.service import Wallet
        from chainkit import ChainKit
        from fakeupstream import OPENAI_KEY

        with ChainKit(price_atomic=100) as kit:
            payer = kit.new_payer(usdc_atomic=10_000_000)
            sdk_payer = kit.new_payer(usdc_atomic=10_000_000)
            wallet = Wallet.open(DataDir(Path(tmp) / "wallet"))
            wallet.solana.set_network("devnet", kit.rpc.url)
            wallet.solana.import_key(SolanaKey(payer).secret_text())
            wallet.add_provider(
                "router", kind="x402", api_key=None, base_url=kit.router.url + "/v1"
            )
            wallet.add_provider(
                "plain", kind="openai-compatible", api_key=OPENAI_KEY,
                base_url=kit.upstream.base_url + "/v1",
            )  # fmt: skip
            wallet.consent_rules.add(
                "payee", payee_id(kit.network.caip2, str(kit.payee.pubkey())), "allow"
            )
            _, key = wallet.create_app("bench", budget=parse_budget_spec("100/day"))
            engine = wallet.new_engine(port=0)
            engine.start()
            try:
                through_wallet(engine.url, key, CHAT, 5)  # warm both paths
                asyncio.run(sdk_direct(kit, sdk_payer, 5))
                results = {
                    "floor: unpaid call through the wallet": through_wallet(
                        engine.url, key, {**CHAT, "model": "plain/gpt-4o-mini"}, calls
                    ),
                    "paid by the SDK's own client, straight to the router": asyncio.run(
                        sdk_direct(kit, sdk_payer, calls)
                    ),
                    "paid by the wallet (policy, consent, ledger)": through_wallet(
                        engine.url, key, CHAT, calls
                    ),
                }
            finally:
                engine.stop()
                wallet.close()
    print(f"{calls} sequential calls each")
    for name, ms in results.items():
        print(line(name, ms))
    sdk = statistics.median(results["paid by the SDK's own client, straight to the router"])
    ours = statistics.median(results["paid by the wallet (policy, consent, ledger)"])
    print(f"wallet-paid minus SDK-paid (median): {ours - sdk:+.2f} ms ({ours / sdk:.2f}x)")


if __name__ == "__main__":
    main()
