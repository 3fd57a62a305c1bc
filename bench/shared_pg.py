"""Two engines on one PostgreSQL ledger: throughput together vs one alone, and a tight shared
budget hammered from both, checked from the ledger.

    .venv/bin/python bench/shared_pg.py            # 10 s per phase
    .venv/bin/python bench/shared_pg.py --quick    # 3 s per phase

Starts a throw-away PostgreSQL (tests/pgserver.py: initdb in a temp dir, loopback only,
stopped at the end), the fake upstream (``python -m fakeupstream --port 0``) and two
``aiwallet serve`` processes, each on its own data dir, both on one database through
``AIWALLET_DATABASE_URL`` and on the same (test file) keyring, which is how two wallets share
one PostgreSQL ledger: the wallet id, and with it the keyring entries' names, is the
database's. The providers, the apps and their budgets are set up once, through the first
wallet. Everything listens on 127.0.0.1.

Phases, each ``wrk`` (POST via a Lua script: OpenAI chat completions, every other one
streamed) for ``--seconds`` and at most ``--max-requests`` responses per wrk process:

1. one engine alone, 32 connections;
2. both engines at once, 16 connections each (32 in all), under a generous shared budget;
3. tight budget: a new app whose total budget pays for ``--tight-requests`` requests (one
   request's cost measured from the ledger of phases 1 and 2: the fake's answers to the same
   body are always the same), both engines hammered with its key at once.

Printed: req/s for one engine vs two together, p50/p99 per wrk process, and CPU per request
of each engine (user + system, psutil), of PostgreSQL (every server process) and of the fake.
Checked from the ledger after phase 3 (PASS/FAIL; the exit status is 1 on any FAIL): spend
≤ the budget (no overspend across the two engines), the budget reached (what is left pays for
less than one request's reservation), no request id with two spend rows, no reservation open,
and the budget counters equal to the ledger's sum.

The machine's other load makes the figures noisy; compare phases of one run only.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from benchkit import FAKE_ARGS, bench_env, serve_args, spawn_printing_port, stop
from wrkload import WrkRejected, WrkResult, require_wrk, start_wrk

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))

MODEL = "gpt-4o-mini"
MAX_TOKENS = 64
PATH = "/v1/chat/completions"


def body(stream: bool) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": "shared ledger bench: say something"}],
        "stream": stream,
    }


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def pg_processes(pg: Any) -> list[psutil.Process]:
    """The PostgreSQL server's processes (its postmaster and every child), by its pid file."""
    try:
        pid = int((pg.datadir / "postmaster.pid").read_text().split()[0])
        main = psutil.Process(pid)
        return [main, *main.children(recursive=True)]
    except (OSError, ValueError, psutil.Error):
        return []


@dataclass
class Procs:
    engines: list[psutil.Process]
    fake: psutil.Process
    pg: Any

    def sample(self) -> dict[str, float]:
        out = {f"engine {'ab'[i]}": cpu_s([p]) for i, p in enumerate(self.engines)}
        out["fake"] = cpu_s([self.fake])
        out["postgres"] = cpu_s(pg_processes(self.pg))  # its backends come and go: a floor
        return out


def phase(
    name: str,
    urls: list[str],
    keys: list[str],
    connections: int,
    seconds: float,
    procs: Procs,
    *,
    max_requests: int,
    refusals: bool = False,
) -> tuple[list[WrkResult], dict[str, float], float]:
    """wrk on each URL at once (whole and streamed requests in turn, each with its app key):
    the results, CPU seconds used per process, wall seconds. Unless ``refusals`` are the
    point (the tight phase), a run with any non-2xx answer or socket error is rejected."""
    before = procs.sample()
    t0 = time.monotonic()
    running = [
        start_wrk(
            u,
            body(False),
            auth(k),
            more_bodies=[body(True)],
            duration_s=seconds,
            threads=2 if connections >= 32 else 1,
            connections=connections,
            max_requests=max_requests,
            timeout_s=30,
            show_first_non_2xx=True,
        )
        for u, k in zip(urls, keys, strict=True)
    ]
    results = [r.finish() for r in running]
    wall = time.monotonic() - t0
    after = procs.sample()
    used = {k: after[k] - before[k] for k in after}
    print(f"\n{name}:")
    for i, r in enumerate(results):
        extra = f", {r.non_2xx} non-2xx" if r.non_2xx else ""
        extra += f", socket errors {r.errors}" if r.socket_errors else ""
        extra += f"; first: {r.first_non_2xx[:160]}" if r.first_non_2xx else ""
        print(
            f"  wrk -c{connections} on engine {'ab'[i] if len(urls) > 1 else 'a'}: "
            f"{r.requests:,} requests, {r.rps:,.0f} req/s, p50 {r.p50_ms:.2f} ms, "
            f"p99 {r.p99_ms:.2f} ms{extra}"
        )
    for r in results:
        if refusals:
            if r.capped_threads or r.socket_errors:
                raise WrkRejected(f"{name}: capped or socket errors ({r.errors})")
        else:
            r.check(name)
    return results, used, wall


