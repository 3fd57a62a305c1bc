"""How fast a consent prompt appears: from a keyless request leaving the client to the prompt
on screen (target: within 150 ms of the request reaching the engine).

    .venv/bin/python bench/prompt.py [--runs 30]

Runs the real desktop app offscreen (engine on its own thread, a free loopback port) and, one
at a time, makes a keyless chat request from a client thread; each prompt is denied as soon
as it shows. Three intervals per request:
  * engine: the request reaching the engine's handler → ``consent.requested`` emitted (the
    engine names the calling process from the socket table: the baseline the GUI adds to);
  * bridge: ``consent.requested`` emitted (engine thread) → the prompt shown (GUI thread);
  * total: the client sending → the prompt shown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring_backend.TestFileKeyring"
TIMEOUT_S = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aiwallet-bench-prompt-"))
    os.environ["AIWALLET_TEST_KEYRING_FILE"] = str(work / "keyring.json")

    import httpx
    import qasync
    from PySide6.QtWidgets import QApplication

    from aiwallet.gui.app import DesktopApp
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet

    app = QApplication(sys.argv)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    wallet = Wallet.open(DataDir(work / "wallet"))
    desk = DesktopApp(wallet, use_tray=False)
    marks: dict[str, float] = {}
    engine_s, bridge_s, total_s = [], [], []

    def on_shown(_: str) -> None:
        marks["shown"] = time.perf_counter()
        prompt = desk.prompts.current
        assert prompt is not None
        prompt.deny_once()

    desk.prompts.shown.connect(on_shown)

    async def run() -> None:
        desk.start(port=0, consent_timeout_s=30)
        deadline = time.monotonic() + TIMEOUT_S
        while desk.controller.engine is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"engine did not start: {desk.controller.engine_error}")
            await asyncio.sleep(0.01)
        engine = desk.controller.engine
        engine.events.subscribe(
            lambda name, _p: (
                marks.__setitem__("emitted", time.perf_counter())
                if name == "consent.requested"
                else None
            )
        )
        proxy = engine._proxy
        assert proxy is not None
        original = proxy.keyless

        async def timed_keyless(call):  # type: ignore[no-untyped-def]
            marks["reached"] = time.perf_counter()
            return await original(call)

        proxy.keyless = timed_keyless  # type: ignore[method-assign]
        url = engine.url + "/v1/chat/completions"
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(args.runs):
            marks.clear()
            done = threading.Event()

            def call(done: threading.Event = done) -> None:
                marks["sent"] = time.perf_counter()
                httpx.post(url, json=body, headers={"Authorization": "Bearer nokey"}, timeout=30)
                done.set()

            threading.Thread(target=call, daemon=True).start()
            deadline = time.monotonic() + TIMEOUT_S
            while not done.is_set() or "shown" not in marks:
                if time.monotonic() > deadline:
                    raise SystemExit("a prompt did not show in time")
                await asyncio.sleep(0.002)
            engine_s.append(marks["emitted"] - marks["reached"])
            bridge_s.append(marks["shown"] - marks["emitted"])
            total_s.append(marks["shown"] - marks["sent"])
        app.quit()

    task = asyncio.ensure_future(run())
    with loop:
        loop.run_forever()
    desk.shutdown()
    wallet.close()
    if task.done() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]

    def row(name: str, xs: list[float]) -> str:
        ms = sorted(x * 1000 for x in xs)
        p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
        return f"| {name} | {statistics.median(ms):.1f} | {p90:.1f} | {ms[-1]:.1f} |"

    print(f"Consent prompt latency, {len(total_s)} keyless requests, offscreen")
    print("| interval | median ms | p90 ms | max ms |")
    print("|---|---:|---:|---:|")
    print(row("engine: request reached → consent.requested (baseline)", engine_s))
    print(row("bridge: consent.requested → prompt shown", bridge_s))
    reached = [e + b for e, b in zip(engine_s, bridge_s, strict=True)]
    print(row("request reached → prompt shown", reached))
    print(row("client sent → prompt shown", total_s))


if __name__ == "__main__":
    main()
