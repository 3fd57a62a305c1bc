"""Seed a data dir with a believable history: several apps with budgets, remembered consent
decisions, providers, and N requests spread over the last D days (priced from the shipped
catalog, so every ledger row carries its price row and token source). Used by the screenshot
script and the GUI benchmark; the engine is not involved, so rows are written in bulk.

    python scripts/seed_demo.py DATA_DIR [--rows 3000] [--days 30]
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from aiwallet.domain.cost import cost_of
from aiwallet.domain.money import parse_budget_spec
from aiwallet.domain.usage import TokenSource, Usage
from aiwallet.domain.windows import window_for
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from aiwallet.store import schema as t
from aiwallet.store.budgets import counter_key
from aiwallet.store.grants import unique_name

APPS = (
    # name, budget, models, share of traffic
    ("research-notebook", "5/day", ["*"], 0.30),
    ("cursor-agent", "40/month", ["anthropic/*", "gpt-4o"], 0.28),
    ("nightly-summarizer", "2/day", ["gpt-4o-mini"], 0.22),
    ("slack-bot", "10/week", ["claude-haiku-4-5", "gpt-4o-mini"], 0.15),
    ("eval-harness", None, ["*"], 0.05),
)
MODELS = (
    ("openai", "gpt-4o-mini", "/v1/chat/completions"),
    ("openai", "gpt-4o", "/v1/chat/completions"),
    ("anthropic", "claude-sonnet-4-5", "/v1/messages"),
    ("anthropic", "claude-haiku-4-5", "/v1/messages"),
)
BY_APP = {
    "research-notebook": (0, 1, 2, 3),
    "cursor-agent": (2, 2, 2, 1),
    "nightly-summarizer": (0,),
    "slack-bot": (3, 0),
    "eval-harness": (0, 1, 3),
}


def seed(root: Path, rows: int, days: int, *, seed_value: int = 7) -> Wallet:
    rng = random.Random(seed_value)
    wallet = Wallet.open(DataDir(root))
    if not wallet.providers.find("openai"):
        wallet.add_provider("openai", kind="openai", api_key="sk-demo-" + "x" * 40)
        wallet.add_provider("anthropic", kind="anthropic", api_key="sk-ant-demo-" + "y" * 40)
    app_ids: dict[str, int] = {}
    for name, budget, models, _ in APPS:
        app, _key = wallet.create_app(
            unique_name(name, {a.name for a in wallet.apps.list()}),
            budget=parse_budget_spec(budget) if budget else None,
            models=models,
        )
        app_ids[name] = app.id
    wallet.set_budget(parse_budget_spec("120/month"))
    wallet.consent_rules.add("exe", "/usr/bin/curl", "deny", note="seeded")
    wallet.consent_rules.add(
        "app", "research-notebook", "allow", app_id=app_ids["research-notebook"]
    )
    rows_by_model = {m: wallet.catalog.get(p, m) for p, m, _ in MODELS if wallet.catalog.get(p, m)}
    now = datetime.now(UTC)
    start = now - timedelta(days=days)
    span = (now - start).total_seconds()
    weights = [a[3] for a in APPS]
    ledger, requests = [], []
    for _ in range(rows):
        app_name = rng.choices([a[0] for a in APPS], weights)[0]
        provider, model, endpoint = MODELS[rng.choice(BY_APP[app_name])]
        price = rows_by_model.get(model)
        # Busier in working hours, and busier lately.
        ts = start + timedelta(seconds=span * (rng.random() ** 0.7))
        ts = min(ts, now - timedelta(seconds=1))
        rid = "req_" + uuid.UUID(int=rng.getrandbits(128)).hex
        failed = rng.random() < 0.04
        stream = rng.random() < 0.5
        usage = Usage(
            input_tokens=rng.randint(200, 9000),
            output_tokens=rng.randint(50, 1800),
            source=TokenSource.PROVIDER if rng.random() > 0.03 else TokenSource.ESTIMATED,
        )
        cost = cost_of(usage, price).nano if price and not failed else 0
        status = rng.choice((402, 429, 502)) if failed else 200
        code = {402: "budget_exceeded", 429: "rate_limited", 502: "upstream_unavailable"}.get(
            status
        )
        requests.append(
            {
                "id": rid, "ts": ts, "app_id": app_ids[app_name], "endpoint": endpoint,
                "model": model, "provider": provider,
                "input_tokens": 0 if failed else usage.input_tokens,
                "cache_read_tokens": 0, "cache_write_tokens": 0,
                "output_tokens": 0 if failed else usage.output_tokens,
                "reasoning_tokens": 0, "cost_nano": cost,
                "token_source": None if failed else usage.source.value,
                "latency_ms": rng.randint(180, 9000), "ttfb_ms": rng.randint(90, 900),
                "status": status, "error_code": code, "stream": stream,
            }
        )  # fmt: skip
        if not failed and price is not None:
            ledger.append(
                {
                    "ts": ts, "kind": "spend", "app_id": app_ids[app_name],
                    "request_id": rid, "amount_nano": cost, "provider": provider,
                    "model": model, "price_row_ref": price.ref, "price_row": price.to_json(),
                    "token_source": usage.source.value, "note": None,
                }
            )  # fmt: skip
    with wallet.db.begin() as conn:
        for i in range(0, len(requests), 20_000):
            conn.execute(insert(t.requests), requests[i : i + 20_000])
        for i in range(0, len(ledger), 20_000):
            conn.execute(insert(t.ledger), ledger[i : i + 20_000])
    _counters(wallet, ledger, now)
    return wallet


def _counters(wallet: Wallet, ledger: list[dict[str, object]], now: datetime) -> None:
    """Budget counters of the current windows, equal to the seeded ledger (as the engine
    would have left them)."""
    tz = wallet.timezone
    budgets = [wallet.budgets.wallet_budget()] + [
        wallet.budgets.app_budget(a.id) for a in wallet.apps.list()
    ]
    with wallet.db.begin() as conn:
        for b in budgets:
            if b is None:
                continue
            w = window_for(b.period, now, tz)
            spent = sum(
                int(e["amount_nano"])  # type: ignore[call-overload]
                for e in ledger
                if (b.scope == "wallet" or e["app_id"] == b.app_id) and w.contains(e["ts"])  # type: ignore[arg-type]
            )
            conn.execute(
                insert(t.budget_counters).values(
                    budget_id=b.id,
                    window_key=counter_key(b, w),
                    window_end=w.end,
                    spent_nano=spent,
                    reserved_nano=0,
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir")
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    wallet = seed(Path(args.data_dir), args.rows, args.days)
    print(f"seeded {args.rows} requests over {args.days} days in {args.data_dir}")
    wallet.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