def wait_closed(wallet: Any, timeout_s: float) -> bool:
    """Poll (bounded) until no reservation is open: the engines settle what wrk cut off."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not wallet.budgets.open_reservations():
            return True
        time.sleep(0.1)
    return not wallet.budgets.open_reservations()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 s per phase")
    ap.add_argument("--seconds", type=float, default=None, help="per phase (default 10, quick 3)")
    ap.add_argument("--max-requests", type=int, default=60_000, help="per wrk process")
    ap.add_argument("--tight-requests", type=int, default=None, help="default 300, quick 100")
    args = ap.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    tight_n = args.tight_requests or (100 if args.quick else 300)
    require_wrk()

    from sqlalchemy import func, select

    from aiwallet.domain.money import BudgetSpec, Period, format_usd_short, parse_budget_spec
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet
    from aiwallet.store import schema as t
    from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY
    from pgserver import start_pg_server

    tmp = Path(tempfile.mkdtemp(prefix="aiwallet-shared-pg-"))
    env = bench_env(tmp)
    pg = start_pg_server()
    if isinstance(pg, str):
        raise SystemExit(f"PostgreSQL: {pg}")
    fake = None
    engines: list[subprocess.Popen[str]] = []
    wallet = None
    results: list[tuple[str, bool, str]] = []
    try:
        url = pg.create_database()
        env["AIWALLET_DATABASE_URL"] = url  # both engines' ledger; the data dirs stay local
        fake, fake_port = spawn_printing_port(FAKE_ARGS, env, tmp / "fake.log")
        fake_url = f"http://127.0.0.1:{fake_port}"
        dirs = [DataDir(tmp / "wallet-a"), DataDir(tmp / "wallet-b")]
        wallet = Wallet.open(dirs[0], url=url)
        wallet.add_provider("openai", kind="openai", api_key=OPENAI_KEY, base_url=f"{fake_url}/v1")
        wallet.add_provider("anthropic", kind="anthropic", api_key=ANTHROPIC_KEY, base_url=fake_url)
        wallet.set_budget(parse_budget_spec("100000/day"))
        _, key = wallet.create_app("bench", budget=parse_budget_spec("100000/day"))
        for i, d in enumerate(dirs):
            proc, _port = spawn_printing_port(
                serve_args(d.root), env, tmp / f"engine-{'ab'[i]}.log"
            )
            engines.append(proc)
        ports = [json.loads(d.engine_file.read_text())["port"] for d in dirs]
        urls = [f"http://127.0.0.1:{p}{PATH}" for p in ports]
        for u in urls:  # one request each by hand first: a setup problem shows here, plainly
            probe = httpx.post(u, json=body(False), headers=auth(key), timeout=30)
            if probe.status_code != 200:
                raise SystemExit(f"{u}: {probe.status_code} {probe.text[:300]}")
        procs = Procs([psutil.Process(p.pid) for p in engines], psutil.Process(fake.pid), pg)
        print(
            f"two engines (pids {engines[0].pid}, {engines[1].pid}) on one PostgreSQL "
            f"database, ports {ports}; fake upstream on {fake_port}; {seconds:g} s per phase, "
            f"at most {args.max_requests:,} responses per wrk process; {psutil.cpu_count()} "
            f"CPUs, load average {psutil.getloadavg()[0]:.2f}"
        )

        # warm-up: pools, caches, the fake's and PostgreSQL's first connections
        cap = args.max_requests
        phase("warm-up (1 s, both engines)", urls, [key, key], 8, 1, procs, max_requests=cap)
        alone, used_a, _ = phase(
            "phase 1, one engine alone (c=32)",
            urls[:1],
            [key],
            32,
            seconds,
            procs,
            max_requests=cap,
        )
        both, used_b, _ = phase(
            "phase 2, both engines at once (c=16 each)",
            urls,
            [key, key],
            16,
            seconds,
            procs,
            max_requests=cap,
        )
        together = sum(r.rps for r in both)
        print(
            "\n| | req/s | engine a CPU ms/req | engine b CPU ms/req | PostgreSQL CPU ms/req "
            "| fake CPU ms/req |\n|---|---:|---:|---:|---:|---:|"
        )
        n_a = alone[0].requests or 1
        print(
            f"| one engine, c=32 | {alone[0].rps:,.0f} | {used_a['engine a'] * 1000 / n_a:.2f} "
            f"| (idle: {used_a['engine b'] * 1000:.0f} ms in all) "
            f"| {used_a['postgres'] * 1000 / n_a:.2f} | {used_a['fake'] * 1000 / n_a:.2f} |"
        )
        n_b = sum(r.requests for r in both) or 1
        print(
            f"| two engines, c=16 each | {together:,.0f} "
            f"| {used_b['engine a'] * 1000 / (both[0].requests or 1):.2f} "
            f"| {used_b['engine b'] * 1000 / (both[1].requests or 1):.2f} "
            f"| {used_b['postgres'] * 1000 / n_b:.2f} | {used_b['fake'] * 1000 / n_b:.2f} |"
        )
        print(f"two together / one alone: {together / (alone[0].rps or 1):.2f}x")

        # phase 3: a budget of a known number of requests, shared by both engines
        if not wait_closed(wallet, 30):
            still = wallet.budgets.open_reservations()
            rids = {r.request_id for r in still}
            logged = [r for r in wallet.requests.recent(100_000) if r["id"] in rids]
            raise SystemExit(
                f"{len(still)} reservations still open 30 s after phase 2: {still[:3]}; "
                f"their requests logged: {logged[:3]}; engine logs in {tmp}"
            )
        with wallet.db.read() as conn:
            costs = conn.execute(
                select(t.ledger.c.amount_nano, func.count())
                .where(t.ledger.c.kind == "spend", t.ledger.c.token_source != "estimated")
                .group_by(t.ledger.c.amount_nano)
            ).all()
        if not costs:
            raise SystemExit("phases 1 and 2 left no billed request to measure a cost from")
        per_request = max(c for c, _ in costs)  # whole and streamed answers may differ a little
        limit = per_request * tight_n
        app, tight_key = wallet.create_app("tight", budget=BudgetSpec(limit, Period.TOTAL))
        print(
            f"\nphase 3, tight budget: {format_usd_short(limit)} total = {tight_n} requests at "
            f"{format_usd_short(per_request)} (costs seen: "
            f"{', '.join(f'{c} nano × {n}' for c, n in costs)})"
        )
        hammered, _, wall = phase(
            "  both engines at once (c=16 each)",
            urls,
            [tight_key, tight_key],
            16,
            seconds,
            procs,
            max_requests=cap,
            refusals=True,
        )
        closed = wait_closed(wallet, 30)
        with wallet.db.read() as conn:
            rows = conn.execute(
                select(
                    t.ledger.c.request_id, t.ledger.c.amount_nano, t.ledger.c.token_source
                ).where(t.ledger.c.kind == "spend", t.ledger.c.app_id == app.id)
            ).all()
            biggest = conn.execute(
                select(func.max(t.reservations.c.amount_nano)).where(
                    t.reservations.c.app_id == app.id
                )
            ).scalar()
            counters = conn.execute(
                select(
                    func.coalesce(func.sum(t.budget_counters.c.spent_nano), 0),
                    func.coalesce(func.sum(t.budget_counters.c.reserved_nano), 0),
                )
                .join(t.budgets, t.budgets.c.id == t.budget_counters.c.budget_id)
                .where(t.budgets.c.app_id == app.id)
            ).one()
            statuses = collections.Counter(
                f"{s} {c or ''}".strip()
                for s, c in conn.execute(
                    select(t.requests.c.status, t.requests.c.error_code).where(
                        t.requests.c.app_id == app.id
                    )
                ).all()
            )
        spent = sum(int(r[1]) for r in rows)
        per_rid = collections.Counter(r[0] for r in rows)
        sources = collections.Counter(r[2] for r in rows)
        print(
            f"  {sum(r.requests for r in hammered):,} responses in {wall:.1f} s; the requests "
            f"log for the app: {dict(statuses)}; spend rows by token source: {dict(sources)}"
        )
        print(
            f"  spent {spent:,} of {limit:,} nano ({spent / limit:.2%}); largest reservation "
            f"{int(biggest or 0):,} nano"
        )
        results = [
            ("spend ≤ budget (no overspend across the two engines)", spent <= limit, ""),
            (
                "budget reached (what is left pays for less than one reservation)",
                biggest is not None and limit - spent < int(biggest),
                f"{limit - spent:,} nano left",
            ),
            ("one spend row per request id", max(per_rid.values(), default=1) == 1, ""),
            ("no reservation open", closed, ""),
            (
                "budget counters = the ledger (spent), nothing reserved",
                (int(counters[0]), int(counters[1])) == (spent, 0),
                f"counters {tuple(int(c) for c in counters)}",
            ),
            (
                "both engines answered 200s and refused with 402",
                all(r.requests > r.non_2xx > 0 for r in hammered),
                ", ".join(f"{r.requests - r.non_2xx} ok / {r.non_2xx} non-2xx" for r in hammered),
            ),
        ]
    finally:
        if wallet is not None:
            wallet.close()
        for proc in engines:
            stop(proc)
        stop(fake)
        pg.stop()
    print()
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'}: {name}" + (f" ({detail})" if detail else ""))
    if not results or not all(ok for _, ok, _ in results):
        print(f"the engines' and the fake's logs: {tmp}")
        sys.exit(1)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
