"""Screenshots of the consent prompt, each asked by a real program of a real engine:

- ``prompt-hostile``: a program whose name, purpose and command line are rich-text markup,
  line breaks, ESC sequences and a bidi override, through ``POST /wallet/v1/connect``;
- ``prompt-keyless``: ``python research_agent.py`` calling without a key, with an
  ``x-aiwallet-purpose`` (the prompt shows the held request's model and worst case);
- ``prompt-connect``: an app connecting for any model (named, never a bare ``*``);
- ``prompt-expensive``: an app's request over its ask-before threshold;
- ``prompt-payment``: an app's request to an x402 router the wallet has not paid before, on
  a real chain (the test kit's LiteSVM, facilitator and router, ``walletkit.py``), devnet;
  ``prompt-payment-mainnet``: the same on mainnet (REAL MONEY).

The wallet has an OpenAI provider whose address answers nothing: every prompt is denied, so
no request is forwarded. Under Xvfb when there is no display; light and dark; writes
``prompt-<kind>-<theme>.png``.

    python scripts/prompt_screenshots.py [OUT_DIR] [--themes light,dark]

Needs Debian's ``xvfb`` (and the Qt xcb libraries); each theme runs in its own process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import walletkit
from shotkit import per_theme_main

ROOT = Path(__file__).resolve().parent.parent

NAME = "<b>Program</b><br>Verified: Microsoft Corporation"
PURPOSE = (
    "<table><tr><td><b>Program</b></td><td>C:\\Windows\\explorer.exe</td></tr>"
    "<tr><td><b>Verified</b></td><td>Microsoft Corporation</td></tr></table>"
    "<font color=red size=6>click Allow</font>\nProgram   /usr/bin/gnome-shell\n"
    "\x1b[2J\u202eexe.txt"
)
ARGS = ["--note", "<font color=red>click Allow</font>", "two\nlines", "A" * 400]

CALLER = """
import sys, httpx
url, name, purpose = sys.argv[1:4]
r = httpx.post(url + "/wallet/v1/connect", timeout=10,
               json={"app_name": name, "purpose": purpose, "models": ["gpt-4o-mini"],
                     "budget": "5/day"})
print(r.status_code, flush=True)
sys.stdin.read()
"""

AGENT = """
import os, sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=os.environ.get("APP_KEY", "nokey"),
                  max_retries=0,
                  default_headers={"x-aiwallet-purpose": sys.argv[2]} if sys.argv[2:] else None)
try:
    c.chat.completions.create(model=os.environ.get("MODEL", "gpt-4o-mini"),
                              messages=[{"role": "user", "content": "hi"}])
except openai.APIStatusError as e:
    print(e.status_code, flush=True)
sys.stdin.read()
"""

CONNECT_ANY = """
import sys, httpx
r = httpx.post(sys.argv[1] + "/wallet/v1/connect", timeout=10,
               json={"app_name": "Notebook helper", "models": ["*"], "budget": "2/day",
                     "purpose": "Answers questions about the notebook you have open"})
print(r.status_code, flush=True)
sys.stdin.read()
"""
KINDS = ("hostile", "keyless", "connect", "expensive", "payment", "payment-mainnet")


def _child(out: Path, data: Path, theme: str) -> None:
    import asyncio

    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from aiwallet.domain.money import parse_budget_spec, usd_to_nano
    from aiwallet.gui import theme as look
    from aiwallet.gui.app import DesktopApp
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet

    app = QApplication(sys.argv)
    look.apply(app)
    wallet = Wallet.open(DataDir(data))
    # a provider that answers nothing (every prompt is denied: nothing is forwarded)
    wallet.add_provider(
        "openai", kind="openai", api_key="sk-screenshot-not-a-key", base_url="http://127.0.0.1:9/v1"
    )
    _, key = wallet.create_app("Research notes", budget=parse_budget_spec("5/day"))
    wallet.set_app_ask_over("Research notes", usd_to_nano("0.005"))
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    desk = DesktopApp(wallet, use_tray=False)

    async def snap(kind: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        caller = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        try:
            deadline = time.monotonic() + 30
            while desk.prompts.current is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            prompt = desk.prompts.current
            assert prompt is not None, f"no {kind} prompt appeared"
            await asyncio.sleep(1.0)  # shown, laid out, painted
            prompt.grab().save(str(out / f"prompt-{kind}-{theme}.png"))
            prompt.deny_once()
            deadline = time.monotonic() + 30
            while caller.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                assert caller.stdout is not None
                if desk.prompts.current is None:
                    break
        finally:
            assert caller.stdin is not None
            caller.stdin.close()
            try:
                caller.wait(10)
            except subprocess.TimeoutExpired:
                caller.kill()
                caller.wait(10)

    async def shoot() -> None:
        desk.start(port=0)
        deadline = time.monotonic() + 30
        while desk.controller.engine is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        engine = desk.controller.engine
        assert engine is not None, desk.controller.engine_error
        url = engine.url
        agent = data / "research_agent.py"
        agent.write_text(AGENT)
        py = sys.executable
        await snap("hostile", [py, "-c", CALLER, url, NAME, PURPOSE, *ARGS])
        await snap(
            "keyless",
            [py, str(agent), url, "Summarise this week's papers into notes.md"],
        )
        await snap("connect", [py, "-c", CONNECT_ANY, url])
        # the app's key in its environment, not on its command line (which the prompt shows)
        await snap("expensive", [py, str(agent), url], env=dict(os.environ, APP_KEY=key))
        # an x402 router on a real chain, asked of a payee the wallet has not paid before
        _, agent_key = wallet.create_app("research-agent", budget=parse_budget_spec("5/day"))
        paying = dict(os.environ, APP_KEY=agent_key, MODEL=f"{walletkit.ROUTER}/gpt-4o-mini")
        from aiwallet.domain.chains import MAINNET

        for kind, network in (("payment", None), ("payment-mainnet", MAINNET)):
            kit = await asyncio.to_thread(walletkit.start_chain, network)
            try:
                await asyncio.to_thread(walletkit.prepare, wallet, kit)
                await desk.controller.on_engine(engine.reload())  # the key, network, routers
                await snap(kind, [py, str(agent), url], env=paying)
            finally:
                await asyncio.to_thread(kit.stop)
        app.quit()

    QTimer.singleShot(0, lambda: asyncio.ensure_future(shoot()))
    with loop:
        loop.run_forever()
    desk.shutdown()
    wallet.close()


def main() -> None:
    per_theme_main(
        __file__, _child, doc=__doc__, what="prompt", size="1600x1200x24", timeout_s=240,
        work_per_theme=True,
    )  # fmt: skip


if __name__ == "__main__":
    main()
