"""Crash loop: `aiwallet serve` killed with SIGKILL under load, again and again.

Each cycle starts `aiwallet serve` as a subprocess on one data dir (the in-process fake
upstream as both providers), puts it under load (worker threads sending OpenAI and Anthropic
requests, streamed and whole, bounded in count and time), kills it with SIGKILL at a random
moment and starts it again. After every restart:

- no reservation is left open (start-up bills what the dead engine left open);
- every request that reached the fake upstream (matched by the ``x-aiwallet-request-id``
  header the engine forwards), finished or cut off by the kill, has exactly one ledger row;
- the ledger agrees with the budget counters, and the audit chain verifies.

At the end, spent ≤ limit in every window of every budget (the budgets are tight enough that
some requests are refused for budget in a run).

It runs on both backends: SQLite in the data dir, and PostgreSQL (``AIWALLET_DATABASE_URL``
to a fresh database on the tests' throw-away server, the data dir still local; skipped when
PostgreSQL is absent, unless AIWALLET_REQUIRE_POSTGRES=1).

Cycles: 4 by default; ``AIWALLET_CRASH_LOOP_CYCLES=20`` for the long run. The kill moments
and the load come from one seeded RNG: the seed is printed (``-s`` shows it; it is also in the
failure message) and ``AIWALLET_CRASH_LOOP_SEED=<seed>`` replays a run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from test_crash import serve_args

from aiwallet.domain.money import parse_budget_spec
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from aiwallet.store import schema as t
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY, FakeUpstream, Script

TESTS = Path(__file__).resolve().parent.parent
SRC = TESTS.parent / "src"  # this checkout's code, not whichever one is installed
CYCLES = int(os.environ.get("AIWALLET_CRASH_LOOP_CYCLES", "4"))
SEED = int(os.environ.get("AIWALLET_CRASH_LOOP_SEED", str(random.SystemRandom().randrange(10**9))))
WORKERS = 8
MAX_REQUESTS_PER_WORKER = 300  # per cycle; the kill comes long before
BILLABLE = ("/v1/chat/completions", "/v1/messages")


class Serve:
    """One `aiwallet serve` subprocess; ended only by its own pid."""

    def __init__(
        self, data_dir: DataDir, log: Path, *, url: str | None = None, wait: bool = True
    ) -> None:
        self.stderr = log.open("ab")
        env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{TESTS}"}
        if url is not None:
            env["AIWALLET_DATABASE_URL"] = url  # the ledger there, the data dir still local
        self.proc = subprocess.Popen(
            serve_args(data_dir), stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env
        )
        self.port = 0
        if not wait:
            return
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()  # the port, once it listens
        if not line.isdigit():
            self.kill()
            raise AssertionError(f"serve did not start: {line!r}; see {log}")
        self.port = int(line)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(20)
        self.stderr.close()

    def terminate(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        finally:
            self.kill()


@dataclass
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str) -> None:
        with self.lock:
            self.outcomes[what] += 1


def worker(url: str, key: str, seed: int, stop: threading.Event, tally: Tally) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=httpx.Timeout(10.0, connect=2.0)) as client:
        for i in range(MAX_REQUESTS_PER_WORKER):
            if stop.is_set():
                return
            api = rng.choice(("openai", "anthropic"))
            stream = rng.random() < 0.6
            msgs = [
                {"role": "user", "content": f"crash loop {seed} {i} " + "w " * rng.randint(1, 30)}
            ]
            if api == "openai":
                path, headers = "/v1/chat/completions", {"Authorization": f"Bearer {key}"}
                body = {"model": "gpt-4o-mini", "messages": msgs, "max_tokens": 60}
            else:
                path = "/v1/messages"
                headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
                body = {"model": "claude-haiku-4-5", "messages": msgs, "max_tokens": 60}
            body["stream"] = stream
            try:
                with client.stream("POST", path, json=body, headers=headers) as resp:
                    for _ in resp.iter_raw():
                        pass
                tally.add(f"{resp.status_code}")
            except httpx.ConnectError:
                tally.add("refused")
                return  # the engine is dead: this worker's cycle is over
            except httpx.HTTPError:
                tally.add("cut")


def ledger_by_request(wallet: Wallet) -> Counter[str]:
    with wallet.db.read() as conn:
        return Counter(r[0] for r in conn.execute(select(t.ledger.c.request_id)))


def check_invariants(wallet: Wallet, fake: FakeUpstream, context: str) -> int:
    """The invariants that must hold after every restart; returns how many requests the
    provider completed."""
    assert wallet.budgets.open_reservations() == [], context
    rows = ledger_by_request(wallet)
    # every request that reached the provider is billed once: those it finished, and those
    # a kill cut off (start-up recovery bills their reservations), whatever the reservation
    # path: a request forwarded before its reservation was durable would be missing here
    received = [s for s in fake.served if s.path in BILLABLE and s.status == 200]
    ids = [s.headers.get("x-aiwallet-request-id") for s in received]
    assert None not in ids, context
    wrong = {rid: rows.get(rid, 0) for rid in ids if rows.get(rid, 0) != 1}
    assert wrong == {}, f"{context}: upstream requests without exactly one ledger row"
    completed = [s for s in received if s.completed]
    with wallet.db.read() as conn:
        ledger_total = conn.execute(
            select(func.coalesce(func.sum(t.ledger.c.amount_nano), 0)).where(
                t.ledger.c.kind == "spend"
            )
        ).scalar_one()
        counters = conn.execute(
            select(
                t.budgets.c.scope,
                func.sum(t.budget_counters.c.spent_nano),
                func.sum(t.budget_counters.c.reserved_nano),
            )
            .join(t.budgets, t.budgets.c.id == t.budget_counters.c.budget_id)
            .group_by(t.budgets.c.scope)
        ).all()
    for scope, spent, reserved in counters:  # one app, so each budget saw every spend
        assert (spent, reserved) == (ledger_total, 0), f"{context}: {scope} counters drifted"
    # every reservation start-up billed is in the audit log, and vice versa
    with wallet.db.read() as conn:
        billed_on_recovery = sorted(
            r[0]
            for r in conn.execute(
                select(t.ledger.c.request_id).where(t.ledger.c.note.like("engine stopped%"))
            )
        )
    audited = sorted(
        e.details["request_id"]
        for e in wallet.audit.entries()
        if e.action == "reservation.recover" and e.details.get("outcome") == "billed"
    )
    assert billed_on_recovery == audited, f"{context}: recovery and its audit disagree"
    verification = wallet.verify_audit()
    assert verification.ok, f"{context}: {verification}"
    return len(completed)


def test_crash_loop(tmp_path, fake, db_url):
    """On each backend: SQLite in the data dir, and a fresh database on the session's
    throw-away PostgreSQL (``AIWALLET_DATABASE_URL``; the data dir stays local)."""
    url = None if db_url.startswith("sqlite") else db_url
    print(f"crash loop: {CYCLES} cycles, seed {SEED} (AIWALLET_CRASH_LOOP_SEED={SEED} replays)")
    rng = random.Random(SEED)
    fake.reset()
    fake.set_default(Script(reply_tokens=20, event_delay_s=0.01))
    data_dir = DataDir(tmp_path / "wallet")
    wallet = Wallet.open(data_dir, url=url)
    wallet.add_provider("openai", kind="openai", api_key=OPENAI_KEY, base_url=fake.base_url + "/v1")
    wallet.add_provider(
        "anthropic", kind="anthropic", api_key=ANTHROPIC_KEY, base_url=fake.base_url
    )
    # tight: about a cycle's worth of spend per cycle, so budget refusals happen too
    _, key = wallet.create_app("loader", budget=parse_budget_spec(f"{0.003 * CYCLES:.3f}/day"))
    wallet.set_budget(parse_budget_spec(f"{0.0035 * CYCLES:.4f}/day"))
    wallet.close()
    log = tmp_path / "serve.log"
    tally = Tally()
    recovered = 0
    serve: Serve | None = None
    try:
        for cycle in range(CYCLES):
            context = f"seed {SEED}, cycle {cycle}"
            if cycle and rng.random() < 0.5:
                # a kill during start-up, while it may be recovering the last kill's leftovers
                early = Serve(data_dir, log, url=url, wait=False)
                time.sleep(rng.uniform(0.0, 0.5))
                early.kill()
            serve = Serve(data_dir, log, url=url)
            wallet = Wallet.open(data_dir, url=url)
            try:
                check_invariants(wallet, fake, f"{context}, after restart")
            finally:
                wallet.close()
            stop = threading.Event()
            threads = [
                threading.Thread(
                    target=worker,
                    args=(serve.url, key, rng.randrange(10**9), stop, tally),
                    daemon=True,
                )
                for _ in range(WORKERS)
            ]
            for th in threads:
                th.start()
            time.sleep(rng.uniform(0.2, 1.2))  # the kill lands at a random moment of the load
            serve.kill()
            stop.set()
            for th in threads:
                th.join(30)
            assert not any(th.is_alive() for th in threads), context
            serve = None
        serve = Serve(data_dir, log, url=url)  # the last restart recovers the last kill
        wallet = Wallet.open(data_dir, url=url)
        try:
            completed = check_invariants(wallet, fake, f"seed {SEED}, final")
            recovered = sum(1 for e in wallet.audit.entries() if e.action == "reservation.recover")
            with wallet.db.read() as conn:
                windows = conn.execute(
                    select(
                        t.budgets.c.scope,
                        t.budget_counters.c.window_key,
                        t.budget_counters.c.spent_nano,
                        t.budgets.c.amount_nano,
                    ).join(t.budgets, t.budgets.c.id == t.budget_counters.c.budget_id)
                ).all()
        finally:
            wallet.close()
        serve.terminate()
        serve = None
    finally:
        if serve is not None:
            serve.kill()
        fake.set_default(Script())
    print(
        f"crash loop: {dict(tally.outcomes)}, {completed} completed upstream, {recovered} recovered"
    )
    print(f"crash loop: budget windows (scope, window, spent, limit): {windows}")
    assert windows, "the budgets were used"
    over = [(s, w, spent, limit) for s, w, spent, limit in windows if spent > limit]
    assert over == [], f"seed {SEED}: spent over the limit"
    # the load was real: requests completed, and kills cut some of them off
    assert completed > 0 and tally.outcomes["200"] > 0, dict(tally.outcomes)
    assert tally.outcomes["cut"] + tally.outcomes["refused"] + recovered > 0, dict(tally.outcomes)


def test_a_crash_during_recovery_bills_and_audits_together(tmp_path, db_url, monkeypatch):
    """Regression: recovery billed a reservation and audited it in two transactions, so a
    kill between them left spend with no ``reservation.recover`` entry, for good (the next
    start-up found nothing open). Now both commit together, or neither does."""
    from datetime import UTC, datetime

    from aiwallet.store import budgets as budgets_module

    wallet = Wallet.open(DataDir(tmp_path / "wallet"), url=db_url)
    try:
        app, _ = wallet.create_app("a", budget=parse_budget_spec("1/day"))
        [budget] = wallet.budgets.applicable(app.id)
        res = wallet.budgets.reserve(
            [budget.id], 5_000, at=datetime.now(UTC), tz=UTC, request_id="r-1", app_id=app.id
        )

        def killed(*args: object, **kwargs: object) -> None:
            raise RuntimeError("killed between the settlement and its audit entry")

        monkeypatch.setattr(budgets_module, "append_audit", killed)
        with pytest.raises(RuntimeError):
            wallet.budgets.recover_open()
        monkeypatch.undo()
        # either nothing happened (and the next start-up recovers it), or both did
        recovered = [e for e in wallet.audit.entries() if e.action == "reservation.recover"]
        assert ledger_by_request(wallet) == Counter()
        assert recovered == [] and [r.id for r in wallet.budgets.open_reservations()] == [res.id]
        [(again, outcome)] = wallet.budgets.recover_open()
        assert (again.id, outcome) == (res.id, "billed")
        assert ledger_by_request(wallet) == Counter({"r-1": 1})
        [entry] = [e for e in wallet.audit.entries() if e.action == "reservation.recover"]
        assert entry.details["request_id"] == "r-1" and wallet.verify_audit().ok
    finally:
        wallet.close()
