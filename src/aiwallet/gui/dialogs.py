"""Small dialogs: a budget editor, a new app (its key shown once), a provider key, and the
sealed vault's passphrase (chosen twice at first run, asked again when wrong)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from aiwallet.domain.errors import InvalidInput, WalletError
from aiwallet.domain.money import BudgetSpec, Period, format_usd, parse_usd
from aiwallet.domain.providers import KINDS, WireFormat
from aiwallet.domain.sealing import MIN_SEAL_LENGTH
from aiwallet.gui import texts
from aiwallet.gui.widgets import copy_button, html_text, label, rich_label, shown

LIFETIMES: tuple[tuple[str, int | None], ...] = (
    ("1 hour", 3600),
    ("1 day", 86_400),
    ("7 days", 7 * 86_400),
    ("30 days", 30 * 86_400),
    ("until I revoke it", None),
)


def period_combo(selected: Period = Period.DAY) -> QComboBox:
    combo = QComboBox()
    for period, text in (
        (Period.DAY, "per day"),
        (Period.WEEK, "per week"),
        (Period.MONTH, "per month"),
        (Period.TOTAL, "in total"),
    ):
        combo.addItem(text, period.value)
    combo.setCurrentIndex(combo.findData(selected.value))
    return combo


def lifetime_combo(seconds: int | None) -> QComboBox:
    combo = QComboBox()
    for text, value in LIFETIMES:
        combo.addItem(text, value)
    found = combo.findData(seconds)
    if found < 0 and seconds is not None:
        combo.insertItem(0, f"{seconds // 3600} h (asked)", seconds)
        found = 0
    combo.setCurrentIndex(found if found >= 0 else len(LIFETIMES) - 1)
    return combo


class BudgetEditor(QWidget):
    """An exact amount (parsed as decimal text, never a float) and a period."""

    def __init__(self, spec: BudgetSpec | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.amount = QLineEdit(format_usd(spec.amount_nano, places=None) if spec else "$2.00")
        self.amount.setPlaceholderText("$2.00")
        self.amount.setMaximumWidth(140)
        self.period = period_combo(spec.period if spec else Period.DAY)
        row.addWidget(self.amount)
        row.addWidget(self.period)
        row.addStretch(1)

    def spec(self) -> BudgetSpec:
        """The budget typed in; raises InvalidInput with a message for the user."""
        nano = parse_usd(self.amount.text().strip())
        return BudgetSpec(nano, Period(self.period.currentData()))


class BudgetDialog(QDialog):
    def __init__(self, whose: str, spec: BudgetSpec | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Budget")
        self.spec: BudgetSpec | None = None
        lay = QVBoxLayout(self)
        lay.addWidget(label(f"Budget for {shown(whose, 80)}:", wrap=True))
        self.editor = BudgetEditor(spec)
        lay.addWidget(self.editor)
        self.none = QCheckBox("No budget")
        self.none.toggled.connect(self.editor.setDisabled)
        lay.addWidget(self.none)
        self.error = label("", "muted", wrap=True)
        lay.addWidget(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._save)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def _save(self) -> None:
        if self.none.isChecked():
            self.spec = None
            self.accept()
            return
        try:
            self.spec = self.editor.spec()
        except InvalidInput as exc:
            self.error.setText(shown(exc, 300))
            return
        self.accept()


class NewAppDialog(QDialog):
    """Name, budget, models and lifetime of a new app."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New app")
        form = QFormLayout(self)
        self.name = QLineEdit()
        self.name.setPlaceholderText("my-script")
        self.budget = BudgetEditor(None)
        self.no_budget = QCheckBox("No budget of its own")
        self.no_budget.toggled.connect(self.budget.setDisabled)
        self.models = QLineEdit("*")
        self.models.setToolTip("Comma-separated models or patterns: gpt-4o-mini, anthropic/*")
        self.lifetime = lifetime_combo(None)
        self.error = label("", wrap=True)
        form.addRow(label("Name"), self.name)
        form.addRow(label("Budget"), self.budget)
        form.addRow(label(""), self.no_budget)
        form.addRow(label("Models"), self.models)
        form.addRow(label("Lifetime"), self.lifetime)
        form.addRow(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create")
        buttons.accepted.connect(self._create)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.spec: BudgetSpec | None = None

    def _create(self) -> None:
        if not self.name.text().strip():
            self.error.setText("Give the app a name")
            return
        try:
            self.spec = None if self.no_budget.isChecked() else self.budget.spec()
        except InvalidInput as exc:
            self.error.setText(shown(exc, 300))
            return
        self.accept()

    def scopes(self) -> list[str]:
        return [m.strip() for m in self.models.text().split(",") if m.strip()] or ["*"]


class KeyShownDialog(QDialog):
    """An app key, shown this once."""

    def __init__(self, app: str, key: str, url: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Key of {shown(app, 60)}")
        lay = QVBoxLayout(self)
        lay.addWidget(
            rich_label(
                f"The key of <b>{html_text(app, 100)}</b>. It is shown only now: copy it into "
                "the app.",
                wrap=True,
            )
        )
        field = QLineEdit(key)
        field.setReadOnly(True)
        field.setMinimumWidth(420)
        lay.addWidget(field)
        copy = QPushButton("Copy key")
        copy_button(copy, lambda: key)
        self.copy = copy
        lay.addWidget(copy)
        lay.addWidget(label(f"Base URL: {url}/v1 (OpenAI SDK) or {url} (Anthropic SDK)", wrap=True))
        ok = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        ok.rejected.connect(self.accept)
        lay.addWidget(ok)


class ProviderDialog(QDialog):
    """Add a provider, or rotate its key (then only the key is asked)."""

    def __init__(self, rotate: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"New key for {shown(rotate, 60)}" if rotate else "Add a provider")
        form = QFormLayout(self)
        self.name = QLineEdit(rotate or "")
        self.name.setPlaceholderText("openai")
        self.kind = QComboBox()
        for kind in KINDS.values():
            self.kind.addItem(kind.label, kind.id)
        self.base_url = QLineEdit()
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("paste the API key")
        # An x402 router is paid per request, or ahead by top-ups (the Wallet page): prepaid.
        self.prepaid = QCheckBox("Prepaid: paid ahead by top-ups from the Wallet page")
        self.prepaid.setChecked(False)
        if rotate is None:
            form.addRow(label("Name"), self.name)
            form.addRow(label("Kind"), self.kind)
            form.addRow(label("Base URL"), self.base_url)
            form.addRow(label(""), self.prepaid)
        self._kind_changed()
        form.addRow(label("API key"), self.key)
        form.addRow(label("The key goes to the secret store and is never shown again."))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def prepaid_chosen(self) -> bool:
        kind = KINDS.get(str(self.kind.currentData()))
        return kind is not None and kind.x402 and self.prepaid.isChecked()

    def _kind_changed(self) -> None:
        """The placeholder says what an empty Base URL means for this kind: its default
        address, or that this kind needs one; "prepaid" is offered for an x402 router, and
        a key is asked only of a kind that needs one."""
        kind = KINDS.get(str(self.kind.currentData()))
        if kind is None:
            return
        if self.prepaid.parent() is not None:  # in the form: adding, not rotating a key
            self.prepaid.setVisible(kind.x402)
        self.key.setPlaceholderText(
            "paste the API key" if kind.needs_key else "none needed (leave it empty)"
        )
        if kind.default_base_url is None:
            example = "https://llm.example" + ("/v1" if kind.wire is WireFormat.OPENAI else "")
            self.base_url.setPlaceholderText(f"required, like {example}")
        else:
            self.base_url.setPlaceholderText(f"{kind.default_base_url} (the default)")


WIDTH = 520  # of the dialog's text, so that wrapped lines get the height they need
VAULT_WRONG_CODE = "vault_passphrase_wrong"  # vault.sealed.WrongPassphrase.code


class PassphraseDialog(QDialog):
    """The sealed vault's passphrase, before the window opens.

    ``choose`` (no sealed file yet): typed twice, with what it protects and that it cannot
    be recovered; a mismatch is refused here. Otherwise typed once. Either way ``unlock``
    (which derives the key and opens or creates the file: slow by design) runs on a worker
    thread while the dialog shows progress, and a wrong passphrase is asked again here.
    ``preset`` (from the environment) is tried first without asking. Accepted only once
    ``unlock`` succeeded; ``passphrase`` then holds what opened it."""

    unlock_done = Signal(object)  # None, or the exception unlock raised

    def __init__(
        self,
        *,
        choose: bool,
        sealed_file: str,
        unlock: Callable[[str], None],
        preset: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.choose = choose
        self._unlock = unlock
        self.passphrase: str | None = None
        self.busy = False
        self.setWindowTitle(texts.SEAL_CHOOSE_TITLE if choose else texts.UNSEAL_TITLE)
        lay = QVBoxLayout(self)
        lay.setSizeConstraint(QLayout.SizeConstraint.SetFixedSize)  # wrapped text, no gaps
        lay.addWidget(label(texts.SEAL_CHOOSE if choose else texts.UNSEAL_TEXT, wrap=True))
        lay.addWidget(label(sealed_file, wrap=True))
        if choose:
            lay.addWidget(label(texts.SEAL_NO_RECOVERY, wrap=True))
        form = QFormLayout()
        self.first = QLineEdit()
        self.first.setEchoMode(QLineEdit.EchoMode.Password)
        self.second = QLineEdit()
        self.second.setEchoMode(QLineEdit.EchoMode.Password)
        if choose:
            form.addRow(label("New passphrase"), self.first)
            form.addRow(label("Once more"), self.second)
        else:
            form.addRow(label("Passphrase"), self.first)
        lay.addLayout(form)
        self.error = label("", "warning", wrap=True)
        self.error.hide()
        lay.addWidget(self.error)
        self.progress_text = label("", "muted", wrap=True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: the KDF gives no figure to show
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(8)
        self.progress_text.hide()
        self.progress.hide()
        lay.addWidget(self.progress_text)
        lay.addWidget(self.progress)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Create the sealed file" if choose else "Unlock")
        self.quit = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        self.quit.setText("Quit")
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        for lab in self.findChildren(QLabel):
            if lab.wordWrap():
                lab.setFixedWidth(WIDTH)
        self.unlock_done.connect(self._finished)
        self._tried: str | None = None
        self._from_preset = False
        if preset:
            QTimer.singleShot(0, lambda: self._start(preset, from_preset=True))

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    def submit(self) -> None:
        """Check what was typed; when it holds, unlock off the GUI thread."""
        if self.busy:
            return
        text = self.first.text()
        if not text:
            self.show_error(texts.SEAL_EMPTY)
            return
        if self.choose:
            if len(text) < MIN_SEAL_LENGTH:
                self.show_error(texts.SEAL_SHORT.format(n=MIN_SEAL_LENGTH))
                return
            if text != self.second.text():
                self.show_error(texts.SEAL_MISMATCH)
                self.second.clear()
                self.second.setFocus()
                return
        self._start(text, from_preset=False)

    def _start(self, text: str, *, from_preset: bool) -> None:
        self.busy = True
        self._tried, self._from_preset = text, from_preset
        self.show_error("")
        for widget in (self.first, self.second, self.ok, self.quit):
            widget.setEnabled(False)
        self.progress_text.setText(texts.SEAL_SEALING if self.choose else texts.SEAL_CHECKING)
        self.progress_text.show()
        self.progress.show()

        def work() -> None:
            try:
                self._unlock(text)
            except Exception as exc:  # handed to the GUI thread, shown there
                self.unlock_done.emit(exc)
            else:
                self.unlock_done.emit(None)

        threading.Thread(target=work, name="vault-unlock", daemon=True).start()

    def _finished(self, error: object) -> None:
        self.busy = False
        self.progress_text.hide()
        self.progress.hide()
        for widget in (self.first, self.second, self.ok, self.quit):
            widget.setEnabled(True)
        if error is None:
            self.passphrase = self._tried
            self.accept()
            return
        wrong = isinstance(error, WalletError) and error.code == VAULT_WRONG_CODE
        if wrong:
            self.show_error(texts.SEAL_ENV_WRONG if self._from_preset else texts.SEAL_WRONG)
        elif isinstance(error, WalletError):
            self.show_error(shown(error, 400))
        else:
            self.show_error(f"The sealed file could not be opened ({type(error).__name__}).")
        self.first.clear()
        self.second.clear()
        self.first.setFocus()

    def reject(self) -> None:
        if not self.busy:  # the worker is deriving a key: let it finish
            super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.busy:
            event.ignore()
            return
        super().closeEvent(event)
