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
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QInputDialog, QLineEdit, QSystemTrayIcon

from aiwallet.gui import texts, theme
from aiwallet.gui.controller import Controller
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
            self.notifier.notify(
                "consent", texts.PROMPT_TITLE, f"{request.get('app_name')} is asking"
            )

    def _answer(self, request_id: str, answer: Answer) -> None:
        c = self.controller
        if answer["action"] == "deny":
            always = bool(answer.get("always"))
            scope = str(answer.get("scope", "script"))
            c.spawn(c.deny(request_id, always=always, scope=scope), "Denying")
        else:
            once = answer["action"] == "once"
            c.spawn(
                c.approve(
                    request_id,
                    budget=None if once else answer.get("budget"),
                    models=answer.get("models"),
                    lifetime_s=None if once else answer.get("lifetime_s"),
                    once=once,
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
    """The sealed vault's passphrase, held in memory for this process: from the environment
    (``AIWALLET_VAULT_PASSPHRASE``), else typed into a password dialog on the GUI thread; the
    vault's KDF then runs on a worker thread when the engine starts."""

    def __init__(self) -> None:
        self.value = os.environ.get(ENV_PASSPHRASE) or None

    def __call__(self) -> str:
        if not self.value:
            from aiwallet.domain.errors import VaultError

            raise VaultError("the sealed vault needs its passphrase; restart aiwallet to type it")
        return self.value

    def ask_if_needed(self, wallet: Wallet) -> None:
        if self.value or not wallet.vault_status().is_fallback:
            return
        text, ok = QInputDialog.getText(
            None,
            "Unlock the wallet",
            "No OS keyring here: provider keys are sealed with your passphrase.\nPassphrase:",
            QLineEdit.EchoMode.Password,
        )
        if ok and text:
            self.value = text


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
    passphrase.ask_if_needed(wallet)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    desktop = DesktopApp(wallet)
    instance = InstanceServer(name, desktop.window.bring_up)
    app.setQuitOnLastWindowClosed(desktop.tray is None)
    desktop.start(minimized=minimized)
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
