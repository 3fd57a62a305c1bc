"""Until the first spend the Overview shows three first steps, each marked done as the
wallet gets there (a provider, an app, a request), on a real engine and the fake upstream;
after the first spend they are gone."""

from __future__ import annotations

from PySide6.QtCore import Qt

from aiwallet.gui import texts
from aiwallet.gui.app import DesktopApp
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from fakeupstream import OPENAI_KEY
from gui.conftest import start_app, wait_for_gui_tasks


def test_overview_first_steps_are_marked_and_go_after_the_first_spend(qtbot, qloop, tmp_path, fake):
    fake.reset()
    wallet = Wallet.open(DataDir(tmp_path / "wallet"))
    app = DesktopApp(wallet, use_tray=False)
    qtbot.addWidget(app.window)
    try:
        start_app(app, qtbot, port=0)
        page = app.window.overview
        steps = page.steps

        def reloaded() -> None:
            before = page.loads
            app.controller.mark_dirty()
            qtbot.waitUntil(lambda: page.loads > before, timeout=10_000)

        reloaded()
        assert steps.isVisibleTo(app.window)
        assert [line.text() for line in steps.lines] == list(texts.FIRST_STEPS)
        assert all(line.textFormat() == Qt.TextFormat.PlainText for line in steps.lines)
        assert [m.text() for m in steps.marks] == ["1.", "2.", "3."]

        wallet.add_provider(
            "openai", kind="openai", api_key=OPENAI_KEY, base_url=fake.base_url + "/v1"
        )
        reloaded()
        assert [m.text() for m in steps.marks] == ["✓ 1.", "2.", "3."]
        assert steps.lines[0].objectName() == "muted"

        _, key = wallet.create_app("script", budget=None)
        reloaded()
        assert [m.text() for m in steps.marks] == ["✓ 1.", "✓ 2.", "3."]
        assert steps.isVisibleTo(app.window)

        import openai

        client = openai.OpenAI(base_url=app.controller.url + "/v1", api_key=key, max_retries=0)
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        reloaded()
        assert not steps.isVisibleTo(app.window)  # the first spend: steps done with
    finally:
        app.shutdown()
        wait_for_gui_tasks(qtbot, qloop)
        wallet.close()
