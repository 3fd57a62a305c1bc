"""Screenshots of every page and of a consent prompt, for looking at the app and for the
README. Starts the real app (engine included) on a seeded data dir (several apps, a month of
requests), under Xvfb when there is no display, in light and dark palettes and at 100 % and
200 % scale; writes PNGs to a folder. The Wallet page is photographed on a real chain (the
test kit's LiteSVM, facilitator and x402 router, ``walletkit.py``) after real payments made
through the engine: on devnet (``wallet-devnet-*``), then on mainnet (``wallet-mainnet-*``:
the REAL MONEY badge); ``activity-x402-*`` shows those requests in the log.

    python scripts/screenshots.py [OUT_DIR] [--rows 3000] [--themes light,dark] [--scales 1,2]

Needs Debian's ``xvfb`` (and the Qt xcb libraries); each variant runs in its own process.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import walletkit
from shotkit import child_env, x_display

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("overview", "apps", "activity", "providers", "wallet", "settings")


def _free_port(wanted: int) -> int:
    """The default port when it is free (so the pictures show it), else any."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", wanted))
        except OSError:
            return 0
    return wanted


def _grab_popups(path: Path, *widgets: object) -> None:
    """One picture of popups side by side (the tray menu and its submenu)."""
    from PySide6.QtGui import QColor, QPainter, QPixmap

    shots = [w.grab() for w in widgets]  # type: ignore[attr-defined]
    width = sum(p.width() for p in shots) + 8 * (len(shots) + 1)
    height = max(p.height() for p in shots) + 16
    canvas = QPixmap(width, height)
    canvas.fill(QColor("#7b8a90"))
    painter = QPainter(canvas)
    x = 8
    for p in shots:
        painter.drawPixmap(x, 8, p)
        x += p.width() + 8
    painter.end()
    canvas.save(str(path))


def _use_up(wallet: object, name: str) -> None:
    """Lower one daily budget to (about) what the app spent today, so the Apps page shows
    what it says of a budget that is used up."""
    from aiwallet.domain.money import BudgetSpec, Period
    from aiwallet.service import Wallet

    assert isinstance(wallet, Wallet)
    app = wallet.apps.get(name)
    budget = wallet.budgets.app_budget(app.id)
    if budget is None or budget.period is not Period.DAY:
        return
    from datetime import UTC, datetime

    state = wallet.budgets.state(budget, datetime.now(UTC), wallet.timezone)
    amount = state.spent_nano - state.spent_nano % 100_000  # a round $0.0017, not $0.0017508
    if amount > 0:
        wallet.set_budget(BudgetSpec(amount, Period.DAY), name)


