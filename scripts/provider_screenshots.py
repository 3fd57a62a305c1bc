"""Screenshots of the Providers page: a connected OpenRouter with per-app keys and balances,
a key due for rotation (``providers-{theme}-1x.png``), and the "Connect OpenRouter" dialog
waiting on the browser (``providers-signin-{theme}.png``), in light and dark, under Xvfb when
there is no display. The app runs with its real engine in front of the test kit's fake
OpenRouter (tests/orkit/server.py) on loopback; the requests shown are real ones through the
engine.

    python scripts/provider_screenshots.py [OUT_DIR] [--themes light,dark]

Needs Debian's ``xvfb`` and the Qt xcb libraries.
"""

from __future__ import annotations

import sys
from pathlib import Path

from shotkit import per_theme_main

ROOT = Path(__file__).resolve().parent.parent
APPS = (("pr-review-agent", "3/day"), ("nightly-summarizer", "10/week"), ("notebook", "2/day"))


def _child(out: Path, work: Path, theme: str) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    import openai
    import qasync
    from PySide6.QtWidgets import QApplication
    from sqlalchemy import update

    from aiwallet.domain.money import parse_budget_spec
    from aiwallet.gui import theme as look
    from aiwallet.gui.app import DesktopApp
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet
    from aiwallet.store import schema as t
    from orkit.server import INFERENCE_KEY, MANAGEMENT_KEY, FakeOpenRouter

    router = FakeOpenRouter()
    router.start_in_thread()
    router.keys[INFERENCE_KEY].limit = Decimal("50")
    router.keys[INFERENCE_KEY].usage = Decimal("13.42")
    app = QApplication(sys.argv)
    look.apply(app)
    wallet = Wallet.open(DataDir(work / f"wallet-{theme}"))
    wallet.add_provider(
        "openrouter", kind="openrouter", api_key=INFERENCE_KEY, base_url=router.base_url
    )
    wallet.add_provider("openai", kind="openai", api_key="sk-demo-" + "x" * 40)
    wallet.add_provider("anthropic", kind="anthropic", api_key="sk-ant-demo-" + "y" * 40)
    with wallet.db.begin() as conn:  # openai's key is 41 days old: due for rotation
        conn.execute(
            update(t.providers)
            .where(t.providers.c.name == "openai")
            .values(key_set_at=datetime.now(UTC) - timedelta(days=41))
        )
        conn.execute(
            update(t.providers)
            .where(t.providers.c.name == "anthropic")
            .values(key_set_at=datetime.now(UTC) - timedelta(days=12))
        )
    keys = {
        name: wallet.create_app(name, budget=parse_budget_spec(budget))[1] for name, budget in APPS
    }
    wallet.provider_keys.enable("openrouter", MANAGEMENT_KEY)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    desk = DesktopApp(wallet, use_tray=False)
    desk.window.resize(1280, 820)

    def ask(key: str, n: int) -> None:
        client = openai.OpenAI(base_url=engine_url + "/v1", api_key=key, max_retries=0)
        for i in range(n):
            client.chat.completions.create(
                model="openrouter/openai/gpt-4o-mini",
                messages=[{"role": "user", "content": f"summarise item {i} " * 40}],
                max_tokens=200,
            )

    async def until(predicate: object) -> None:
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.05)

    async def shoot() -> None:
        nonlocal engine_url
        desk.start(port=0)
        await until(lambda: desk.controller.engine is not None or desk.controller.engine_error)
        engine = desk.controller.engine
        assert engine is not None, desk.controller.engine_error
        engine_url = engine.url
        # the engine makes each app's capped key at OpenRouter on its own; asked before
        await until(lambda: len(router.sub_keys()) == len(APPS))
        await asyncio.to_thread(ask, keys["pr-review-agent"], 6)
        await asyncio.to_thread(ask, keys["nightly-summarizer"], 3)
        await asyncio.to_thread(ask, keys["notebook"], 1)
        sub = next(k for k in router.sub_keys() if k.name == "aiwallet: nightly-summarizer")
        sub.usage += Decimal("0.42")  # spent with that key elsewhere: the figures differ
        on = engine.loop
        assert on is not None and engine.subkeys is not None and engine.watch is not None
        await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(engine.subkeys.sync(read_usage=True), on)
        )
        await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(engine.watch.read_balances(), on)
        )
        window = desk.window
        window.show_page(3)
        page = window.providers
        await until(lambda: page.loads >= 1)
        before = page.loads
        page.reload()
        await until(lambda: page.loads > before and page.subkeys.table.rowCount() == len(APPS))
        window.statusBar().clearMessage()
        await asyncio.sleep(0.6)  # let the layout settle before the grab
        window.grab().save(str(out / f"providers-{theme}-1x.png"))

        page.signin_options = {"auth_url": "https://openrouter.ai/auth", "port": 0}
        page.open_browser = lambda _url: None
        dialog = page.start_signin(replace=True)  # as the button does with one connected
        await until(lambda: bool(dialog.url_field.text()))
        await asyncio.sleep(0.4)
        dialog.grab().save(str(out / f"providers-signin-{theme}.png"))
        dialog.reject()
        await until(lambda: dialog.flow.done)

    async def shoot_then_quit() -> None:
        try:
            await shoot()
        finally:
            app.quit()  # a failure ends the loop too (and fails the script below)

    engine_url = ""
    task = asyncio.ensure_future(shoot_then_quit())
    with loop:
        loop.run_forever()
    task.result()
    desk.shutdown()
    wallet.close()
    router.stop()


def main() -> None:
    per_theme_main(__file__, _child, doc=__doc__, what="provider", timeout_s=240)


if __name__ == "__main__":
    main()
