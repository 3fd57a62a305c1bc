"""The desktop app on a real engine (own thread) in front of the fake upstream, offscreen,
on a qasync loop that shares the Qt event loop pytest-qt spins. Qt warnings fail tests
(``qt_log_level_fail`` in pyproject.toml)."""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import openai
import pytest
import qasync

from aiwallet.domain.money import parse_budget_spec
from aiwallet.gui.app import DesktopApp
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from aiwallet.upstreams.client import Timeouts
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY, FakeUpstream


def wait_for_gui_tasks(qtbot, loop: asyncio.AbstractEventLoop, timeout_ms: int = 10_000) -> None:
    """Every task on the GUI's loop (``qloop``) has finished: after ``DesktopApp.shutdown``
    (which cancels them; a cancelled task ends on a later turn of the loop), before the loop
    or the wallet closes."""
    qtbot.waitUntil(lambda: not asyncio.all_tasks(loop), timeout=timeout_ms)


def start_app(app: DesktopApp, qtbot, **engine_kw: Any) -> None:
    """``app.start(...)`` and wait until the engine start has finished (the engine set, the
    pages told: ``engine_changed`` emitted), not only until ``controller.engine`` is set."""
    task = app.start(**engine_kw)
    qtbot.waitUntil(task.done, timeout=20_000)
    assert app.controller.engine is not None, app.controller.engine_error


@pytest.fixture
def qloop(qapp):
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    yield loop
    # qasync marks the loop running for good (Qt's own loop is what runs); undo that so
    # later tests can use asyncio.run().
    asyncio.events._set_running_loop(None)
    loop._QEventLoop__is_running = False
    qapp.aboutToQuit.disconnect(loop._after_run_forever)
    loop.close()
    asyncio.set_event_loop(None)


@dataclass
class Desk:
    app: DesktopApp
    wallet: Wallet
    fake: FakeUpstream
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.app.controller.engine is not None
        return self.app.controller.engine.url

    def app_key(self, name: str = "script", budget: str | None = "2/day", models=None) -> str:
        _, key = self.wallet.create_app(
            name, budget=parse_budget_spec(budget) if budget else None, models=models
        )
        return key

    def openai(self, key: str, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kw)

    def call_in_thread(self, key: str, **kw: Any) -> dict[str, Any]:
        """A chat call from another thread (it may be held by a prompt); its outcome lands
        in the returned dict as "response" or "error"."""
        out: dict[str, Any] = {}

        def go() -> None:
            try:
                out["response"] = self.openai(key, **kw).chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
            except Exception as exc:
                out["error"] = exc

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        self.threads.append(thread)
        return out


@pytest.fixture
def desk(qtbot, qloop, tmp_path, fake):
    fake.reset()
    wallet = Wallet.open(DataDir(tmp_path / "wallet"))
    wallet.add_provider("openai", kind="openai", api_key=OPENAI_KEY, base_url=fake.base_url + "/v1")
    wallet.add_provider(
        "anthropic", kind="anthropic", api_key=ANTHROPIC_KEY, base_url=fake.base_url
    )
    app = DesktopApp(wallet, use_tray=False)
    qtbot.addWidget(app.window)
    start_app(app, qtbot, port=0, consent_timeout_s=30, timeouts=Timeouts(connect_s=2, read_s=5))
    d = Desk(app, wallet, fake)
    yield d
    for thread in d.threads:
        thread.join(10)
    app.shutdown()
    wait_for_gui_tasks(qtbot, qloop)
    wallet.close()
