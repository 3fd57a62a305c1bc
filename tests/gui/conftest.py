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


@pytest.fixture(scope="session")
def fake():
    f = FakeUpstream()
    f.start_in_thread()
    yield f
    f.stop()


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
    app.start(port=0, consent_timeout_s=30, timeouts=Timeouts(connect_s=2, read_s=5))
    qtbot.waitUntil(lambda: app.controller.engine is not None, timeout=20_000)
    d = Desk(app, wallet, fake)
    yield d
    for thread in d.threads:
        thread.join(10)
    app.shutdown()
    qtbot.wait(100)  # let cancelled GUI tasks finish before the loop closes
    wallet.close()
