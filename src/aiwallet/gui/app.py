"""The desktop app's composition root: the wallet, its engine (own thread), the window, the
tray, the prompt queue and notifications, on a qasync loop.

``aiwallet`` with no subcommand calls :func:`run`. Tests build a :class:`DesktopApp` around
a wallet and drive it with pytest-qt.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from aiwallet.gui import texts, theme
from aiwallet.gui.controller import Controller
from aiwallet.gui.dialogs import PassphraseDialog
from aiwallet.gui.main_window import MainWindow
from aiwallet.gui.notify import Notifier
from aiwallet.gui.prompt import Answer, PromptQueue
from aiwallet.gui.single import InstanceServer, instance_name, signal_running
from aiwallet.gui.tray import Tray
from aiwallet.gui.widgets import shown
from aiwallet.paths import DataDir
from aiwallet.service import Wallet

log = logging.getLogger(__name__)
ENV_PASSPHRASE = "AIWALLET_VAULT_PASSPHRASE"  # noqa: S105 - the variable's name


class DesktopApp:
    """Everything the user sees, wired to one controller."""

    def __init__(self, wallet: Wallet, *, use_tray: bool | None = None) -> None:
        self.controller = Controller(wallet)
        tray_ok = QSystemTrayIcon.isSystemTrayAvailable() if use_tray is None else use_tray
        self.window = MainWindow(self.controller, hide_on_close=tray_ok)
        self.prompts = PromptQueue(self._answer)
        self.tray: Tray | None = None
        if tray_ok:
            self.tray = Tray(
                self.controller,
                open_window=self.window.bring_up,
                show_prompt=self.prompts.show_request,
                quit_app=self.quit,
            )
            self.tray.show()
        self.notifier = Notifier(self.tray, self._status)
        c = self.controller
        c.consent_requested.connect(self.prompts.add)
        c.consent_closed.connect(lambda rid, _state: self.prompts.withdraw(rid))
        c.notice.connect(self.notifier.notify)
        c.consent_requested.connect(self._prompt_notice)

    def _status(self, text: str) -> None:
        self.window.statusBar().showMessage(shown(text, 300), 15_000)

    def _prompt_notice(self, request: dict[str, Any]) -> None:
        if self.tray is not None:
            payment = request.get("kind") == "payment"
            self.notifier.notify(
                "consent",
                texts.PROMPT_PAYMENT_TITLE if payment else texts.PROMPT_TITLE,
                f"{request.get('app_name')} is asking",
            )

    def _answer(self, request_id: str, answer: Answer) -> None:
        c = self.controller
        if answer["action"] == "deny":
            always = bool(answer.get("always"))
            scope = str(answer.get("scope", "script"))
            c.spawn(c.deny(request_id, always=always, scope=scope), "Denying")
        elif answer["action"] == "pay":  # an x402 payment: this once, or this payee always
            c.spawn(c.pay(request_id, always=bool(answer.get("always"))), "Paying")
        else:
            once = answer["action"] == "once"
            c.spawn(
                c.approve(
                    request_id,
                    budget=None if once else answer.get("budget"),
                    models=answer.get("models"),
                    lifetime_s=None if once else answer.get("lifetime_s"),
                    once=once,
                    duration=None if once else answer.get("duration"),
                    scope=str(answer.get("scope", "script")),
                ),
                "Approving",
            )

    def start(self, *, minimized: bool = False, **engine_kw: Any) -> asyncio.Task[Any]:
        """Show the window (unless minimised to a tray) and start the engine."""
        if not minimized or self.tray is None:
            self.window.show()
        return self.controller.spawn(self.controller.start_engine(**engine_kw), "Starting")

    def quit(self) -> None:
        self.window.hide_on_close = False
        self.window.close()
        if self.tray is not None:
            self.tray.hide()
        app = QApplication.instance()
        if app is not None:
            app.quit()

    def shutdown(self) -> None:
        """Stop the engine (it finishes in-flight settlements) and the workers."""
        if self.prompts.current is not None:
            self.prompts.current.withdraw()
        self.controller.stop()


class Passphrase:
    """The sealed vault's passphrase, held in memory for this process.

    Where a secure OS keyring exists nothing is asked. Otherwise, before the window opens,
    :meth:`ask_if_needed` shows a :class:`PassphraseDialog`: at first run (no sealed file)
    the passphrase is chosen, typed twice; later it is typed once (or taken from
    ``AIWALLET_VAULT_PASSPHRASE``) and checked against the sealed file by deriving the key
    on a worker thread; a wrong one is asked again in the same dialog. So the window never
    opens with an engine that cannot start for want of its passphrase."""

    def __init__(self) -> None:
        self.value = os.environ.get(ENV_PASSPHRASE) or None

    def __call__(self) -> str:
        if not self.value:
            from aiwallet.domain.errors import VaultError

            raise VaultError("the sealed vault needs its passphrase; restart aiwallet to type it")
        return self.value

    def dialog(self, wallet: Wallet) -> PassphraseDialog:
        """The dialog for this wallet's sealed file (choose or unlock)."""
        sealed = wallet.data_dir.sealed_vault

        def attempt(text: str) -> None:  # on the dialog's worker thread
            self.value = text
            try:
                wallet.unlock_vault()
            except BaseException:
                self.value = None
                raise

        preset, self.value = self.value, None
        return PassphraseDialog(
            choose=not sealed.exists(), sealed_file=str(sealed), unlock=attempt, preset=preset
        )

    def ask_if_needed(self, wallet: Wallet) -> bool:
        """Whether the wallet can start: the OS keyring, or the sealed file unlocked now;
        False when the user quit the dialog."""
        if not wallet.vault_status().is_fallback:
            return True
        dialog = self.dialog(wallet)
        return bool(dialog.exec()) and dialog.passphrase is not None


