"""The first run explains itself: without an OS keyring the passphrase is chosen twice (a
mismatch refused in the dialog, what it protects and that it cannot be recovered said);
at a later start a wrong passphrase is asked again in the same dialog, checked against the
real sealed file (real Argon2id) on a worker thread while the dialog shows progress; with an
OS keyring nothing is asked and the wallet says so once."""

from __future__ import annotations

import keyring.core
import nacl.pwhash
import pytest
from PySide6.QtCore import Qt

from aiwallet.gui import texts
from aiwallet.gui.app import ENV_PASSPHRASE, DesktopApp, Passphrase, tell_keyring_once
from aiwallet.gui.dialogs import PassphraseDialog
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from aiwallet.vault.sealed import SealedFileStore
from gui.conftest import wait_for_gui_tasks

FAST = {
    "opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN,
    "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN,
}
RIGHT = "correct horse battery"


@pytest.fixture
def no_keyring(monkeypatch):
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.delenv(ENV_PASSPHRASE, raising=False)
    keyring.core._keyring_backend = None
    yield
    keyring.core._keyring_backend = None


def shown_texts(dialog: PassphraseDialog) -> str:
    from PySide6.QtWidgets import QLabel

    return " ".join(lab.text() for lab in dialog.findChildren(QLabel) if lab.isVisibleTo(dialog))


def click_ok(qtbot, dialog: PassphraseDialog) -> None:
    qtbot.mouseClick(dialog.ok, Qt.MouseButton.LeftButton)


def sealed_wallet(tmp_path) -> tuple[DataDir, Passphrase, Wallet]:
    """A wallet whose sealed file exists (fast KDF parameters, stored in the file)."""
    data_dir = DataDir(tmp_path / "w")
    data_dir.ensure()
    SealedFileStore(data_dir.sealed_vault, lambda: RIGHT, **FAST).set("probe", "sealed-value")
    passphrase = Passphrase()
    return data_dir, passphrase, Wallet.open(data_dir, passphrase_provider=passphrase)


def test_first_run_asks_twice_and_a_mismatch_is_refused(qtbot, qloop, tmp_path, no_keyring):
    data_dir = DataDir(tmp_path / "w")
    passphrase = Passphrase()
    wallet = Wallet.open(data_dir, passphrase_provider=passphrase)
    dialog = passphrase.dialog(wallet)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.choose and dialog.windowTitle() == texts.SEAL_CHOOSE_TITLE
    words = shown_texts(dialog)
    assert "provider keys" in words and "receipt-signing key" in words
    assert "cannot be recovered" in words and str(data_dir.sealed_vault) in words
    assert dialog.second.isVisibleTo(dialog)  # asked twice
    assert dialog.first.echoMode() == dialog.second.echoMode() == dialog.first.EchoMode.Password

    dialog.first.setText(RIGHT)
    dialog.second.setText(RIGHT + "!")
    click_ok(qtbot, dialog)
    assert dialog.error.text() == texts.SEAL_MISMATCH and dialog.error.isVisibleTo(dialog)
    assert not dialog.busy and dialog.isVisible() and dialog.second.text() == ""
    assert not data_dir.sealed_vault.exists()  # nothing sealed with a mistyped passphrase

    dialog.first.setText("short")
    dialog.second.setText("short")
    click_ok(qtbot, dialog)
    assert "at least" in dialog.error.text() and not data_dir.sealed_vault.exists()

    dialog.first.setText(RIGHT)
    dialog.second.setText(RIGHT)
    click_ok(qtbot, dialog)
    assert dialog.busy and dialog.progress.isVisibleTo(dialog)  # the KDF runs off this thread
    assert not dialog.ok.isEnabled()
    qtbot.waitUntil(lambda: dialog.result() == dialog.DialogCode.Accepted, timeout=30_000)
    assert dialog.passphrase == RIGHT and passphrase.value == RIGHT
    assert data_dir.sealed_vault.exists()
    assert SealedFileStore(data_dir.sealed_vault, lambda: RIGHT).names() == []

    app = DesktopApp(wallet, use_tray=False)  # the engine starts on the chosen passphrase
    qtbot.addWidget(app.window)
    try:
        qtbot.waitUntil(app.start(port=0).done, timeout=30_000)
        assert app.controller.engine is not None, app.controller.engine_error
    finally:
        app.shutdown()
        wait_for_gui_tasks(qtbot, qloop)
        wallet.close()


def test_a_wrong_passphrase_is_asked_again(qtbot, tmp_path, no_keyring):
    _, passphrase, wallet = sealed_wallet(tmp_path)
    try:
        dialog = passphrase.dialog(wallet)
        qtbot.addWidget(dialog)
        dialog.show()
        assert not dialog.choose and dialog.windowTitle() == texts.UNSEAL_TITLE
        assert not dialog.second.isVisibleTo(dialog)  # typed once at a later start
        for attempt in ("wrong horse", "correct horse"):
            dialog.first.setText(attempt)
            click_ok(qtbot, dialog)
            assert dialog.busy and dialog.progress_text.text() == texts.SEAL_CHECKING
            qtbot.waitUntil(lambda: not dialog.busy, timeout=30_000)
            assert dialog.error.text() == texts.SEAL_WRONG  # asked again, same dialog
            assert dialog.isVisible() and dialog.result() == 0 and dialog.first.text() == ""
            assert dialog.first.isEnabled() and dialog.ok.isEnabled()
            assert passphrase.value is None
        dialog.first.setText(RIGHT)
        click_ok(qtbot, dialog)
        qtbot.waitUntil(lambda: dialog.result() == dialog.DialogCode.Accepted, timeout=30_000)
        assert passphrase.value == RIGHT
        assert wallet.vault.get("probe").reveal() == "sealed-value"  # unlocked: no KDF again
    finally:
        wallet.close()


