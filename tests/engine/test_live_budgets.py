"""Budget counters in memory (engine/live_budgets.py): a SQLite ledger's only writer grants
reservations without waiting for a commit, and still loses nothing.

- A grant is on disk (the journal) before its request leaves: with the writer unable to
  commit at all, a request is forwarded, the engine is killed, and the restart bills it.
- Room comes back only after the database has it: a settlement the writer has not committed
  frees nothing yet.
- The counters in memory equal the database's once the writer is idle, after mixed traffic.
- A blocking caller in the process (a top-up) is granted by the same counters.
- The journal rolls over and is gone after a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import threading
from datetime import UTC, datetime

import httpx
import openai
import pytest
from sqlalchemy import select
from test_crash import start_serve

from aiwallet.domain.money import parse_budget_spec
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from aiwallet.store import reservation_journal
from aiwallet.store import schema as t
from aiwallet.store.budgets import BudgetRefused
from engine.conftest import make_rig
from fakeupstream import OPENAI_KEY
from waiting import wait_until

MSGS = [{"role": "user", "content": "hello there"}]


def _on_loop(rig, coro):
    return asyncio.run_coroutine_threadsafe(coro, rig.engine.loop).result(30)


def _idle(rig) -> None:
    """Every write queued so far is committed, and its counter events applied."""
    _on_loop(rig, rig.engine.state.write(lambda conn: None))
    _on_loop(rig, asyncio.sleep(0))  # the listener's call_soon_threadsafe ran before this


def _db_counters(wallet: Wallet) -> dict[tuple[int, str], int]:
    c = t.budget_counters.c
    with wallet.db.read() as conn:
        rows = conn.execute(select(c.budget_id, c.window_key, c.spent_nano + c.reserved_nano))
        return {(int(b), str(k)): int(u) for b, k, u in rows}


class _WriteLock:
    """The SQLite write lock, held by the test: the engine's writer cannot commit."""

    def __init__(self, data_dir: DataDir) -> None:
        self.conn = sqlite3.connect(data_dir.database, isolation_level=None, timeout=30)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None


def test_a_grant_forwarded_before_its_record_commits_is_billed_after_kill_9(tmp_path, fake):
    fake.reset()
    data_dir = DataDir(tmp_path / "wallet")
    wallet = Wallet.open(data_dir)
    wallet.add_provider("openai", kind="openai", api_key=OPENAI_KEY, base_url=fake.base_url + "/v1")
    _, key = wallet.create_app("killed", budget=parse_budget_spec("5/day"))
    wallet.close()
    proc, port = start_serve(data_dir)
    lock = None
    try:
        # the first request of a window reads its counter from the database; from the second
        # on, nothing in the database is waited for before forwarding
        warm = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 5},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert warm.status_code == 200
        fake.reset()
        lock = _WriteLock(data_dir)  # from now on no write of the engine can commit

        def call() -> None:
            with contextlib.suppress(httpx.HTTPError):  # killed while the client waits
                httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 50},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=60,
                )

        th = threading.Thread(target=call)
        th.start()
        # the provider answered although nothing could be committed: the grant did not wait
        wait_until(lambda: any(s.completed for s in fake.served), timeout_s=30, what="the forward")
        journal = list(data_dir.root.glob("wallet.sqlite3-grants.*"))
        assert journal and b'"t":"reserve"' in journal[0].read_bytes()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        th.join(60)
    finally:
        if lock is not None:
            lock.release()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    [served] = [s for s in fake.served if s.completed]
    request_id = served.headers["x-aiwallet-request-id"]

    proc2, _ = start_serve(data_dir)  # replays the journal, then bills what is open
    proc2.send_signal(signal.SIGTERM)
    proc2.wait(20)

    wallet = Wallet.open(data_dir)
    try:
        assert wallet.budgets.open_reservations() == []
        with wallet.db.read() as conn:
            [row] = conn.execute(
                select(
                    t.ledger.c.amount_nano, t.ledger.c.token_source, t.ledger.c.price_row_ref
                ).where(t.ledger.c.request_id == request_id)
            ).all()
            [res] = conn.execute(
                select(t.reservations.c.amount_nano, t.reservations.c.state).where(
                    t.reservations.c.request_id == request_id
                )
            ).all()
        assert res.state == "settled" and row.amount_nano == res.amount_nano > 0
        assert row.token_source == "estimated" and row.price_row_ref  # its worst case, priced
        with wallet.db.read() as conn:
            total = sum(a for (a,) in conn.execute(select(t.ledger.c.amount_nano)))
        assert sum(_db_counters(wallet).values()) == total  # counters = ledger
        assert "reservation.recover" in [e.action for e in wallet.audit.entries()]
        assert wallet.verify_audit().ok
        # replayed, then dropped: what is left is at most the empty segment of the restart
        left = list(data_dir.root.glob("wallet.sqlite3-grants.*"))
        assert all(p.read_bytes() == b"" for p in left), left
    finally:
        wallet.close()


