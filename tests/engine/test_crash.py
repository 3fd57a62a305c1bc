"""kill -9 of `aiwallet serve` mid-stream, then a restart: nothing open, nothing missing."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from aiwallet.domain.money import parse_budget_spec
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from aiwallet.store import schema as t
from fakeupstream import OPENAI_KEY, Script
from waiting import wait_until

TESTS = Path(__file__).resolve().parent.parent
SRC = TESTS.parent / "src"  # this checkout's code, not whichever one is installed


def serve_args(data_dir: DataDir) -> list[str]:
    """``aiwallet serve`` on a free loopback port (it prints the port on stdout)."""
    return [sys.executable, "-m", "aiwallet", "--data-dir", str(data_dir.root), "serve", "--port",
            "0"]  # fmt: skip


def start_serve(data_dir: DataDir) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        serve_args(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{TESTS}"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.isdigit(), proc.stderr.read() if proc.poll() is not None else line
    return proc, int(line)


def test_kill_9_mid_stream_then_restart(tmp_path, fake):
    fake.reset()
    data_dir = DataDir(tmp_path / "wallet")
    wallet = Wallet.open(data_dir)
    wallet.add_provider("openai", kind="openai", api_key=OPENAI_KEY, base_url=fake.base_url + "/v1")
    _, key = wallet.create_app("streamer", budget=parse_budget_spec("5/day"))
    wallet.close()

    fake.set_default(Script(reply_tokens=30, event_delay_s=0.03))  # ~1 s per stream
    proc, port = start_serve(data_dir)
    results: list[str] = []

    def client(i: int) -> None:
        try:
            with httpx.stream(
                "POST",
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"n {i}"}],
                    "stream": True,
                },
                headers={"Authorization": f"Bearer {key}"},
                timeout=20,
            ) as resp:
                for _ in resp.iter_raw():
                    pass
            results.append("done")
        except httpx.HTTPError:
            results.append("cut")

    threads = []
    for i in range(50):
        th = threading.Thread(target=client, args=(i,))
        th.start()
        threads.append(th)
        time.sleep(0.02 if i < 25 else 0.0)
    # Kill once some clients have their whole stream and the rest are still running (however
    # slow the machine is today): a bounded wait, not a fixed sleep.
    try:
        wait_until(
            lambda: "done" in results, timeout_s=15, what="a client to have its whole stream"
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for th in threads:
            th.join(30)
        fake.set_default(Script())
    assert "cut" in results  # the kill really happened mid-stream

    proc2, _ = start_serve(data_dir)  # start-up resolves what the dead engine left open
    proc2.send_signal(signal.SIGTERM)
    proc2.wait(20)
    recovered = proc2.stderr.read() if proc2.stderr else ""

    wallet = Wallet.open(data_dir)
    try:
        assert wallet.budgets.open_reservations() == []
        with wallet.db.read() as conn:
            ledger_ids = {r[0] for r in conn.execute(select(t.ledger.c.request_id))}
            # every cost, recovered ones included, names its price row and token source
            unpriced = conn.execute(
                select(t.ledger.c.request_id).where(
                    t.ledger.c.price_row_ref.is_(None) | t.ledger.c.token_source.is_(None)
                )
            ).all()
        assert unpriced == []
        completed = [s for s in fake.served if s.completed and s.path == "/v1/chat/completions"]
        assert completed, "some streams should have completed before the kill"
        missing = [
            s.headers["x-aiwallet-request-id"]
            for s in completed
            if s.headers["x-aiwallet-request-id"] not in ledger_ids
        ]
        assert missing == []
        assert wallet.verify_audit().ok
        # streams were in flight at the kill: their reservations were found and billed
        assert "recovered reservation" in recovered
        assert "reservation.recover" in [e.action for e in wallet.audit.entries()]
    finally:
        wallet.close()
