"""Two engines on one PostgreSQL ledger (the shared-budget setup): the same budgets, never
overspent.

Two wallets, each in its own data dir, both on one PostgreSQL database (as two machines, or
two users, would set ``AIWALLET_DATABASE_URL``); each runs its own engine on loopback in front
of the session's fake upstream. The wallet id lives in the database, so both wallets name the
same OS keyring entries: the providers are added once, through the first wallet, and the
second engine reads their keys from the keyring. On PostgreSQL a reservation is a conditional
update of the budget counter rows in the database (no engine keeps counters in memory), so
the two engines share every budget exactly.

Also here: each data dir's engine lock leaves the other data dir's engine alone, while a
second engine on the same data dir is still refused; a client that hangs up while the
database grants its reservation gets it released (it stayed open); and an engine's start
leaves the other engine's requests in flight alone (it recovers only its own data dir's).

Skipped when no PostgreSQL server can be started here, failed instead with
AIWALLET_REQUIRE_POSTGRES=1 (as the ``db_url`` fixture's PostgreSQL case is).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import psycopg
import pytest
from sqlalchemy import select

from aiwallet.domain.cost import cost_of
from aiwallet.domain.money import parse_budget_spec
from aiwallet.domain.usage import Usage
from aiwallet.engine.server import Engine
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from aiwallet.store import schema as t
from aiwallet.store.writer_lock import DataDirInUse, engine_running
from aiwallet.upstreams.client import Timeouts
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY, FakeUpstream, Script
from pgserver import PgServer
from waiting import wait_until

MODEL = "gpt-4o"
MSGS = [{"role": "user", "content": "count to twelve for me"}]
MAX_TOKENS = 60
N = 200  # the burst: 100 on each engine, at once
WAVE = 10  # requests per engine in each wave after the burst
MAX_WAVES = 40
# Two apps, each under its own daily budget, under a wallet budget smaller than their sum:
# each budget is smaller than what either engine's share of the burst alone would cost
APP_LIMITS = {"left": "0.008", "right": "0.008"}
WALLET_LIMIT = "0.01"
NANO = 1_000_000_000


@pytest.fixture
def pg_url(pg_server: PgServer | str) -> str:
    """A fresh database on the session's PostgreSQL (skipped, or failed, when absent)."""
    if isinstance(pg_server, str):
        if os.environ.get("AIWALLET_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here: {pg_server}")
        pytest.skip(pg_server)
    return pg_server.create_database()


@dataclass
class Pair:
    """Two wallets (data dirs ``a`` and ``b``) on one PostgreSQL database."""

    wallets: list[Wallet]

    def engine(self, i: int) -> Engine:
        engine = self.wallets[i].new_engine(
            port=0, timeouts=Timeouts(connect_s=5, read_s=60), consent_timeout_s=0.3
        )
        engine.start()
        return engine


@pytest.fixture
def pair(tmp_path: Path, fake: FakeUpstream, pg_url: str) -> Iterator[Pair]:
    fake.reset()
    first = Wallet.open(DataDir(tmp_path / "a"), url=pg_url)
    first.add_provider("openai", kind="openai", api_key=OPENAI_KEY, base_url=fake.base_url + "/v1")
    first.add_provider("anthropic", kind="anthropic", api_key=ANTHROPIC_KEY, base_url=fake.base_url)
    second = Wallet.open(DataDir(tmp_path / "b"), url=pg_url)
    wallets = [first, second]
    try:
        yield Pair(wallets)
    finally:
        for w in wallets:
            w.close()


def test_the_second_wallet_shares_the_first_ones_wallet_id_and_provider_keys(pair: Pair) -> None:
    """What makes the setup work: the wallet id (and so the keyring entries' names) is the
    database's, not the data dir's."""
    first, second = pair.wallets
    assert second.wallet_id == first.wallet_id
    assert sorted(p.name for p in second.providers.list()) == ["anthropic", "openai"]
    secret = second.vault.get("provider:openai")
    assert secret is not None and secret.reveal() == OPENAI_KEY


def request_id_of(served: Any) -> str | None:
    """The wallet's request id a request the fake served carried."""
    found = (v for k, v in served.headers.items() if k.lower() == "x-aiwallet-request-id")
    return next(found, None)