def test_room_comes_back_only_once_the_settlement_is_committed(rig):
    # gpt-4o-mini, max_tokens 2000: a worst case of about $0.0012; the budget holds one
    app, key = rig.wallet.create_app("one-at-a-time", budget=parse_budget_spec("0.002/day"))
    budget = rig.wallet.budgets.app_budget(app.id)
    body = {"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 2000}
    url = rig.url + "/v1/chat/completions"
    live = rig.engine.state.live
    assert live is not None

    def second_fits(amount: int) -> bool:
        try:
            _on_loop(rig, live.reserve((budget,), amount, at=datetime.now(UTC),
                                       tz=rig.wallet.timezone, request_id="probe",
                                       app_id=app.id, priced=None))  # fmt: skip
        except BudgetRefused:
            return False
        return True

    warm = httpx.post(
        url, json={**body, "max_tokens": 5}, headers={"Authorization": f"Bearer {key}"}
    )
    assert warm.status_code == 200  # the window's counter is read: nothing waits from here on
    _idle(rig)
    rig.fake.reset()
    [before] = live.remaining((budget,), datetime.now(UTC), rig.wallet.timezone)
    lock = _WriteLock(rig.data_dir)
    first: list[httpx.Response] = []

    def call() -> None:
        first.append(
            httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=90)
        )

    th = threading.Thread(target=call)
    try:
        th.start()
        wait_until(lambda: any(s.completed for s in rig.fake.served), timeout_s=30,
                   what="the first answer")  # fmt: skip
        [res] = live._open.values()
        worst = res.amount
        assert 1_000_000 < worst <= 2_000_000
        # its real cost is tiny, but its settlement is not committed: its worst case holds
        assert not second_fits(worst)
        assert live.remaining((budget,), datetime.now(UTC), rig.wallet.timezone) == [before - worst]
    finally:
        lock.release()
        th.join(90)
    assert first[0].status_code == 200
    _idle(rig)
    row = rig.ledger_rows()[-1]
    assert 0 < row["amount_nano"] < worst // 10
    assert live.remaining((budget,), datetime.now(UTC), rig.wallet.timezone) == [
        before - row["amount_nano"]
    ]
    assert second_fits(worst)  # committed now: the room came back


def test_live_counters_equal_the_database_after_mixed_traffic(rig):
    key = rig.app("mixed", budget="0.01/day")
    rig.wallet.set_budget(parse_budget_spec("0.02/day"))  # the wallet's, above both
    outcomes: dict[str, int] = {}

    async def one(client, i):
        try:
            if i % 3 == 0:
                s = await client.chat.completions.create(
                    model="gpt-4o", messages=MSGS, max_tokens=40, stream=True
                )
                async for _ in s:
                    pass
            else:
                await client.chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=40)
            outcomes["ok"] = outcomes.get("ok", 0) + 1
        except openai.APIStatusError as exc:
            code = exc.body.get("code") if isinstance(exc.body, dict) else None
            outcomes[str(code)] = outcomes.get(str(code), 0) + 1

    async def main():
        client = rig.async_openai(key, timeout=30)
        await asyncio.gather(*(one(client, i) for i in range(120)))
        await client.close()

    asyncio.run(main())
    assert set(outcomes) <= {"ok", "budget_exceeded"} and outcomes.get("ok"), outcomes
    _idle(rig)
    live = rig.engine.state.live
    assert live is not None and live._open == {}
    in_memory = {k: c.used for k, c in live._counters.items()}
    assert in_memory == _db_counters(rig.wallet)
    spent = sum(r["amount_nano"] for r in rig.ledger_rows())
    assert spent <= 10_000_000 and rig.wallet.budgets.open_reservations() == []


def test_a_blocking_reservation_in_the_process_is_granted_by_the_live_counters(rig):
    """A top-up reserves with Budgets.reserve from another thread: the engine's counters
    grant it, so requests see it at once, and its release gives the room back."""
    key = rig.app("beside-a-topup", budget=None)
    rig.wallet.set_budget(parse_budget_spec("0.01/day"))
    client = rig.openai(key)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=100)
    wallet_budget = rig.wallet.budgets.wallet_budget()
    res = rig.wallet.budgets.reserve(
        [wallet_budget.id], 9_990_000, at=datetime.now(UTC), tz=rig.wallet.timezone,
        request_id="topup:test",
    )  # fmt: skip
    assert res.counter_ids  # recorded (committed) when reserve returns
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=2000)
    assert refused.value.status_code == 402
    with pytest.raises(BudgetRefused):  # and a second one does not fit next to it either
        rig.wallet.budgets.reserve(
            [wallet_budget.id], 9_990_000, at=datetime.now(UTC), tz=rig.wallet.timezone,
            request_id="topup:test2",
        )  # fmt: skip
    assert rig.wallet.budgets.release(res.id)  # a plain transaction of this process
    _idle(rig)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=2000)


def test_the_journal_rolls_over_and_is_gone_after_a_clean_stop(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(reservation_journal, "SEGMENT_BYTES", 1500)  # a few grants each
    fake.reset()
    rig = make_rig(tmp_path, fake)
    try:
        key = rig.app("journal", budget="1/day")
        client = rig.openai(key)
        for _ in range(30):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=20)
        _idle(rig)
        _idle(rig)  # the barrier after the last roll-over resolved; its segment went
        segments = list(rig.data_dir.root.glob("wallet.sqlite3-grants.*"))
        # what is committed is not kept: only the segment being written and at most one
        # whose barrier is in flight are left of the ~8 this wrote
        assert 1 <= len(segments) <= 2, segments
    finally:
        rig.engine.stop()
        rig.wallet.close()
    assert list(rig.data_dir.root.glob("wallet.sqlite3-grants.*")) == []
    wallet = Wallet.open(rig.data_dir)  # and the data dir's lock went with the engine
    try:
        again = wallet.new_engine(port=0)
        again.start()
        again.stop()
    finally:
        wallet.close()
