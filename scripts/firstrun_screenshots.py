"""Screenshots of the first run: the passphrase chosen twice (no OS keyring), the unlock
dialog after a wrong passphrase, and the Overview's first steps (one provider added), in
light and dark, under Xvfb when there is no display.

    python scripts/firstrun_screenshots.py [OUT_DIR] [--themes light,dark]

Needs Debian's ``xvfb`` and the Qt xcb libraries (``.ci/run`` installs them).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from shotkit import per_theme_main

ROOT = Path(__file__).resolve().parent.parent
SHOWN_PATH = "/home/ana/.local/share/aiwallet/vault.sealed"  # what a user's dialog shows


def _free_port(wanted: int) -> int:
    """The default port when it is free (so the pictures show it), else any."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", wanted))
        except OSError:
            return 0
    return wanted


def _child(out: Path, work: Path, theme: str) -> None:
    import asyncio

    import nacl.pwhash
    import qasync
    from PySide6.QtWidgets import QApplication

    from aiwallet.gui import theme as look
    from aiwallet.gui.app import DesktopApp
    from aiwallet.gui.dialogs import PassphraseDialog
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet
    from aiwallet.vault.sealed import SealedFileStore

    app = QApplication(sys.argv)
    app.setQuitOnLastWindowClosed(False)  # the dialogs close before the window opens
    look.apply(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    sealed = work / f"sealed-{theme}" / "vault.sealed"
    fast = {
        "opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN,
        "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN,
    }
    SealedFileStore(sealed, lambda: "correct horse battery", **fast).set("probe", "x")
    wallet = Wallet.open(DataDir(work / f"wallet-{theme}"))
    wallet.add_provider("openai", kind="openai", api_key="sk-demo-" + "x" * 40)
    desk = DesktopApp(wallet, use_tray=False)
    desk.window.resize(1280, 820)

    async def settle(seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def shoot() -> None:
        gate = threading.Event()  # holds the "key derivation" while the busy state is shot
        choose = PassphraseDialog(
            choose=True, sealed_file=SHOWN_PATH, unlock=lambda _: bool(gate.wait(30))
        )
        choose.show()
        choose.first.setText("correct horse battery")
        choose.second.setText("correct horse batterx")
        choose.submit()  # the mismatch, refused in the dialog
        await settle(0.5)
        choose.grab().save(str(out / f"firstrun-passphrase-{theme}.png"))
        choose.second.setText("correct horse battery")
        choose.submit()  # now the real busy state: fields and buttons off, a busy bar
        await settle(0.5)
        choose.grab().save(str(out / f"firstrun-sealing-{theme}.png"))
        gate.set()
        while choose.isVisible():
            await settle(0.05)

        store = SealedFileStore(sealed, lambda: typed[0])
        typed = ["wrong horse"]

        def unlock(text: str) -> None:
            typed[0] = text
            store.unlock()

        again = PassphraseDialog(choose=False, sealed_file=SHOWN_PATH, unlock=unlock)
        again.show()
        again.first.setText("wrong horse")
        again.submit()
        while again.busy:
            await settle(0.05)
        await settle(0.4)
        again.grab().save(str(out / f"unlock-wrong-{theme}.png"))
        again.reject()

        desk.start(port=_free_port(8402))
        while desk.controller.engine is None and desk.controller.engine_error is None:
            await settle(0.05)
        page = desk.window.overview
        while page.loads < 1:
            await settle(0.05)
        await settle(0.6)
        desk.window.grab().save(str(out / f"overview-first-steps-{theme}.png"))
        app.quit()

    task = asyncio.ensure_future(shoot())  # kept: a task only weakly referenced may vanish
    with loop:
        loop.run_forever()
    task.result()  # a failure inside shoot() fails the script
    desk.shutdown()
    wallet.close()


def main() -> None:
    per_theme_main(__file__, _child, doc=__doc__, what="first-run", timeout_s=180)


if __name__ == "__main__":
    main()
