"""Soak test: mixed traffic from three apps whose budgets run out and are raised, then checks.

    .venv/bin/python bench/soak.py                # 2 minutes
    .venv/bin/python bench/soak.py --minutes 30   # the long mode
    .venv/bin/python bench/soak.py --postgres     # the ledger on a throw-away PostgreSQL

Starts the fake upstream and `aiwallet serve` as separate processes on 127.0.0.1 (OpenAI and
Anthropic providers pointed at the fake; a wallet budget big enough never to run out) and
drives three apps, each with a small daily budget, with a mix of OpenAI chat completions and
Anthropic messages, streamed and not (the SDKs' wire formats, sent with aiohttp).

Budgets in aiwallet are per day / week / month / total, so a budget cannot "reset" within a
soak. The reset is simulated: once an app has been refused (HTTP 402 `budget_exceeded`) for
`--reset-after` seconds, its daily budget is raised by its initial amount through the CLI
(`aiwallet --data-dir D budget set APP X/day`), which a running engine picks up at once
through its admin API.

With `--postgres` the ledger is a fresh database on a throw-away PostgreSQL server
(tests/pgserver.py: initdb in a temp dir, loopback only, stopped at the end), which the engine
and the CLI reach through `AIWALLET_DATABASE_URL`; the data dir stays local.

Reported at the start, after the warm-up (`--warmup` seconds of traffic: caches, pools and
the allocator's arenas filled), and at the end: the engine's RSS, open file descriptors,
threads, and `in_flight_settlements` from `GET /admin/v1/status` (its background settlement
tasks; the engine exposes no other task count). Checked at the end (PASS/FAIL, and the exit
status is 1 on any FAIL):

* the engine's RSS at the end is at most 10 % above its RSS after the warm-up;

* every request the fake upstream served with status 200 (matched by the
  `x-aiwallet-request-id` header the engine forwards) has exactly one ledger spend row, and the
  ledger has no spend row the fake did not serve; every 200 the clients got is among them;
* each ledger row equals the usage the fake reported, priced independently here from the
  catalog row (tokens × price per 1M, rounded up once), so the ledger's sum is the cost of what
  was served;
* no reservation is left open;
* no budget counter ever had spent (or spent + reserved) above its budget's amount (sampled
  every second during the run, and at the end), and each app's counters sum to its ledger rows.

The fake upstream runs as `python bench/soak.py --serve-fake`: `fakeupstream.FakeUpstream`
plus a route that hands over (and forgets) what it served: its own `GET /_fake/served`
keeps every record for the whole run, which a 30-minute soak cannot afford. The record is
drained every `--checkpoint` seconds with traffic paused until nothing is in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import sqlalchemy as sa
from benchkit import bench_env, serve_args, spawn_printing_port, stop

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
KINDS = ("openai", "openai-stream", "anthropic", "anthropic-stream")
RSS_GROWTH_MAX = 0.10  # end vs after warm-up
REQUEST_ID = "x-aiwallet-request-id"


# -- the fake upstream process -------------------------------------------------------------------
def serve_fake() -> None:
    """`fakeupstream` in this process, plus POST /_soak/drain (compact record, then forget)."""
    from aiohttp import web

    from fakeupstream import FakeUpstream

    class SoakFake(FakeUpstream):
        def app(self) -> web.Application:
            app = super().app()

            @web.middleware
            async def drain(request: web.Request, handler: Any) -> web.StreamResponse:
                if request.path != "/_soak/drain":
                    response: web.StreamResponse = await handler(request)
                    return response
                with self.record._lock:
                    served, self.record.served = self.record.served, []
                out = []
                for s in served:
                    rid = next((v for k, v in s.headers.items() if k.lower() == REQUEST_ID), None)
                    out.append(
                        {
                            "rid": rid,
                            "path": s.path,
                            "api": s.api,
                            "model": s.model,
                            "stream": s.stream,
                            "status": s.status,
                            "completed": s.completed,
                            "reported": s.reported,
                        }
                    )
                return web.json_response(out)

            app.middlewares.append(drain)
            return app

    async def run() -> None:
        fake = SoakFake()
        await fake.start(0)
        print(fake.port, flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


# -- state -----------------------------------------------------------------------------------------
@dataclass
class App:
    name: str
    key: str
    step: Decimal  # initial daily budget, and each raise
    amount: Decimal = Decimal(0)
    exhausted_since: float | None = None
    raised_at: float | None = None
    raises: int = 0
    recover_ms: list[float] = field(default_factory=list)  # raise → its next 200


@dataclass
class Run:
    apps: list[App]
    engine_url: str
    fake_url: str
    data_dir: Path
    env: dict[str, str]
    db: sa.Engine  # the ledger, read-only use (SQLite in the data dir, or PostgreSQL)
    deadline: float
    cap: int
    reset_after: float
    started: int = 0
    in_flight: int = 0
    running: asyncio.Event = field(default_factory=asyncio.Event)
    stop: bool = False
    counts: collections.Counter[tuple[str, str, str]] = field(default_factory=collections.Counter)
    client_ok: set[str] = field(default_factory=set)
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    served: list[dict[str, Any]] = field(default_factory=list)
    cli_ms: list[float] = field(default_factory=list)
    budget_samples: int = 0
    budget_violations: list[str] = field(default_factory=list)
    max_fill: float = 0.0  # highest (spent + reserved) / amount seen on an app counter
    engine_samples: list[dict[str, Any]] = field(default_factory=list)


# -- traffic ---------------------------------------------------------------------------------------
def request_for(kind: str, app: App, n: int) -> tuple[str, dict[str, str], dict[str, Any]]:
    text = f"soak {app.name} request {n}: say something"
    if kind.startswith("openai"):
        body: dict[str, Any] = {
            "model": OPENAI_MODEL,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text}],
        }
        headers = {"Authorization": f"Bearer {app.key}"}
        path = "/v1/chat/completions"
    else:
        body = {
            "model": ANTHROPIC_MODEL,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text}],
        }
        headers = {"x-api-key": app.key, "anthropic-version": "2023-06-01"}
        path = "/v1/messages"
    if kind.endswith("stream"):
        body["stream"] = True
    return path, headers, body


async def one(
    session: aiohttp.ClientSession, run: Run, app: App, kind: str, n: int
) -> tuple[str, str | None]:
    """Send one request and read all of it; (outcome, request id)."""
    path, headers, body = request_for(kind, app, n)
    async with session.post(run.engine_url + path, json=body, headers=headers) as r:
        rid = r.headers.get(REQUEST_ID)
        if r.status != 200:
            data = await r.read()
            code = r.headers.get("x-aiwallet-error-code", "")
            if r.status == 402 and b"budget_exceeded" not in data:
                code = "402 without budget_exceeded"
            return f"{r.status} {code}".strip(), rid
        if not body.get("stream"):
            data = await r.read()
            ok = b'"choices"' in data if kind == "openai" else b'"content"' in data
            return ("200" if ok else "200 malformed body"), rid
        end = b"data: [DONE]" if kind == "openai-stream" else b"event: message_stop"
        finished = False
        async for line in r.content:
            if line.strip() == end:
                finished = True
        return ("200" if finished else "200 stream without its end"), rid


async def worker(session: aiohttp.ClientSession, run: Run, app: App, first_kind: int) -> None:
    i = first_kind
    while not run.stop and run.started < run.cap and time.monotonic() < run.deadline:
        if not run.running.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.running.wait(), 60)
            continue
        kind = KINDS[i % len(KINDS)]
        i += 1
        run.started += 1
        run.in_flight += 1
        t0 = time.perf_counter()
        sent_at = time.monotonic()
        try:
            outcome, rid = await one(session, run, app, kind, run.started)
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome, rid = f"client {type(exc).__name__}", None
        finally:
            run.in_flight -= 1
        run.counts[(app.name, kind, outcome)] += 1
        if outcome == "200":
            assert rid is not None
            run.client_ok.add(rid)
            run.latencies[kind].append((time.perf_counter() - t0) * 1000)
            if app.raised_at is not None and sent_at >= app.raised_at:
                app.recover_ms.append((time.monotonic() - app.raised_at) * 1000)
                app.raised_at = None
        elif outcome.startswith("402"):
            if app.exhausted_since is None:
                app.exhausted_since = time.monotonic()
            await asyncio.sleep(0.25)  # as a client would, instead of spinning on refusals


async def raiser(run: Run) -> None:
    """Raise an app's budget by its step once it has been refused for run.reset_after s."""
    while not run.stop and time.monotonic() < run.deadline:
        await asyncio.sleep(0.5)
        for app in run.apps:
            since = app.exhausted_since
            if since is None or time.monotonic() - since < run.reset_after:
                continue
            new = app.amount + app.step
            cli = [sys.executable, "-m", "aiwallet", "--data-dir", str(run.data_dir)]
            t0 = time.perf_counter()
            proc = await asyncio.to_thread(
                subprocess.run,
                [*cli, "budget", "set", app.name, f"{new}/day"],
                env=run.env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            run.cli_ms.append((time.perf_counter() - t0) * 1000)
            if proc.returncode != 0:
                raise SystemExit(f"budget set failed: {proc.stderr.strip()}")
            app.amount = new
            app.raises += 1
            app.exhausted_since = None
            app.raised_at = time.monotonic()


def check_budgets(run: Run) -> None:
    """Every counter's spent (and spent + reserved) within its budget's amount, right now."""
    rows = query(
        run.db,
        "SELECT b.scope, b.app_id, b.amount_nano, c.window_key, c.spent_nano, "
        "c.reserved_nano FROM budget_counters c JOIN budgets b ON b.id = c.budget_id",
    )
    run.budget_samples += 1
    for scope, app_id, amount, window, spent, reserved in rows:
        if scope == "app" and amount:
            run.max_fill = max(run.max_fill, (spent + reserved) / amount)
        if spent > amount or spent + reserved > amount:
            run.budget_violations.append(
                f"{scope} {app_id} {window}: spent {spent} reserved {reserved} > {amount}"
            )


def ledger_engine(url: str | None, data_dir: Path) -> sa.Engine:
    """The ledger for reading while the engine writes: SQLite opened read-only, or the
    PostgreSQL database at ``url``."""
    if url is None:
        path = data_dir / "wallet.sqlite3"
        return sa.create_engine(
            f"sqlite:///file:{path}?mode=ro&uri=true", connect_args={"timeout": 10}
        )
    return sa.create_engine(url, pool_size=2)


def query(db: sa.Engine, sql: str) -> list[tuple[Any, ...]]:
    """Rows with every number as an int (PostgreSQL sums bigints as numeric)."""
    with db.connect() as conn:
        rows = conn.execute(sa.text(sql)).all()
    return [tuple(int(v) if isinstance(v, Decimal) else v for v in r) for r in rows]


async def engine_stats(session: aiohttp.ClientSession, run: Run, pid: int) -> dict[str, Any]:
    p = psutil.Process(pid)
    from aiwallet.engine import adminauth

    token = (run.data_dir / "admin.token").read_text().strip()
    base = run.engine_url
    client_nonce = adminauth.new_nonce()  # the admin API takes signed requests only
    async with session.get(
        f"{base}{adminauth.CHALLENGE_PATH}", params={"client_nonce": client_nonce}
    ) as r:
        nonce = (await r.json())["nonce"]
    mac = adminauth.request_mac(token, nonce, "GET", "/admin/v1/status", b"")
    async with session.get(
        f"{base}/admin/v1/status", headers={"Authorization": adminauth.auth_header(nonce, mac)}
    ) as r:
        status = await r.json()
    return {
        "t": time.monotonic(),
        "rss_mib": p.memory_info().rss / 2**20,
        "fds": p.num_fds(),
        "threads": p.num_threads(),
        "in_flight_settlements": status.get("in_flight_settlements"),
        "connections": len(p.net_connections(kind="tcp")),
    }


async def drain(session: aiohttp.ClientSession, run: Run) -> None:
    """Pause traffic until nothing is in flight, then take (and clear) the fake's record."""
    run.running.clear()
    try:
        limit = time.monotonic() + 60
        while run.in_flight and time.monotonic() < limit:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the fake marks a stream complete after its last write
        async with session.post(run.fake_url + "/_soak/drain") as r:
            run.served.extend(await r.json())
    finally:
        run.running.set()


async def monitor(session: aiohttp.ClientSession, run: Run, pid: int, checkpoint: float) -> None:
    next_checkpoint = time.monotonic() + checkpoint
    next_stats = time.monotonic() + 10
    while not run.stop and time.monotonic() < run.deadline:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(check_budgets, run)
        if time.monotonic() >= next_stats:
            run.engine_samples.append(await engine_stats(session, run, pid))
            next_stats += 10
        if time.monotonic() >= next_checkpoint:
            await drain(session, run)
            next_checkpoint += checkpoint


async def soak(
    run: Run, pid: int, conc: int, checkpoint: float, warmup: float
) -> tuple[dict[str, Any], ...]:
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as s:
        start = await engine_stats(s, run, pid)
        run.running.set()
        t0 = time.monotonic()
        workers = [
            worker(s, run, app, j + k) for k, app in enumerate(run.apps) for j in range(conc)
        ]

        async def after_warmup() -> dict[str, Any]:
            await asyncio.sleep(warmup)  # traffic runs meanwhile
            return await engine_stats(s, run, pid)

        warm_task = asyncio.ensure_future(after_warmup())
        background = [
            asyncio.ensure_future(raiser(run)),
            asyncio.ensure_future(monitor(s, run, pid, checkpoint)),
        ]
        try:
            await asyncio.gather(*workers)
            warm = await warm_task
        finally:
            run.stop = True
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        elapsed = time.monotonic() - t0
        run.running.set()
        await drain(s, run)
        # let the engine finish background settlements before reading the ledger
        limit = time.monotonic() + 30
        end = await engine_stats(s, run, pid)
        while end["in_flight_settlements"] and time.monotonic() < limit:
            await asyncio.sleep(0.2)
            end = await engine_stats(s, run, pid)
        await asyncio.to_thread(check_budgets, run)
    return start, warm, end, {"elapsed": elapsed}


# -- checks --------------------------------------------------------------------------------------
def price_nano(row: Any, api: str, usage: dict[str, Any]) -> int:
    """tokens × price per 1M tokens, summed exactly, divided by 1M rounding up (no cache,
    no reasoning tokens in this traffic: checked by the caller)."""
    if api == "openai":
        inp, out = usage["prompt_tokens"], usage["completion_tokens"]
    else:
        inp, out = usage["input_tokens"], usage["output_tokens"]
    total = inp * row.input + out * row.output
    return -(-total // 1_000_000)


def no_cache_or_reasoning(api: str, usage: dict[str, Any]) -> bool:
    if api == "openai":
        details = usage.get("prompt_tokens_details") or {}
        out_details = usage.get("completion_tokens_details") or {}
        return not details.get("cached_tokens") and not out_details.get("reasoning_tokens")
    return not usage.get("cache_read_input_tokens") and not usage.get("cache_creation_input_tokens")


def checks(
    run: Run, url: str | None, warm: dict[str, Any], end: dict[str, Any]
) -> list[tuple[str, bool, str]]:
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet

    w = Wallet.open(DataDir(run.data_dir), url=url)
    try:
        rows = {
            "openai": w.catalog.get("openai", OPENAI_MODEL),
            "anthropic": w.catalog.get("anthropic", ANTHROPIC_MODEL),
        }
    finally:
        w.close()
    ledger = query(
        run.db,
        "SELECT request_id, app_id, amount_nano, token_source FROM ledger WHERE kind='spend'",
    )
    [(open_res,)] = query(run.db, "SELECT count(*) FROM reservations WHERE state='open'")
    counters = dict(
        query(
            run.db,
            "SELECT b.app_id, sum(c.spent_nano) FROM budget_counters c "
            "JOIN budgets b ON b.id = c.budget_id WHERE b.scope='app' GROUP BY b.app_id",
        )
    )
    [(wallet_spent,)] = query(
        run.db,
        "SELECT coalesce(sum(c.spent_nano), 0) FROM budget_counters c "
        "JOIN budgets b ON b.id = c.budget_id WHERE b.scope='wallet'",
    )

    growth = end["rss_mib"] / warm["rss_mib"] - 1
    out: list[tuple[str, bool, str]] = [
        (
            f"memory: end within {RSS_GROWTH_MAX:.0%} of after warm-up",
            growth <= RSS_GROWTH_MAX,
            f"RSS {warm['rss_mib']:.1f} MiB after warm-up, {end['rss_mib']:.1f} MiB at the end "
            f"({growth:+.1%})",
        )
    ]
    served = [s for s in run.served if s["path"] in ("/v1/chat/completions", "/v1/messages")]
    no_rid = [s for s in served if not s["rid"]]
    ok = [s for s in served if s["status"] == 200]
    ok_ids = collections.Counter(s["rid"] for s in ok)
    dup_served = sum(1 for c in ok_ids.values() if c > 1)
    by_rid: dict[str, list[tuple[Any, ...]]] = collections.defaultdict(list)
    for row in ledger:
        by_rid[row[0]].append(row)
    not_once = sum(1 for rid in ok_ids if len(by_rid.get(rid, [])) != 1)
    unserved = sum(1 for rid in by_rid if rid not in ok_ids)
    out.append(
        (
            "fake's 200s ↔ ledger rows, one each",
            not no_rid and not dup_served and not not_once and not unserved,
            f"{len(served):,} served ({len(ok):,} with 200), {len(ledger):,} ledger rows; "
            f"no request id {len(no_rid)}, served twice {dup_served}, 200 without exactly one "
            f"row {not_once}, rows the fake did not serve {unserved}",
        )
    )
    missing_client = len(run.client_ok - set(ok_ids))
    out.append(
        (
            "clients' 200s all served and billed",
            not missing_client and run.client_ok <= set(by_rid),
            f"{len(run.client_ok):,} client 200s; not in the fake's record {missing_client}",
        )
    )
    incomplete = sum(1 for s in ok if not s["completed"])
    estimated = sum(1 for r in ledger if r[3] == "estimated")
    priced_sum = 0
    mismatch = unpriced = 0
    for s in ok:
        usage = s["reported"]
        if not isinstance(usage, dict) or not no_cache_or_reasoning(s["api"], usage):
            unpriced += 1
            continue
        want = price_nano(rows[s["api"]], s["api"], usage)
        priced_sum += want
        got = by_rid.get(s["rid"])
        if not got or got[0][2] != want:
            mismatch += 1
    ledger_sum = sum(r[2] for r in ledger)
    out.append(
        (
            "ledger = what the fake served, priced",
            not mismatch and not unpriced and ledger_sum == priced_sum and not incomplete,
            f"ledger {ledger_sum:,} n$, priced here {priced_sum:,} n$; rows differing "
            f"{mismatch}, unpriceable {unpriced}, incomplete 200s {incomplete}, "
            f"estimated rows {estimated}",
        )
    )
    out.append(("no open reservations", open_res == 0, f"{open_res} open"))
    ledger_by_app: collections.Counter[int] = collections.Counter()
    for r in ledger:
        ledger_by_app[r[1]] += r[2]
    counters_match = all(counters.get(a, 0) == n for a, n in ledger_by_app.items())
    out.append(
        (
            "budgets never exceeded; counters = ledger",
            not run.budget_violations and counters_match and wallet_spent == ledger_sum,
            f"{run.budget_samples} samples, {len(run.budget_violations)} over budget "
            f"(highest app fill {run.max_fill:.3%}); app counters = ledger per app: "
            f"{counters_match}; wallet counter = ledger: {wallet_spent == ledger_sum}",
        )
    )
    return out


# -- main ------------------------------------------------------------------------------------------
def main() -> None:
    if sys.argv[1:] == ["--serve-fake"]:
        serve_fake()
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--concurrency", type=int, default=4, help="workers per app")
    ap.add_argument("--reset-after", type=float, default=10.0, help="seconds refused, then raise")
    ap.add_argument("--checkpoint", type=float, default=60.0, help="drain the fake's record")
    ap.add_argument("--max-requests", type=int, default=0, help="default: 3,000 per second")
    ap.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds of traffic before the memory baseline (default: 10 %% of the run, "
        "10 to 60 s)",
    )
    ap.add_argument(
        "--postgres", action="store_true", help="the ledger on a throw-away PostgreSQL server"
    )
    args = ap.parse_args()
    seconds = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else min(60.0, max(10.0, seconds / 10))
    warmup = min(warmup, seconds / 2)

    from aiwallet.domain.money import parse_budget_spec
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet
    from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY

    tmp = Path(tempfile.mkdtemp(prefix="aiwallet-soak-"))
    env = bench_env(tmp)
    fake = engine = None
    pg: Any = None
    url: str | None = None
    if args.postgres:
        from pgserver import start_pg_server

        pg = start_pg_server()
        if isinstance(pg, str):
            raise SystemExit(f"--postgres: {pg}")
        url = pg.create_database()
        env["AIWALLET_DATABASE_URL"] = url  # the engine's and the CLI's; the data dir is local
    try:
        fake, fake_port = spawn_printing_port(
            [sys.executable, str(Path(__file__).resolve()), "--serve-fake"], env, tmp / "fake.log"
        )
        fake_url = f"http://127.0.0.1:{fake_port}"
        data_dir = DataDir(tmp / "wallet")
        w = Wallet.open(data_dir, url=url)
        w.add_provider("openai", kind="openai", api_key=OPENAI_KEY, base_url=f"{fake_url}/v1")
        w.add_provider("anthropic", kind="anthropic", api_key=ANTHROPIC_KEY, base_url=fake_url)
        w.set_budget(parse_budget_spec("1000/day"))
        apps = []
        for name, step in (("soak-a", "0.02"), ("soak-b", "0.03"), ("soak-c", "0.01")):
            _, key = w.create_app(
                name,
                budget=parse_budget_spec(f"{step}/day"),
                models=[OPENAI_MODEL, f"anthropic/{ANTHROPIC_MODEL}", ANTHROPIC_MODEL],
            )
            apps.append(App(name, key, Decimal(step), Decimal(step)))
        w.close()
        engine, engine_port = spawn_printing_port(
            serve_args(data_dir.root), env, tmp / "engine.log"
        )
        run = Run(
            apps=apps,
            engine_url=f"http://127.0.0.1:{engine_port}",
            fake_url=fake_url,
            data_dir=data_dir.root,
            env=env,
            db=ledger_engine(url, data_dir.root),
            deadline=time.monotonic() + seconds,
            cap=args.max_requests or int(seconds * 3000),
            reset_after=args.reset_after,
        )
        load0 = os.getloadavg()
        start, warm, end, info = asyncio.run(
            soak(run, engine.pid, args.concurrency, args.checkpoint, warmup)
        )
        load1 = os.getloadavg()
        results = checks(run, url, warm, end)
        run.db.dispose()
    finally:
        stop(engine)
        stop(fake)
        if pg is not None:
            pg.stop()

    info |= {"backend": "PostgreSQL" if url else "SQLite", "warmup": warmup}
    report(run, args, (start, warm, end), info, results, load0, load1)
    if not all(ok for _, ok, _ in results):
        sys.exit(1)


def report(
    run: Run,
    args: argparse.Namespace,
    samples: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
    info: dict[str, Any],
    results: list[tuple[str, bool, str]],
    load0: tuple[float, float, float],
    load1: tuple[float, float, float],
) -> None:
    start, warm, end = samples
    elapsed = info["elapsed"]
    total = sum(run.counts.values())
    ok = sum(n for (_, _, o), n in run.counts.items() if o == "200")
    refused = sum(n for (_, _, o), n in run.counts.items() if o.startswith("402"))
    other = total - ok - refused
    print(
        f"\nsoak on {info['backend']}: {elapsed:.0f} s, 3 apps × {args.concurrency} workers, "
        f"{total:,} requests ({total / elapsed:,.0f}/s): {ok:,} answered 200, "
        f"{refused:,} refused 402 budget_exceeded, {other} other; "
        f"load average {load0[0]:.2f} → {load1[0]:.2f}"
    )
    outcomes = collections.Counter[str]()
    for (_, _, o), n in run.counts.items():
        outcomes[o] += n
    print("outcomes:", dict(outcomes))
    print("\n| kind | 200s | 402s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
    for kind in KINDS:
        k_ok = sum(n for (_, k, o), n in run.counts.items() if k == kind and o == "200")
        k_402 = sum(n for (_, k, o), n in run.counts.items() if k == kind and o.startswith("402"))
        lat = run.latencies.get(kind) or [float("nan")]
        p99 = statistics.quantiles(lat, n=100)[98] if len(lat) > 100 else max(lat)
        print(f"| {kind} | {k_ok:,} | {k_402:,} | {statistics.median(lat):.2f} | {p99:.2f} |")
    print("\n| app | budget steps | raises | final budget | 200s | 402s | raise → next 200 p50 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for app in run.apps:
        a_ok = sum(n for (a, _, o), n in run.counts.items() if a == app.name and o == "200")
        a_402 = sum(
            n for (a, _, o), n in run.counts.items() if a == app.name and o.startswith("402")
        )
        rec = f"{statistics.median(app.recover_ms):.0f} ms" if app.recover_ms else ""
        print(
            f"| {app.name} | ${app.step} | {app.raises} | ${app.amount}/day | {a_ok:,} "
            f"| {a_402:,} | {rec} |"
        )
    if run.cli_ms:
        print(
            f"\n`budget set` through the CLI: {len(run.cli_ms)} calls, p50 "
            f"{statistics.median(run.cli_ms):.0f} ms (a new Python process each)"
        )
    peak_rss = max([warm["rss_mib"], end["rss_mib"], *(s["rss_mib"] for s in run.engine_samples)])
    peak_fds = max([warm["fds"], end["fds"], *(s["fds"] for s in run.engine_samples)])
    print(
        f"\n| engine | start | after {info['warmup']:.0f} s warm-up | peak (10 s samples) | end |"
        "\n|---|---:|---:|---:|---:|"
    )
    print(
        f"| RSS (MiB) | {start['rss_mib']:.1f} | {warm['rss_mib']:.1f} | {peak_rss:.1f} "
        f"| {end['rss_mib']:.1f} |"
    )
    print(f"| open fds | {start['fds']} | {warm['fds']} | {peak_fds} | {end['fds']} |")
    print(f"| threads | {start['threads']} | {warm['threads']} | | {end['threads']} |")
    print(
        f"| TCP connections | {start['connections']} | {warm['connections']} | "
        f"| {end['connections']} |"
    )
    print(
        f"| in_flight_settlements | {start['in_flight_settlements']} "
        f"| {warm['in_flight_settlements']} | | {end['in_flight_settlements']} |"
    )
    if run.engine_samples:
        series = ", ".join(f"{s['rss_mib']:.0f}" for s in run.engine_samples)
        print(f"\nRSS every 10 s (MiB): {series}")
    print("\n| check | result | detail |\n|---|---|---|")
    for name, passed, detail in results:
        print(f"| {name} | {'PASS' if passed else 'FAIL'} | {detail} |")
    for v in run.budget_violations[:5]:
        print("over budget:", v)
    print("\nPASS" if all(p for _, p, _ in results) else "\nFAIL")


if __name__ == "__main__":
    main()
