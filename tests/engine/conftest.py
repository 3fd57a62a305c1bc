"""An engine on loopback in front of the fake upstream (the session's ``fake``, from
tests/conftest.py), with a fresh wallet per test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anthropic
import openai
import pytest

from aiwallet.cli import main
from aiwallet.domain.money import parse_budget_spec
from aiwallet.engine.server import Engine
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from aiwallet.upstreams.client import Timeouts
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY, FakeUpstream


@dataclass
class Rig:
    wallet: Wallet
    engine: Engine
    fake: FakeUpstream
    data_dir: DataDir

    @property
    def url(self) -> str:
        return self.engine.url

    def app(self, name: str = "script", budget: str | None = "2/day", models=None) -> str:
        spec = parse_budget_spec(budget) if budget else None
        _, key = self.wallet.create_app(name, budget=spec, models=models)
        return key

    def openai(self, key: str, **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kw)

    def async_openai(self, key: str, **kw) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kw)

    def anthropic(self, key: str, **kw) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=key, max_retries=0, **kw)

    def async_anthropic(self, key: str, **kw) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=key, max_retries=0, **kw)

    def ledger_rows(self) -> list[dict]:
        from sqlalchemy import select

        from aiwallet.store import schema as t

        with self.wallet.db.read() as conn:
            return [
                dict(r) for r in conn.execute(select(t.ledger).order_by(t.ledger.c.id)).mappings()
            ]

    def requests(self) -> list[dict]:
        return self.wallet.requests.recent(10_000)


def make_rig(tmp_path: Path, fake: FakeUpstream, *, url: str | None = None, **engine_kw) -> Rig:
    """The rig on SQLite in the data dir, or on the database at ``url`` (PostgreSQL)."""
    data_dir = DataDir(tmp_path / "wallet")
    wallet = Wallet.open(data_dir, url=url)
    wallet.add_provider("openai", kind="openai", api_key=OPENAI_KEY, base_url=fake.base_url + "/v1")
    wallet.add_provider(
        "anthropic", kind="anthropic", api_key=ANTHROPIC_KEY, base_url=fake.base_url
    )
    # a loaded CI machine can hold a hostile batch past 5 s; tests of timeouts set their own
    engine_kw.setdefault("timeouts", Timeouts(connect_s=5, read_s=30))
    # nobody answers prompts in most tests: a keyless call waits briefly, then is refused
    engine_kw.setdefault("consent_timeout_s", 0.3)
    engine = wallet.new_engine(port=0, **engine_kw)
    engine.start()
    return Rig(wallet, engine, fake, data_dir)


def cli(capsys, rig: Rig, *args: str) -> tuple[int, str, str]:
    """Run ``aiwallet --data-dir <rig's> ARGS`` in-process: (exit code, stdout, stderr)."""
    try:
        main(["--data-dir", str(rig.data_dir.root), *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def rig(tmp_path, fake):
    fake.reset()
    r = make_rig(tmp_path, fake)
    yield r
    r.engine.stop()
    r.wallet.close()


@pytest.fixture
def backend_rig(tmp_path, fake, db_url):
    """The rig on each backend (``db_url``'s parameters): SQLite in the data dir, as
    ``aiwallet serve`` keeps it, and a fresh database on the session's throw-away PostgreSQL
    (skipped when PostgreSQL is absent, failed instead with AIWALLET_REQUIRE_POSTGRES=1)."""
    fake.reset()
    # races hold up to 200 requests at once: a loaded CI machine needs more than 5 s to read
    r = make_rig(
        tmp_path,
        fake,
        url=None if db_url.startswith("sqlite") else db_url,
        timeouts=Timeouts(connect_s=5, read_s=60),
    )
    yield r
    r.engine.stop()
    r.wallet.close()
