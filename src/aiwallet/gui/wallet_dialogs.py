"""The Wallet page's dialogs: importing a Solana key (a base58 secret typed into a password
field, or a Solana CLI keypair file), and topping up a prepaid x402 router.

Neither dialog touches the keyring or the network itself: the page runs the import or the
top-up on a worker thread and tells the dialog how it went (``finished``), so a wrong key is
said in the dialog that took it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from aiwallet.domain.chains import USDC_DECIMALS, atomic_to_nano
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import format_usd, parse_usd
from aiwallet.gui import texts
from aiwallet.gui.widgets import ask, label, money_badge, shown

MAX_KEY_FILE = 16 * 1024  # a keypair file is about 230 bytes; anything far larger is not one
WIDTH = 480
UNIT = atomic_to_nano(1, USDC_DECIMALS)


class ImportKeyDialog(QDialog):
    """A base58 secret (hidden as it is typed) or a keypair file picked from disk.
    ``submitted`` carries the key's text; the page answers with ``finished``."""

    submitted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import a Solana key")
        lay = QVBoxLayout(self)
        lay.setSizeConstraint(QLayout.SizeConstraint.SetFixedSize)
        intro = label(
            "Paste the wallet's secret key (base58, as wallets export it), or choose a Solana "
            "CLI keypair file (a JSON list of 64 numbers, like ~/.config/solana/id.json). It "
            "goes to the secret store; the wallet never shows it again.",
            wrap=True,
        )
        intro.setFixedWidth(WIDTH)
        lay.addWidget(intro)
        form = QFormLayout()
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.setPlaceholderText("base58 secret key")
        self.secret.textEdited.connect(self._typed)
        form.addRow(label("Secret key"), self.secret)
        file_row = QHBoxLayout()
        self.choose = QPushButton("Choose a keypair file…")
        self.choose.clicked.connect(self._pick)
        self.file_name = label("", "muted")
        file_row.addWidget(self.choose)
        file_row.addWidget(self.file_name, 1)
        form.addRow(label("or"), file_row)
        lay.addLayout(form)
        self.error = label("", "warning", wrap=True)
        self.error.setFixedWidth(WIDTH)
        self.error.hide()
        lay.addWidget(self.error)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Import")
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self._file_text = ""
        self.busy = False

    def key_text(self) -> str:
        return self._file_text or self.secret.text().strip()

    def _typed(self, _text: str) -> None:
        self._file_text = ""  # typing replaces a file chosen before
        self.file_name.setText("")

    def _pick(self) -> None:
        start = Path.home() / ".config" / "solana"
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Solana keypair file",
            str(start if start.is_dir() else Path.home()),
            "Keypair files (*.json);;All files (*)",
        )
        if path:
            self.load_file(Path(path))

    def load_file(self, path: Path) -> bool:
        """Take a keypair file's text (a small file: read here)."""
        try:
            if path.stat().st_size > MAX_KEY_FILE:
                self.show_error(f"{shown(path.name, 80)} is too large to be a keypair file.")
                return False
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            self.show_error(f"Could not read {shown(path.name, 80)} ({type(exc).__name__}).")
            return False
        self._file_text = text
        self.secret.clear()
        self.file_name.setText(shown(path.name, 60))
        self.show_error("")
        return True

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    def submit(self) -> None:
        if self.busy:
            return
        text = self.key_text()
        if not text:
            self.show_error("Paste a secret key or choose a keypair file.")
            return
        self.busy = True
        for widget in (self.secret, self.choose, self.ok):
            widget.setEnabled(False)
        self.show_error("")
        self.submitted.emit(text)

    def finished_with(self, error: str | None) -> None:
        """The import ended: close, or say what was wrong and let it be tried again."""
        self.busy = False
        for widget in (self.secret, self.choose, self.ok):
            widget.setEnabled(True)
        if error is None:
            self.forget()
            self.accept()
            return
        self.show_error(error)

    def forget(self) -> None:
        """Drop the key's text from the dialog."""
        self._file_text = ""
        self.secret.clear()

    def reject(self) -> None:
        if not self.busy:
            self.forget()
            super().reject()


class TopUpDialog(QDialog):
    """How much to pay a prepaid router now, on which network; mainnet asks once more."""

    def __init__(
        self,
        router: str,
        network_line: str,
        real_money: bool,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.router = router
        self.real_money = real_money
        self.amount_nano: int | None = None
        self.setWindowTitle(f"Top up {shown(router, 60)}")
        lay = QVBoxLayout(self)
        lay.setSizeConstraint(QLayout.SizeConstraint.SetFixedSize)
        intro = label(
            f"Pay {shown(router, 80)} ahead, in USDC from your Solana wallet: the router "
            "keeps it as credit for later requests. It counts against the wallet budget.",
            wrap=True,
        )
        intro.setFixedWidth(WIDTH)
        lay.addWidget(intro)
        form = QFormLayout()
        net_row = QHBoxLayout()
        self.network = label(network_line)
        self.badge = money_badge(real_money)
        net_row.addWidget(self.network)
        net_row.addWidget(self.badge)
        net_row.addStretch(1)
        form.addRow(label("Network"), net_row)
        self.amount = QLineEdit("$5.00")
        self.amount.setMaximumWidth(160)
        form.addRow(label("Amount"), self.amount)
        lay.addLayout(form)
        self.error = label("", "warning", wrap=True)
        self.error.setFixedWidth(WIDTH)
        self.error.hide()
        lay.addWidget(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Top up")
        buttons.accepted.connect(self.submit)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.confirm: Callable[[str], bool] = lambda text: ask(self, "Real money", text)

    def parse(self) -> int | None:
        try:
            nano = parse_usd(self.amount.text().strip())
        except InvalidInput as exc:
            self.show_error(shown(exc, 300))
            return None
        if nano <= 0:
            self.show_error("Top up by more than $0.")
            return None
        if nano % UNIT:
            self.show_error("USDC has six decimals: top up by whole millionths of a dollar.")
            return None
        return nano

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    def submit(self) -> None:
        nano = self.parse()
        if nano is None:
            return
        if self.real_money:
            text = texts.WALLET_TOPUP_CONFIRM.format(
                amount=format_usd(nano, places=None), router=shown(self.router, 60)
            )
            if not self.confirm(text):
                return
        self.amount_nano = nano
        self.accept()