def served_cost(wallet: Wallet, served: list) -> int:
    """What the fake's own record of generated tokens prices to (catalog prices)."""
    total = 0
    for s in served:
        g = s.generated
        usage = Usage(
            input_tokens=g["prompt"] - g.get("cached", 0),
            output_tokens=g["completion"],
            cache_read_tokens=g.get("cached", 0),
            reasoning_tokens=g.get("reasoning", 0),
        )
        total += cost_of(usage, wallet.catalog.get("openai", s.model)).nano
    return total


async def one(client: openai.AsyncOpenAI, stream: bool, outcomes: collections.Counter) -> str:
    """One chat completion, whole or streamed (read to its end); its outcome."""
    try:
        if stream:
            s = await client.chat.completions.create(
                model=MODEL, messages=MSGS, max_tokens=MAX_TOKENS, stream=True
            )
            async for _ in s:
                pass
        else:
            await client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=MAX_TOKENS)
        outcome = "ok"
    except openai.APIStatusError as exc:
        code = exc.body.get("code") if isinstance(exc.body, dict) else None
        outcome = f"{exc.status_code} {code}"
    outcomes[outcome] += 1
    return outcome


def test_two_engines_on_one_postgres_ledger_never_overspend_their_shared_budgets(
    pair: Pair, fake: FakeUpstream
) -> None:
    """200 requests at once, half on each engine, from two apps whose budgets (and the
    wallet's) both engines reserve against; then waves on both engines until every request is
    refused. Spent ≤ limit in every budget, the wallet's budget is used up to less than one
    request's reservation, and each engine's share alone could have paid for more than the
    whole budget (so two unshared caps would have overspent it)."""
    first, _ = pair.wallets
    keys = {}
    for name, limit in APP_LIMITS.items():
        _, keys[name] = first.create_app(name, budget=parse_budget_spec(f"{limit}/day"))
    first.set_budget(parse_budget_spec(f"{WALLET_LIMIT}/day"))
    # started after the budgets exist; each reads the apps and their budgets from the database
    engines = [pair.engine(0), pair.engine(1)]
    per_engine: list[collections.Counter] = [collections.Counter(), collections.Counter()]
    try:
        assert engines[0].port != engines[1].port
        # no engine keeps budget counters in memory on PostgreSQL: reservations are the
        # database's conditional updates, which is what shares them
        assert all(e.state.live is None for e in engines)

        async def run() -> int:
            clients = {
                (e, app): openai.AsyncOpenAI(
                    base_url=engine.url + "/v1", api_key=key, max_retries=0, timeout=60
                )
                for e, engine in enumerate(engines)
                for app, key in keys.items()
            }
            apps = list(keys)
            try:
                # the burst: request i goes to engine i % 2, app (i // 2) % 2, streamed every
                # other pair
                await asyncio.gather(
                    *(
                        one(clients[i % 2, apps[i // 2 % 2]], i // 4 % 2 == 0, per_engine[i % 2])
                        for i in range(N)
                    )
                )
                # what the burst's settlements gave back: waves until a whole wave is refused
                for wave in range(1, MAX_WAVES + 1):
                    got = await asyncio.gather(
                        *(
                            one(clients[e, apps[i % 2]], i % 3 == 0, per_engine[e])
                            for e in (0, 1)
                            for i in range(WAVE)
                        )
                    )
                    if "ok" not in got:
                        return wave
                return 0
            finally:
                for c in clients.values():
                    await c.close()

        waves = asyncio.run(run())
        assert waves, f"the budgets still granted requests after {MAX_WAVES} waves"
        wait_until(
            lambda: not first.budgets.open_reservations(),
            timeout_s=30,
            what="every reservation closed",
        )
        served = [s for s in fake.served if s.path == "/v1/chat/completions"]
    finally:
        for e in engines:
            e.stop()
    total = per_engine[0] + per_engine[1]
    print(f"engine a: {dict(per_engine[0])}; engine b: {dict(per_engine[1])}; waves: {waves}")

    # every refusal is a clean budget refusal; both engines answered and refused
    assert set(total) <= {"ok", "402 budget_exceeded"}, total
    assert total["402 budget_exceeded"] > 0
    for counts in per_engine:
        assert counts["ok"] > 0 and counts["402 budget_exceeded"] > 0, per_engine

    with first.db.read() as conn:
        spend = [
            dict(r)
            for r in conn.execute(select(t.ledger).where(t.ledger.c.kind == "spend")).mappings()
        ]
        reserved = [
            r[0] for r in conn.execute(select(t.reservations.c.amount_nano)).all()
        ]  # every reservation either engine took, now closed
        windows = conn.execute(
            select(
                t.budgets.c.scope,
                t.budgets.c.app_id,
                t.budgets.c.amount_nano,
                t.budget_counters.c.spent_nano,
                t.budget_counters.c.reserved_nano,
            ).join(t.budgets, t.budgets.c.id == t.budget_counters.c.budget_id)
        ).all()

    # every request that reached the fake has exactly one ledger row, and the ledger no other
    # (the fake is the session's: what this test's engines sent it is what carries the id of
    # a request in this test's database)
    ours = {r["id"] for r in first.requests.recent(10_000)}
    tagged = [(request_id_of(s), s) for s in served]
    strays = [(rid, s.path, s.status) for rid, s in tagged if rid not in ours]
    served = [s for rid, s in tagged if rid in ours]
    served_ids = [rid for rid, s in tagged if rid in ours]
    assert len(served) == total["ok"], (len(served), total, strays[:5])
    rows = collections.Counter(r["request_id"] for r in spend)
    assert rows == collections.Counter(served_ids) == dict.fromkeys(served_ids, 1)
    assert all(s.completed and s.status == 200 for s in served), [
        (rid, s.status, s.completed) for rid, s in tagged if not (s.completed and s.status == 200)
    ]
    # each row is what the fake billed (none fell back to its worst case: two engines' write
    # batches once deadlocked on the counter rows, and a settlement that failed twice did)
    assert {r["token_source"] for r in spend} <= {"provider", "injected"}, spend
    spent = sum(r["amount_nano"] for r in spend)
    assert spent == served_cost(first, served)

    # spent ≤ limit in every budget; nothing left reserved; counters = ledger
    assert first.budgets.open_reservations() == []
    app_ids = {a.name: a.id for a in first.apps.list()}
    by_app = collections.Counter()
    for r in spend:
        by_app[r["app_id"]] += r["amount_nano"]
    limits = {("wallet", None): WALLET_LIMIT} | {
        ("app", app_ids[name]): limit for name, limit in APP_LIMITS.items()
    }
    counted = collections.Counter()
    for scope, app_id, amount, spent_now, reserved_now in windows:
        assert amount == int(float(limits[scope, app_id]) * NANO + 0.5)
        assert spent_now <= amount, f"{scope} {app_id}: spent {spent_now} > {amount}"
        assert reserved_now == 0, f"{scope} {app_id}: {reserved_now} still reserved"
        counted[scope, app_id] += spent_now
    assert counted == {
        ("wallet", None): spent,
        ("app", app_ids["left"]): by_app[app_ids["left"]],
        ("app", app_ids["right"]): by_app[app_ids["right"]],
    }
    wallet_limit = int(float(WALLET_LIMIT) * NANO + 0.5)
    assert spent <= wallet_limit  # overshoot is exactly zero, across both engines

    # the budget was reached: what is left cannot pay for one more request's reservation
    assert wallet_limit - spent < max(reserved), (wallet_limit, spent, max(reserved))
    # and the cap had to be shared to hold: either engine's 100 requests of the burst alone,
    # at the cheapest cost any request was billed, cost more than the whole wallet budget
    cheapest = min(r["amount_nano"] for r in spend)
    assert cheapest * (N // 2) > wallet_limit, (cheapest, wallet_limit)


def test_each_engine_holds_its_own_data_dir_and_does_not_stop_the_other(pair: Pair) -> None:
    """The engine lock is per data dir: two data dirs on one PostgreSQL ledger run side by
    side (PostgreSQL takes no ledger lock), and stopping one leaves the other serving."""
    dirs = [w.data_dir for w in pair.wallets]
    a = pair.engine(0)
    try:
        assert engine_running(dirs[0].root, None) and not engine_running(dirs[1].root, None)
        b = pair.engine(1)  # not refused: another data dir
        try:
            assert engine_running(dirs[1].root, None)
            for engine, d in ((a, dirs[0]), (b, dirs[1])):
                assert httpx.get(engine.url + "/healthz").json() == {"ok": True}
                assert f'"port": {engine.port}' in d.engine_file.read_text()
        finally:
            a.stop()
        assert not engine_running(dirs[0].root, None)
        assert httpx.get(b.url + "/healthz").json() == {"ok": True}
        assert engine_running(dirs[1].root, None)
        a = pair.engine(0)  # and the first starts again beside the second
        assert httpx.get(a.url + "/healthz").json() == {"ok": True}
        b.stop()
    finally:
        a.stop()


def test_a_second_engine_on_the_same_data_dir_is_refused_on_postgres_too(pair: Pair) -> None:
    """One engine per data dir (its admin token and engine.json are the data dir's), whatever
    the ledger: on PostgreSQL too the second is refused before it touches anything."""
    first = pair.wallets[0]
    running = pair.engine(0)
    other = Wallet.open(first.data_dir, url=first.db.url)
    try:
        engine_file = first.data_dir.engine_file.read_text()
        engine = other.new_engine(port=0)
        with pytest.raises(DataDirInUse) as refused:
            engine.start()
        assert refused.value.code == "data_dir_in_use"
        assert "already running on this data dir" in str(refused.value)
        assert engine._thread is None and engine._runner is None
        assert first.data_dir.engine_file.read_text() == engine_file
        assert httpx.get(running.url + "/healthz").json() == {"ok": True}
    finally:
        other.close()
        running.stop()


def test_an_engine_starting_on_the_shared_ledger_leaves_the_others_requests_alone(
    pair: Pair, fake: FakeUpstream
) -> None:
    """An engine started (or restarted) while the other one has a request in flight must
    not bill that request as if its engine had crashed (at the reserved worst case, more than
    the provider billed, audited as a crash recovery): a reservation carries its data dir's
    id, and a start recovers only its own wallet's."""
    first, _ = pair.wallets
    _, key = first.create_app("held", budget=parse_budget_spec("1/day"))
    fake.set_default(Script(gate="held"))
    a = pair.engine(0)
    b = None
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            answer = pool.submit(
                httpx.post,
                a.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": MODEL, "messages": MSGS, "max_tokens": MAX_TOKENS},
                timeout=60,
            )
            wait_until(lambda: fake.at_gate("held") == 1, what="the request held at the fake")
            assert len(first.budgets.open_reservations()) == 1
            b = pair.engine(1)  # the second engine starts while the first one's request waits
            fake.open_gate("held")
            assert answer.result(60).status_code == 200
        served = [s for s in fake.served if s.path == "/v1/chat/completions"]
        with first.db.read() as conn:
            [row] = [dict(r) for r in conn.execute(select(t.ledger)).mappings()]
    finally:
        fake.set_default(Script())
        a.stop()
        if b is not None:
            b.stop()
    assert b.recovered == []  # not the first engine's open reservation
    assert row["token_source"] == "provider", row
    assert row["amount_nano"] == served_cost(first, served), row


def test_a_client_that_leaves_while_the_database_grants_its_reservation_gets_it_released(
    pair: Pair, fake: FakeUpstream
) -> None:
    """On PostgreSQL a reservation is a database write the request awaits; a client that
    hangs up during it cancels the request's handler, but the write still commits. The
    reservation must then be given back, not left open holding the budget (until the next
    engine start bills it at its worst case as a crash's). Under load (wrk hanging up at the
    end of a run, bench/shared_pg.py) this left dozens open.

    The write is held deterministically: another connection locks the budget counter rows,
    so the reservation's conditional UPDATE waits on the lock (seen in pg_stat_activity)
    while the client closes its socket."""
    first, _ = pair.wallets
    _, key = first.create_app("leaver", budget=parse_budget_spec("1/day"))
    engine = pair.engine(0)
    dsn = first.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    blocker = psycopg.connect(dsn)
    watcher = psycopg.connect(dsn, autocommit=True)  # a fresh statistics snapshot each read
    try:
        # a first request makes the window's counter rows, which the blocker then locks
        r = httpx.post(
            engine.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": MODEL, "messages": MSGS, "max_tokens": MAX_TOKENS},
            timeout=30,
        )
        assert r.status_code == 200
        with blocker.cursor() as cur:
            cur.execute("SELECT id FROM budget_counters FOR UPDATE")
            body = json.dumps({"model": MODEL, "messages": MSGS, "max_tokens": MAX_TOKENS})
            with socket.create_connection(("127.0.0.1", engine.port), timeout=30) as sock:
                sock.sendall(
                    (
                        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{engine.port}"
                        f"\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n{body}"
                    ).encode()
                )
                wait_until(
                    lambda: lock_waiters(watcher) > 0,
                    timeout_s=30,
                    what="the reservation waiting on the locked counter rows",
                )
                client_port = sock.getsockname()[1]
            # the socket is closed: once the engine has closed its side too, the request's
            # handler has been cancelled (aiohttp cancels it as the connection is lost)
            wait_until(
                lambda: not engine_side_open(engine.port, client_port),
                timeout_s=30,
                what="the engine closing the connection the client left",
            )
        blocker.rollback()  # the lock goes: the reservation commits, nobody awaits it
        wait_until(
            lambda: not first.budgets.open_reservations(),
            timeout_s=30,
            what="the orphaned reservation given back",
        )
        [left] = wait_until(
            lambda: [r for r in first.requests.recent(10) if r["status"] == 499],
            what="the request logged",
        )
        assert (left["error_code"], left["cost_nano"]) == ("client_closed", 0)
        with first.db.read() as conn:
            spend = conn.execute(
                select(t.ledger.c.request_id).where(t.ledger.c.kind == "spend")
            ).all()
        assert [s[0] for s in spend] == [r.headers["x-aiwallet-request-id"]]
    finally:
        blocker.close()
        watcher.close()
        engine.stop()


def engine_side_open(port: int, client_port: int) -> bool:
    """Whether this process (the engine runs in it) still has the server side of the
    connection from ``client_port``."""
    return any(
        c.laddr and c.raddr and (c.laddr.port, c.raddr.port) == (port, client_port)
        for c in psutil.Process().net_connections(kind="tcp")
    )


def lock_waiters(conn: psycopg.Connection[Any]) -> int:
    """Connections waiting on a lock while they write budget_counters."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query ILIKE '%budget_counters%'"
    ).fetchone()
    return int(row[0]) if row else 0


def test_a_pause_through_one_wallet_stops_the_other_wallets_engine(pair: Pair) -> None:
    """The kill switch is the ledger's: a pause set through wallet A (whose own engine is not
    even running) stops wallet B's engine within its watch's interval, and so does the
    resume; each is one reload of B, read off the audit log's head."""
    first, _ = pair.wallets
    _, key = first.create_app("watched", budget=parse_budget_spec("1/day"))
    b = pair.engine(1)
    try:
        assert b.ledger_watch is not None

        def status() -> tuple[int, str | None]:
            r = httpx.post(
                b.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": MODEL, "messages": MSGS, "max_tokens": MAX_TOKENS},
                timeout=30,
            )
            return r.status_code, r.headers.get("x-aiwallet-error-code")

        assert status() == (200, None)
        first.set_paused(True)
        wait_until(lambda: b.state.paused, timeout_s=30, what="engine b paused")
        code, error = status()
        assert error == "wallet_paused", (code, error)
        first.set_paused(False)
        wait_until(lambda: not b.state.paused, timeout_s=30, what="engine b resumed")
        assert status() == (200, None)
        assert b.ledger_watch.reloads >= 2
    finally:
        b.stop()


def test_a_start_leaves_another_wallets_unpaid_x402_reservation_to_it(pair: Pair) -> None:
    """Reserved for an x402 router and not yet signed: a start releases such a reservation
    when its own dead engine left it (the router serves nothing unpaid), but on a shared
    ledger another wallet's engine may be about to sign and pay it. Wallet B's start leaves
    wallet A's alone; wallet A's own restart releases it."""
    from datetime import UTC, datetime

    from aiwallet.store.records import SpendEntry

    first, _ = pair.wallets
    first.add_provider("router", kind="x402", api_key=None, base_url="http://127.0.0.1:9/v1")
    app, _ = first.create_app("paying", budget=parse_budget_spec("1/day"))
    budget = first.budgets.app_budget(app.id)
    assert budget is not None
    first.budgets.owner = first.data_dir.wallet_id()  # as wallet A's engine reserves
    res = first.budgets.reserve(
        [budget.id], 7_000_000, at=datetime.now(UTC), tz=first.timezone,
        request_id="awreq_about_to_pay", app_id=app.id,
        priced=SpendEntry("router", "router-model", "x402:router/m", None, "x"),
    )  # fmt: skip
    b = pair.engine(1)
    try:
        assert b.reconciled is not None and b.reconciled.released == []
        assert b.recovered == []
        assert [r.id for r in first.budgets.open_reservations()] == [res.id]
    finally:
        b.stop()
    a = pair.engine(0)  # wallet A's engine, back after dying with it open
    try:
        assert a.reconciled is not None and a.reconciled.released == [res.id]
        assert first.budgets.open_reservations() == []
    finally:
        a.stop()