def _child(out: Path, data: Path, theme: str, scale: str) -> None:
    """Inside the display: open each page, grab it, then raise a prompt and grab it."""
    import asyncio

    import qasync
    from PySide6.QtCore import QPoint, QTimer
    from PySide6.QtWidgets import QApplication

    from aiwallet.gui import theme as look
    from aiwallet.gui.app import DesktopApp
    from aiwallet.gui.tray import Tray
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet

    app = QApplication(sys.argv)
    look.apply(app)
    wallet = Wallet.open(DataDir(data))
    _use_up(wallet, "nightly-summarizer")
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    desk = DesktopApp(wallet, use_tray=False)
    desk.window.resize(1280, 820)
    suffix = f"{theme}-{scale}x"
    kit = walletkit.start_chain()
    payer = walletkit.prepare(wallet, kit)
    walletkit.allow_payee(wallet, kit)

    async def settled(page: object, before: int) -> None:
        while page.readings <= before:  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)

    async def shoot() -> None:
        desk.start(port=_free_port(8402))
        while desk.controller.engine is None and desk.controller.engine_error is None:
            await asyncio.sleep(0.05)
        assert desk.controller.engine is not None, desk.controller.engine_error
        await asyncio.to_thread(walletkit.pay_history, wallet, kit, desk.controller.engine.url)
        desk.controller.solana_changed_here()
        desk.controller.mark_dirty()
        await asyncio.sleep(0.5)  # the payments' notices are in: not on every picture
        desk.window.statusBar().clearMessage()
        for i, name in enumerate(PAGES):
            page = desk.window.pages[i]
            desk.window.show_page(i)
            while page.loads < 1:
                await asyncio.sleep(0.05)
            if name == "activity":  # the log's refusals, each with its reason
                combo = desk.window.activity.status_filter
                combo.setCurrentIndex(combo.findData("error"))
            if name == "wallet":
                page.reload()
                await settled(page, 0)
            await asyncio.sleep(0.6)
            shot = "wallet-devnet" if name == "wallet" else name
            if name != "providers":  # scripts/provider_screenshots.py shows it connected
                desk.window.grab().save(str(out / f"{shot}-{suffix}.png"))
            if name == "activity":  # the paid requests: "paid (x402)" and their transactions
                activity = desk.window.activity
                activity.status_filter.setCurrentIndex(0)
                combo = activity.app_filter
                before = activity.loads
                combo.setCurrentIndex(combo.findText(walletkit.AGENT))
                while activity.loads <= before:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.6)
                desk.window.grab().save(str(out / f"activity-x402-{suffix}.png"))
                combo.setCurrentIndex(0)
            if name == "wallet":  # the same key on mainnet: real money, said in red
                walletkit.to_mainnet(wallet, kit, payer)
                desk.controller.solana_changed_here()
                before = page.readings
                page.reload()
                await settled(page, before)
                await asyncio.sleep(0.6)
                desk.window.grab().save(str(out / f"wallet-mainnet-{suffix}.png"))
                wallet.solana.set_network("devnet", kit.rpc.url)
                desk.controller.solana_changed_here()
        desk.window.show_page(0)
        desk.controller.on_event_consent_requested(
            {
                "id": "cr_screenshot",
                "kind": "connect",
                "app_name": "pr-review-agent",
                "purpose": "Review open pull requests in ~/src/shop and suggest fixes",
                "models": ["claude-sonnet-4-5", "gpt-4o-mini"],
                "budget": "3/day",
                "lifetime_s": 7 * 86_400,
                "process": {
                    "pid": 48213,
                    "exe": "/home/ana/.local/share/pipx/venvs/review/bin/python3.12",
                    "cmdline": ["python3", "-m", "review_agent", "--repo", "~/src/shop"],
                    "user": "ana",
                },
                "expires_in_s": 60,
                "state": "pending",
            }
        )
        prompt = desk.prompts.current
        assert prompt is not None
        await asyncio.sleep(1.2)
        prompt.grab().save(str(out / f"prompt-{suffix}.png"))
        # The tray's menu (built as it opens), with the prompt above among recent ones.
        tray = Tray(
            desk.controller,
            open_window=lambda: None,
            show_prompt=lambda _: None,
            quit_app=lambda: None,
        )
        tray.build_menu()
        tray.menu.popup(desk.window.mapToGlobal(QPoint(400, 200)))
        await asyncio.sleep(0.4)
        recent = tray.menu.actions()[2].menu()
        recent.popup(tray.menu.mapToGlobal(QPoint(tray.menu.width(), 0)))
        await asyncio.sleep(0.6)
        _grab_popups(out / f"tray-menu-{suffix}.png", tray.menu, recent)
        recent.hide()
        tray.menu.hide()
        desk.prompts.withdraw("cr_screenshot")
        app.quit()

    QTimer.singleShot(0, lambda: asyncio.ensure_future(shoot()))
    with loop:
        loop.run_forever()
    desk.shutdown()
    wallet.close()
    kit.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", nargs="?", default="docs/screenshots")
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--themes", default="light,dark")
    parser.add_argument("--scales", default="1,2")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        out, data, theme, scale = args.child
        _child(Path(out), Path(data), theme, scale)
        return
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="aiwallet-shots-"))
    env = child_env(work, ROOT / "scripts")
    env["TZ"] = env.get("TZ", "Europe/Berlin")
    data = work / "wallet"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "seed_demo.py"), str(data), "--rows",
         str(args.rows)],
        env=env, check=True,
    )  # fmt: skip
    try:
        with x_display(env, "2800x1900x24"):
            for theme in args.themes.split(","):
                for scale in args.scales.split(","):
                    # each variant on a copy: its payments are its own chain's
                    copy = work / f"wallet-{theme}-{scale}"
                    shutil.copytree(data, copy)
                    subprocess.run(
                        [sys.executable, __file__, "--child", str(out), str(copy), theme, scale],
                        env=dict(env, AIWALLET_THEME=theme, QT_SCALE_FACTOR=scale), check=True,
                        timeout=180,
                    )  # fmt: skip
                    print(f"wrote {theme} {scale}x screenshots to {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
