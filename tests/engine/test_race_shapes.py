"""Every request shape racing for one budget, on both backends (SQLite and PostgreSQL).

200 requests at once from two apps, each with its own daily budget under a wallet-wide one
smaller than their sum: OpenAI chat completions and Anthropic messages, whole and streamed,
clients that hang up after the first stream event, and requests whose ``max_tokens`` the
budget clamps (whichever arrive when too little is left; and, every time, a first request of
a third app that its budget cannot afford whole, held in flight while the others race). The
fake upstream holds every forwarded request at a gate until all 200 are refused or forwarded,
so the race is decided by the reservations alone. Afterwards, through what the engine wrote
and what the fake upstream recorded:

- every refusal is 402 ``budget_exceeded``, and every kind of request got through;
- spent ≤ limit in every budget's window, exactly (no overshoot at all);
- each request the fake served has exactly one ledger row and the ledger has no other; a
  request the fake finished is billed exactly its usage, priced here from the catalog; a
  stream its client left is billed an estimate within its reservation;
- a clamped request went out with the clamped ``max_tokens`` it announced;
- no reservation is left open, and the budget counters equal the ledger's sums.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from aiwallet.domain.cost import cost_of
from aiwallet.domain.money import parse_budget_spec
from aiwallet.domain.usage import Usage
from aiwallet.store import schema as t
from fakeupstream import Script
from waiting import wait_until

N = 200
GATE = "race"
MODELS = {"openai": "gpt-4o", "anthropic": "claude-haiku-4-5"}
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
END = {"openai": "data: [DONE]", "anthropic": "event: message_stop"}
BIG = 400  # max_tokens whose worst case fits a fresh budget, but not a nearly spent one
# (api, stream, leaves after the first event, max_tokens)
SHAPES = [
    ("openai", False, False, 60),
    ("openai", True, False, 60),
    ("anthropic", False, False, 60),
    ("anthropic", True, False, 60),
    ("openai", True, True, 60),
    ("anthropic", True, True, 60),
    ("openai", False, False, BIG),
    ("anthropic", True, False, BIG),
    ("openai", True, False, BIG),
]
LIMITS = {"a": "0.02", "b": "0.03"}  # per app and day
WALLET_LIMIT = "0.04"  # less than the apps' sum: it binds for both
# App c sends one request first, which its budget cannot afford whole: it is clamped, every
# time, and held (reserved) at the fake's gate while the other 199 race
FIRST = ("openai", True, False, 4000)
FIRST_LIMIT = "0.002"


@dataclass
class Outcome:
    shape: tuple[str, bool, bool, int]
    app: str
    status: int
    code: str | None
    rid: str | None
    clamped: int | None
    finished: bool  # a 200 read to its end marker (whole answers: read whole)


def request(api: str, key: str, stream: bool, max_tokens: int, i: int) -> dict[str, Any]:
    msgs = [{"role": "user", "content": f"race {i}: count to twelve for me"}]
    if api == "openai":
        headers = {"Authorization": f"Bearer {key}"}
    else:
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    body = {"model": MODELS[api], "messages": msgs, "max_tokens": max_tokens, "stream": stream}
    return {"url": PATHS[api], "headers": headers, "json": body}


async def one(
    client: httpx.AsyncClient, keys: dict[str, str], i: int, refused: list[int]
) -> Outcome:
    shape = SHAPES[i % len(SHAPES)] if i >= 0 else FIRST
    api, stream, leaves, max_tokens = shape
    app = "ab"[i % 2] if i >= 0 else "c"
    finished = False
    async with client.stream("POST", **request(api, keys[app], stream, max_tokens, i)) as r:
        if r.status_code != 200:
            refused[0] += 1  # answered without going upstream
        if r.status_code == 200 and stream:
            async for line in r.aiter_lines():
                if leaves and line.startswith("data:"):
                    break  # hang up after the first event: the context closes the connection
                finished = finished or line.strip() == END[api]
        else:
            await r.aread()
            finished = r.status_code == 200
    clamped = r.headers.get("x-aiwallet-max-tokens-clamped")
    return Outcome(
        shape,
        app,
        r.status_code,
        r.headers.get("x-aiwallet-error-code"),
        r.headers.get("x-aiwallet-request-id"),
        int(clamped) if clamped else None,
        finished,
    )


def race(rig: Any, keys: dict[str, str]) -> tuple[list[Outcome], bool]:
    """All N requests at once; the fake holds every request that got through at its gate
    until each of the N has been either refused or forwarded, so that the race is decided by
    the reservations alone (not by how soon early requests settle on a busy machine), and a
    client leaving after the first event does so while its stream is still going. Returns the
    outcomes and whether every request was accounted for before the gate opened."""
    refused = [0]

    async def open_gate() -> bool:
        deadline = time.monotonic() + 20  # bounded: the fake's gate gives up after 30 s
        try:
            while time.monotonic() < deadline:
                if refused[0] + rig.fake.at_gate(GATE) >= N:
                    return True
                await asyncio.sleep(0.01)
            return False
        finally:
            rig.fake.open_gate(GATE)

    async def main() -> tuple[list[Outcome], bool]:
        limits = httpx.Limits(max_connections=N + 10, max_keepalive_connections=N + 10)
        timeout = httpx.Timeout(30.0, connect=10.0)
        async with httpx.AsyncClient(base_url=rig.url, limits=limits, timeout=timeout) as client:
            first = asyncio.ensure_future(one(client, keys, -1, refused))
            for _ in range(1000):  # bounded: 10 s
                if rig.fake.at_gate(GATE) or first.done():
                    break
                await asyncio.sleep(0.01)
            gate = asyncio.ensure_future(open_gate())
            rest = await asyncio.gather(*(one(client, keys, i, refused) for i in range(N - 1)))
            return [await first, *rest], await gate

    return asyncio.run(main())


def priced(rig: Any, api: str, model: str, generated: dict[str, int]) -> int:
    usage = Usage(
        input_tokens=generated["prompt"] - generated.get("cached", 0),
        output_tokens=generated["completion"],
        cache_read_tokens=generated.get("cached", 0),
        reasoning_tokens=generated.get("reasoning", 0),
    )
    return cost_of(usage, rig.wallet.catalog.get(api, model)).nano


def header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def test_every_request_shape_races_for_one_budget(backend_rig):
    rig = backend_rig
    # long enough answers that a client can leave mid-stream, and cost close to the reservation
    # ~1.6 s per stream: a client leaving after its first event is still mid-stream on a
    # loaded machine (at 0.8 s a starved client once read its first event after the end)
    rig.fake.set_default(Script(reply_tokens=80, event_delay_s=0.02, gate=GATE))
    limits = {**LIMITS, "c": FIRST_LIMIT}
    keys = {name: rig.app(name, budget=f"{limit}/day") for name, limit in limits.items()}
    rig.wallet.set_budget(parse_budget_spec(f"{WALLET_LIMIT}/day"))
    try:
        outcomes, all_in = race(rig, keys)
        assert all_in, "the requests were neither refused nor forwarded within 20 s"
        rids = {o.rid for o in outcomes}
        assert None not in rids and len(rids) == N
        # the engine settles a stream its client left on its own time: wait for every request
        # to be logged and every reservation closed
        wait_until(
            lambda: (
                not rig.wallet.budgets.open_reservations()
                and rids <= {r["id"] for r in rig.requests()}
            ),
            timeout_s=30,
            what="every request logged and every reservation closed",
        )
        served = [s for s in rig.fake.served if s.path in PATHS.values()]
    finally:
        rig.fake.set_default(Script())
    tally = collections.Counter((o.status, o.code) for o in outcomes)

    # every refusal is a budget refusal; every shape got through; answers were whole
    assert set(tally) <= {(200, None), (402, "budget_exceeded")}, tally
    assert tally[(402, "budget_exceeded")] > 0, tally
    ok = [o for o in outcomes if o.status == 200]
    # which requests win a race is the race's: every kind of request got through, though not
    # necessarily every combination (a request the budget clamps takes what is left until it
    # settles, so a handful of requests can hold the whole budget)
    kinds = collections.Counter()
    for o in ok:
        api, stream, leaves, _ = o.shape
        kinds[api, stream] += 1
        kinds["left mid-stream"] += leaves
        kinds["clamped"] += o.clamped is not None
        kinds[f"app {o.app}"] += 1
    wanted = [(a, st) for a in MODELS for st in (False, True)]
    wanted += ["left mid-stream", "clamped", "app a", "app b", "app c"]
    assert all(kinds[k] for k in wanted), kinds
    print(f"race: {dict(tally)}; answered: {dict(kinds)}")
    assert (outcomes[0].app, outcomes[0].status) == ("c", 200) and outcomes[0].clamped, outcomes[0]
    assert all(o.finished for o in ok if not o.shape[2]), "a 200 without its end"

    # one ledger row per request the fake served, none for anything else
    with rig.wallet.db.read() as conn:
        ledger = [
            dict(r)
            for r in conn.execute(select(t.ledger).where(t.ledger.c.kind == "spend")).mappings()
        ]
        reserved = dict(
            conn.execute(select(t.reservations.c.request_id, t.reservations.c.amount_nano)).all()
        )
        windows = conn.execute(
            select(
                t.budgets.c.scope,
                t.budgets.c.app_id,
                t.budgets.c.amount_nano,
                t.budget_counters.c.window_key,
                t.budget_counters.c.spent_nano,
                t.budget_counters.c.reserved_nano,
            ).join(t.budgets, t.budgets.c.id == t.budget_counters.c.budget_id)
        ).all()
    rows = collections.defaultdict(list)
    for row in ledger:
        rows[row["request_id"]].append(row)
    served_ids = [header(s.headers, "x-aiwallet-request-id") for s in served]
    assert None not in served_ids
    assert sorted(served_ids) == sorted({o.rid for o in ok}), "served ≠ answered 200"
    assert {rid: len(r) for rid, r in rows.items()} == dict.fromkeys(served_ids, 1)

    # the ledger is what the fake billed: exactly, for what it finished; for a stream its
    # client left, an estimate within the reservation (a client that read its first event
    # only once the whole stream had reached its socket left nothing: that one is a 200)
    log = {r["id"]: r for r in rig.requests()}
    by_rid = {o.rid: o for o in ok}
    left = 0
    for s, rid in zip(served, served_ids, strict=True):
        [row] = rows[rid]
        if by_rid[rid].shape[2] and (log[rid]["status"], log[rid]["error_code"]) != (200, None):
            left += 1
            assert (log[rid]["status"], log[rid]["error_code"]) == (499, "client_closed"), rid
            assert row["token_source"] == "estimated", (rid, row)
            assert 0 < row["amount_nano"] <= reserved[rid], (rid, row, reserved[rid])
        else:
            assert s.completed and s.status == 200, rid
            assert log[rid]["status"] == 200 and log[rid]["error_code"] is None, log[rid]
            want = priced(rig, s.api, s.model, s.generated)
            assert row["token_source"] in ("provider", "injected"), (rid, row)
            assert row["amount_nano"] == want, (rid, row, s.generated)
    assert left > 0, "no client left a stream before its end"

    # every request went out with the max_tokens it asked for, or the one the engine clamped
    # it to and said so
    for o in ok:
        [sent] = [
            s.request_json for s in served if header(s.headers, "x-aiwallet-request-id") == o.rid
        ]
        sent_max = sent.get("max_tokens", sent.get("max_completion_tokens"))
        if o.clamped is None:
            assert sent_max == o.shape[3], (o, sent_max)
        else:
            assert 16 <= o.clamped < o.shape[3] and sent_max == o.clamped, (o, sent_max)

    # spent ≤ limit in every window; counters = ledger; nothing reserved or open
    assert rig.wallet.budgets.open_reservations() == []
    app_ids = {a.name: a.id for a in rig.wallet.apps.list()}
    ledger_by_app = collections.Counter()
    for row in ledger:
        ledger_by_app[row["app_id"]] += row["amount_nano"]
    spent_by_budget = collections.Counter()
    for scope, app_id, amount, window, spent, reserved_now in windows:
        assert spent <= amount, f"{scope} {app_id} {window}: spent {spent} > {amount}"
        assert reserved_now == 0, f"{scope} {app_id} {window}: {reserved_now} still reserved"
        spent_by_budget[(scope, app_id)] += spent
    assert spent_by_budget == {
        ("wallet", None): sum(ledger_by_app.values()),
        ("app", app_ids["a"]): ledger_by_app[app_ids["a"]],
        ("app", app_ids["b"]): ledger_by_app[app_ids["b"]],
        ("app", app_ids["c"]): ledger_by_app[app_ids["c"]],
    }