def test_a_wrong_passphrase_from_the_environment_is_asked_for(
    qtbot, tmp_path, no_keyring, monkeypatch
):
    monkeypatch.setenv(ENV_PASSPHRASE, "not it at all")
    _, passphrase, wallet = sealed_wallet(tmp_path)
    try:
        dialog = passphrase.dialog(wallet)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitUntil(lambda: dialog.error.text() == texts.SEAL_ENV_WRONG, timeout=30_000)
        assert dialog.isVisible() and passphrase.value is None
        dialog.first.setText(RIGHT)
        click_ok(qtbot, dialog)
        qtbot.waitUntil(lambda: dialog.result() == dialog.DialogCode.Accepted, timeout=30_000)
    finally:
        wallet.close()


def test_a_right_passphrase_from_the_environment_unlocks_without_typing(
    qtbot, tmp_path, no_keyring, monkeypatch
):
    monkeypatch.setenv(ENV_PASSPHRASE, RIGHT)
    _, passphrase, wallet = sealed_wallet(tmp_path)
    try:
        dialog = passphrase.dialog(wallet)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitUntil(lambda: dialog.result() == dialog.DialogCode.Accepted, timeout=30_000)
        assert passphrase.value == RIGHT and dialog.error.text() == ""
    finally:
        wallet.close()


def test_quitting_the_dialog_gives_no_passphrase(qtbot, tmp_path, no_keyring):
    _, passphrase, wallet = sealed_wallet(tmp_path)
    try:
        dialog = passphrase.dialog(wallet)
        qtbot.addWidget(dialog)
        dialog.show()
        dialog.reject()
        assert dialog.result() == dialog.DialogCode.Rejected and dialog.passphrase is None
    finally:
        wallet.close()


def test_with_an_os_keyring_nothing_is_asked_and_it_is_said_once(tmp_path, qtbot):
    wallet = Wallet.open(DataDir(tmp_path / "w"), passphrase_provider=Passphrase())
    try:
        assert not wallet.vault_status().is_fallback
        assert Passphrase().ask_if_needed(wallet)  # returns at once: no dialog to answer
        said: list[str] = []
        tell_keyring_once(wallet, said.append)
        tell_keyring_once(wallet, said.append)
        assert len(said) == 1 and "OS keyring" in said[0] and "no passphrase" in said[0]
        assert not wallet.data_dir.sealed_vault.exists()
    finally:
        wallet.close()


def drive_modal(answers: list[str], seen: list[str], limit: int = 600) -> None:
    """From inside the dialog's own modal loop (``exec``), as a user would: type each answer
    in turn once the dialog is idle, noting the error shown before each; bounded in turns."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    turns = [0]

    def step() -> None:
        turns[0] += 1
        dialog = QApplication.activeModalWidget()
        if turns[0] > limit:
            if isinstance(dialog, PassphraseDialog):
                dialog.busy = False
                dialog.reject()
            return
        if isinstance(dialog, PassphraseDialog) and not dialog.busy:
            seen.append(dialog.error.text())
            if not answers:
                dialog.reject()
                return
            dialog.first.setText(answers.pop(0))
            dialog.submit()
        QTimer.singleShot(50, step)

    QTimer.singleShot(0, step)


def test_the_start_asks_in_its_modal_dialog_until_the_passphrase_opens_the_file(
    qtbot, tmp_path, no_keyring
):
    _, passphrase, wallet = sealed_wallet(tmp_path)
    try:
        seen: list[str] = []
        drive_modal(["wrong horse", RIGHT], seen)
        assert passphrase.ask_if_needed(wallet)  # the real exec(), as run() calls it
        assert seen == ["", texts.SEAL_WRONG]
        assert passphrase.value == RIGHT and passphrase() == RIGHT
    finally:
        wallet.close()


def test_quitting_the_modal_dialog_means_the_app_does_not_start(qtbot, tmp_path, no_keyring):
    _, passphrase, wallet = sealed_wallet(tmp_path)
    try:
        seen: list[str] = []
        drive_modal(["wrong horse"], seen)
        assert not passphrase.ask_if_needed(wallet)
        assert seen == ["", texts.SEAL_WRONG] and passphrase.value is None
    finally:
        wallet.close()


def test_a_damaged_sealed_file_is_explained_in_the_dialog(qtbot, tmp_path, no_keyring):
    data_dir = DataDir(tmp_path / "w")
    data_dir.ensure()
    data_dir.sealed_vault.write_text("not a sealed vault", encoding="utf-8")
    passphrase = Passphrase()
    wallet = Wallet.open(data_dir, passphrase_provider=passphrase)
    try:
        dialog = passphrase.dialog(wallet)
        qtbot.addWidget(dialog)
        dialog.show()
        dialog.first.setText(RIGHT)
        click_ok(qtbot, dialog)
        qtbot.waitUntil(lambda: not dialog.busy, timeout=30_000)
        assert "damaged or unreadable" in dialog.error.text() and dialog.result() == 0
    finally:
        wallet.close()
