"""Dialogs: budgets are parsed exactly (never through a float); a key is never echoed."""

from __future__ import annotations

from PySide6.QtWidgets import QLineEdit

from aiwallet.domain.money import BudgetSpec, Period
from aiwallet.gui.dialogs import BudgetDialog, NewAppDialog, ProviderDialog
from gui.conftest import wait_for_gui_tasks


def test_budget_dialog_parses_exact_amounts_and_explains_bad_ones(qtbot):
    dialog = BudgetDialog("my-script", BudgetSpec(2_000_000_000, Period.DAY))
    qtbot.addWidget(dialog)
    assert dialog.editor.amount.text() == "$2.00"
    dialog.editor.amount.setText("0.1")
    dialog.editor.period.setCurrentIndex(dialog.editor.period.findData("week"))
    dialog._save()
    assert dialog.spec == BudgetSpec(100_000_000, Period.WEEK)  # 0.1 is exact, not 0.1000000001
    dialog.editor.amount.setText("two dollars")
    dialog._save()
    assert "two dollars" in dialog.error.text()
    dialog.editor.amount.setText("0.0000000001")
    dialog._save()
    assert "nano-dollar" in dialog.error.text()
    dialog.none.setChecked(True)
    assert not dialog.editor.isEnabled()
    dialog._save()
    assert dialog.spec is None


def test_new_app_dialog_needs_a_name_and_splits_models(qtbot):
    dialog = NewAppDialog()
    qtbot.addWidget(dialog)
    dialog._create()
    assert dialog.error.text() == "Give the app a name"
    dialog.name.setText("notebook")
    dialog.models.setText(" gpt-4o-mini , anthropic/* ,")
    dialog._create()
    assert dialog.result() == NewAppDialog.DialogCode.Accepted
    assert dialog.scopes() == ["gpt-4o-mini", "anthropic/*"]
    assert dialog.spec == BudgetSpec(2_000_000_000, Period.DAY)


def test_provider_key_field_never_echoes(qtbot):
    dialog = ProviderDialog(None)
    qtbot.addWidget(dialog)
    assert dialog.key.echoMode() == QLineEdit.EchoMode.Password
    rotate = ProviderDialog("openai")
    qtbot.addWidget(rotate)
    assert rotate.key.echoMode() == QLineEdit.EchoMode.Password
    assert not rotate.name.isVisibleTo(rotate)  # rotating asks only for the new key


def test_sealed_vault_passphrase_unlocks_the_engine(qtbot, qloop, tmp_path, monkeypatch):
    import keyring.core
    import pytest
    from PySide6.QtCore import Qt

    from aiwallet.domain.errors import VaultError
    from aiwallet.gui.app import DesktopApp, Passphrase
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    keyring.core._keyring_backend = None
    seal = Wallet.open(DataDir(tmp_path / "w"), passphrase_provider=lambda: "correct horse")
    seal.add_provider("openai", kind="openai", api_key="sk-sealed-" + "q" * 30)
    seal.close()

    passphrase = Passphrase()
    with pytest.raises(VaultError):
        passphrase()  # nothing typed yet: a clear error, not a hang
    wallet = Wallet.open(DataDir(tmp_path / "w"), passphrase_provider=passphrase)
    dialog = passphrase.dialog(wallet)
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.choose  # the sealed file exists: typed once
    dialog.first.setText("correct horse")
    qtbot.mouseClick(dialog.ok, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.result() == dialog.DialogCode.Accepted, timeout=30_000)
    app = DesktopApp(wallet, use_tray=False)
    qtbot.addWidget(app.window)
    try:
        qtbot.waitUntil(app.start(port=0).done, timeout=30_000)  # the engine start has ended
        assert app.controller.engine_error is None
        assert app.controller.engine is not None
    finally:
        app.shutdown()
        wait_for_gui_tasks(qtbot, qloop)
        wallet.close()
