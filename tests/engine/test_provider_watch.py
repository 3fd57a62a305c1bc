"""Balances wherever a provider publishes one (OpenRouter key and credits, Vercel credits,
DeepSeek balance), read on the engine's timer with a low-balance notification at the user's
threshold; key age and the rotation reminder."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiohttp import web
from sqlalchemy import update

from aiwallet.preferences import KEY_ROTATION_DAYS, LOW_BALANCE_USD
from aiwallet.store import schema as t
from engine.conftest import cli, make_rig
from orkit.server import INFERENCE_KEY, MANAGEMENT_KEY, FakeOpenRouter

VERCEL_KEY = "vck_" + "3f" * 20
DEEPSEEK_KEY = "sk-" + "d5" * 16


class AccountFakes:
    """Vercel AI Gateway's GET /v1/credits and DeepSeek's GET /user/balance, strict about
    the path and the key."""

    def __init__(self) -> None:
        self.vercel_balance = "95.50"
        self.deepseek_infos = [
            {"currency": "USD", "total_balance": "110.00", "granted_balance": "10.00",
             "topped_up_balance": "100.00"},
        ]  # fmt: skip
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def app(self) -> web.Application:
        app = web.Application()

        async def vercel(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != f"Bearer {VERCEL_KEY}":
                return web.json_response({"error": {"message": "unauthorized"}}, status=401)
            return web.json_response({"balance": self.vercel_balance, "total_used": "4.50"})

        async def deepseek(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != f"Bearer {DEEPSEEK_KEY}":
                return web.json_response({"error": {"message": "unauthorized"}}, status=401)
            return web.json_response({"is_available": True, "balance_infos": self.deepseek_infos})

        app.router.add_get("/vercel/v1/credits", vercel)
        app.router.add_get("/deepseek/user/balance", deepseek)
        return app

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(runner.cleanup())

        threading.Thread(target=run, daemon=True).start()
        assert ready.wait(10)

    def stop(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture
def accounts():
    f = AccountFakes()
    f.start()
    yield f
    f.stop()


@pytest.fixture
def orfake():
    f = FakeOpenRouter()
    f.start_in_thread()
    yield f
    f.stop()


@pytest.fixture
def wrig(tmp_path, fake, orfake, accounts):
    fake.reset()
    r = make_rig(tmp_path, fake)
    w = r.wallet
    base = f"http://127.0.0.1:{accounts.port}"
    w.add_provider("openrouter", kind="openrouter", api_key=INFERENCE_KEY, base_url=orfake.base_url)
    w.add_provider("vercel", kind="vercel", api_key=VERCEL_KEY, base_url=f"{base}/vercel/v1")
    w.add_provider(
        "deepseek", kind="deepseek", api_key=DEEPSEEK_KEY, base_url=f"{base}/deepseek/v1"
    )
    yield r
    r.engine.stop()
    r.wallet.close()


def on_engine(rig, coro):
    return asyncio.run_coroutine_threadsafe(coro, rig.engine.loop).result(15)


def test_balances_where_published(wrig, orfake, capsys):
    orfake.keys[INFERENCE_KEY].limit = Decimal("20")
    orfake.keys[INFERENCE_KEY].usage = Decimal("7.25")
    found = {b.provider: b for b in asyncio.run(wrig.wallet.provider_balances())}
    assert set(found) == {"openrouter", "vercel", "deepseek"}
    o = found["openrouter"]
    assert (o.limit_nano, o.remaining_nano, o.used_nano) == (
        20 * 10**9,
        12_750_000_000,
        7_250_000_000,
    )
    assert o.credits_nano is None  # the account's credits need its management key
    assert found["vercel"].credits_nano == 95_500_000_000
    assert found["vercel"].used_nano == 4_500_000_000
    assert found["deepseek"].left_nano == 110 * 10**9
    wrig.wallet.provider_keys.enable("openrouter", MANAGEMENT_KEY)
    (o,) = [b for b in asyncio.run(wrig.wallet.provider_balances()) if b.provider == "openrouter"]
    assert o.credits_nano == 25 * 10**9 - 7_250_000_000  # bought less used, all keys
    assert o.left_nano == 12_750_000_000  # the key's own limit is the nearer
    code, out, _ = cli(capsys, wrig, "providers", "balances")
    assert code == 0 and "not published" in out and "$95.50" in out


def test_a_balance_in_another_currency_is_not_converted(wrig, accounts):
    accounts.deepseek_infos = [{"currency": "CNY", "total_balance": "800.00"}]
    found = {b.provider: b for b in asyncio.run(wrig.wallet.provider_balances())}
    assert found["deepseek"].left_nano is None
    assert "CNY, not USD" in (found["deepseek"].problem or "")


def test_low_balance_is_notified_once_per_crossing(wrig, accounts):
    seen: list[tuple[str, dict]] = []
    wrig.engine.events.subscribe(lambda n, p: seen.append((n, p)) if n == "balance.low" else None)
    wrig.wallet.set_pref(LOW_BALANCE_USD, "100")
    watch = wrig.engine.watch
    on_engine(wrig, watch.read_balances())
    assert [p["provider"] for _, p in seen] == ["vercel"]  # $95.50 < $100; DeepSeek has $110
    assert seen[0][1]["left_nano"] == 95_500_000_000
    assert seen[0][1]["threshold_nano"] == 100 * 10**9
    on_engine(wrig, watch.read_balances())
    assert len(seen) == 1  # still low: not told again
    accounts.vercel_balance = "150"
    on_engine(wrig, watch.read_balances())
    accounts.vercel_balance = "12.00"
    on_engine(wrig, watch.read_balances())
    assert [p["left_nano"] for _, p in seen] == [95_500_000_000, 12 * 10**9]
    wrig.wallet.set_pref(LOW_BALANCE_USD, None)  # off
    accounts.vercel_balance = "150"
    on_engine(wrig, watch.read_balances())
    accounts.vercel_balance = "1"
    on_engine(wrig, watch.read_balances())
    assert len(seen) == 2


def test_key_age_and_the_rotation_reminder(wrig, capsys):
    old = datetime.now(UTC) - timedelta(days=41)
    with wrig.wallet.db.begin() as conn:
        conn.execute(
            update(t.providers).where(t.providers.c.name == "vercel").values(key_set_at=old)
        )
    info = {p.name: p for p in wrig.wallet.list_providers()}
    assert info["vercel"].key_age_days == 41 and info["vercel"].rotation_due(30)
    assert info["openai"].key_age_days == 0 and not info["openai"].rotation_due(30)
    assert on_engine(wrig, wrig.engine.watch.check_key_age()) == ["vercel"]
    code, out, err = cli(capsys, wrig, "providers", "list")
    assert code == 0 and "41 days (rotate)" in out and "Rotate the key of vercel" in err
    event = [p for n, p in wrig.engine.events.history if n == "provider.key_old"][-1]
    assert event == {"provider": "vercel", "age_days": 41, "after_days": 30}
    wrig.wallet.set_pref(KEY_ROTATION_DAYS, 0)  # no reminders
    assert on_engine(wrig, wrig.engine.watch.check_key_age()) == []
    wrig.wallet.set_pref(KEY_ROTATION_DAYS, 30)
    # rotating the key (add --replace) starts its age again
    wrig.wallet.add_provider(
        "vercel", kind="vercel", api_key=VERCEL_KEY, base_url=info["vercel"].base_url,
        replace=True,
    )  # fmt: skip
    assert on_engine(wrig, wrig.engine.watch.check_key_age()) == []


def test_the_price_list_is_fetched_when_missing(wrig, orfake):
    n = on_engine(wrig, wrig.engine.watch.refresh_prices())
    if n is None:  # the engine's own first round got there first
        assert wrig.data_dir.openrouter_models.exists()
    else:
        assert n == 3
    assert on_engine(wrig, wrig.engine.watch.refresh_prices()) is None  # fresh: not again
    assert wrig.engine.state.router.openrouter.get("aiwallet-test/listed-only") is not None