KEYRING_TOLD = "gui.keyring_told"


def tell_keyring_once(wallet: Wallet, say: Callable[[str], None]) -> None:
    """Where the OS keyring holds the keys (no passphrase asked), say so at the first start."""
    status = wallet.vault_status()
    if status.is_fallback or wallet.settings.get(KEYRING_TOLD):
        return
    say(texts.KEYRING_USED.format(store=status.description))
    wallet.settings.set(KEYRING_TOLD, True, audit=False)


def run(data_dir: DataDir, *, minimized: bool = False) -> int:
    """Start the desktop app and its engine; returns the exit status."""
    import qasync

    app = QApplication.instance() or QApplication(sys.argv)
    assert isinstance(app, QApplication)
    app.setApplicationName("aiwallet")
    app.setDesktopFileName("aiwallet")
    name = instance_name(data_dir)
    if signal_running(name):
        print("aiwallet is already running for this data dir; its window is up", file=sys.stderr)
        return 0
    theme.apply(app)
    passphrase = Passphrase()
    wallet = Wallet.open(data_dir, passphrase_provider=passphrase)
    if not passphrase.ask_if_needed(wallet):
        wallet.close()
        print("aiwallet: the sealed vault stays locked; quitting", file=sys.stderr)
        return 1
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    desktop = DesktopApp(wallet)
    instance = InstanceServer(name, desktop.window.bring_up)
    app.setQuitOnLastWindowClosed(desktop.tray is None)
    desktop.start(minimized=minimized)
    tell_keyring_once(wallet, desktop._status)
    # Ctrl+C / SIGTERM quit cleanly (the engine settles what is in flight). Python runs
    # signal handlers only between bytecodes, so a timer wakes the interpreter now and then.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: desktop.quit())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    if os.environ.get("AIWALLET_EXIT_AFTER_START"):  # cold-start benchmark
        desktop.controller.engine_changed.connect(lambda: QTimer.singleShot(0, app.quit))
    try:
        with loop:
            loop.run_forever()
    finally:
        instance.close()
        desktop.shutdown()
        wallet.close()
    return 0
