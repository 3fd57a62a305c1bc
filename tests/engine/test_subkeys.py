"""Per-app OpenRouter keys, the second budget layer, against a fake OpenRouter on loopback:
each app gets its own key capped like its budget, changed with it, disabled on pause and
revoke, deleted with the app, and used for that app's requests only; the provider's refusal
past the cap reaches the app as ``provider_limit_reached``."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from aiwallet.domain.money import parse_budget_spec
from engine.conftest import make_rig
from leakscan import register_key
from orkit.server import INFERENCE_KEY, MANAGEMENT_KEY, FakeOpenRouter
from waiting import wait_until

MODEL = "openrouter/openai/gpt-4o-mini"


@pytest.fixture
def orfake():
    f = FakeOpenRouter()
    f.start_in_thread()
    yield f
    for key in f.keys.values():
        register_key(key.key)  # no key it made may be in any file the wallet wrote
    f.stop()


@pytest.fixture
def orig(tmp_path, fake, orfake):
    fake.reset()
    r = make_rig(tmp_path, fake)
    r.wallet.add_provider(
        "openrouter", kind="openrouter", api_key=INFERENCE_KEY, base_url=orfake.base_url
    )
    r.wallet.provider_keys.enable("openrouter", MANAGEMENT_KEY)
    yield r
    r.engine.stop()
    r.wallet.close()


def key_of(orfake: FakeOpenRouter, app: str):
    return next((k for k in orfake.sub_keys() if k.name == f"aiwallet: {app}"), None)


def made(orig, orfake, app: str):
    """The app's key, once made at OpenRouter and recorded by the wallet."""
    return wait_until(
        lambda: (
            key_of(orfake, app)
            and any(
                orig.wallet.apps.by_id(s.app_id).name == app for s in orig.wallet.subkeys.list()
            )
        ),
        what=f"{app}'s key made and recorded",
    ) and key_of(orfake, app)


def ask(rig, key: str, content: str = "hello there") -> openai.types.chat.ChatCompletion:
    return rig.openai(key).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=50
    )


def test_each_app_gets_its_own_capped_key_and_uses_it(orig, orfake):
    alpha = orig.app("alpha", budget="2/day")
    beta = orig.app("beta", budget="5/week")
    a = wait_until(lambda: key_of(orfake, "alpha"), what="alpha's key at OpenRouter")
    b = wait_until(lambda: key_of(orfake, "beta"), what="beta's key at OpenRouter")
    assert (a.limit, a.limit_reset, a.disabled) == (Decimal(2), "daily", False)
    assert (b.limit, b.limit_reset) == (Decimal(5), "weekly")

    ask(orig, alpha)
    ask(orig, beta)
    ask(orig, alpha, "and again")
    used = [s.key_hash for s in orfake.served]
    main = orfake.keys[INFERENCE_KEY].hash
    assert used == [a.hash, b.hash, a.hash] and main not in used
    # each key's use at OpenRouter is what the wallet billed that app, to the nano-dollar
    rows = {r["request_id"]: r for r in orig.ledger_rows()}
    spent = {"alpha": 0, "beta": 0}
    for r in rows.values():
        app = orig.wallet.apps.by_id(r["app_id"]).name
        spent[app] += r["amount_nano"]
        assert r["token_source"] == "provider_cost"
    assert spent["alpha"] == int(a.usage.scaleb(9)) and spent["beta"] == int(b.usage.scaleb(9))


def test_the_key_follows_budget_pause_revoke_and_removal(orig, orfake):
    orig.app("gamma", budget="2/day")
    k = made(orig, orfake, "gamma")
    orig.wallet.set_budget(parse_budget_spec("7.5/month"), "gamma")
    wait_until(lambda: (k.limit, k.limit_reset) == (Decimal("7.5"), "monthly"), what="new cap")
    orig.wallet.set_budget(None, "gamma")
    wait_until(lambda: k.limit is None and k.limit_reset is None, what="cap removed")
    orig.wallet.set_app_paused("gamma", True)
    wait_until(lambda: k.disabled, what="disabled on pause")
    orig.wallet.set_app_paused("gamma", False)
    wait_until(lambda: not k.disabled, what="enabled again")
    orig.wallet.set_paused(True)  # the kill switch disables every app's key too
    wait_until(lambda: k.disabled, what="disabled by the kill switch")
    orig.wallet.set_paused(False)
    wait_until(lambda: not k.disabled, what="enabled after the kill switch")
    orig.wallet.revoke_app("gamma")
    wait_until(lambda: k.disabled, what="disabled on revoke")
    ref = orig.wallet.subkeys.list("openrouter")[0].secret_ref
    assert orig.wallet.vault.get(ref) is not None

    orig.wallet.provider_keys.remove_app("gamma")
    assert key_of(orfake, "gamma") is None  # deleted at OpenRouter before the app went
    assert orig.wallet.vault.get(ref) is None
    assert orig.wallet.subkeys.list() == []
    actions = [e.action for e in orig.wallet.audit.entries()]
    assert {"subkey.create", "subkey.update", "app.remove"} <= set(actions)


def test_openrouter_refusing_past_the_cap_is_shown_clearly(orig, orfake):
    """Even if the wallet's own budget let a request through (a bug, or spend the wallet
    never saw), OpenRouter refuses the app's key past its cap, and the app is told so."""
    key = orig.app("delta", budget="2/day")
    k = wait_until(lambda: key_of(orfake, "delta"), what="delta's key")
    seen: list[tuple[str, dict]] = []
    orig.engine.events.subscribe(lambda name, payload: seen.append((name, payload)))
    k.usage = k.limit - Decimal("0.000001")  # spent elsewhere: the cap is all but reached
    with pytest.raises(openai.APIStatusError) as caught:
        ask(orig, key)
    assert caught.value.status_code == 402
    err = caught.value.body
    assert err["code"] == "provider_limit_reached"
    assert "capped key" in err["message"] and "reached its limit" in err["message"]
    assert orfake.served[-1].status == 403  # the refusal came from OpenRouter
    # nothing billed, nothing left reserved
    assert not orig.ledger_rows()
    assert orig.wallet.budgets.open_reservations() == []
    wait_until(lambda: any(n == "provider.limit_reached" for n, _ in seen), what="the notification")


def test_no_capped_key_means_the_request_is_not_sent(orig, orfake):
    orfake.management_down = True
    key = orig.app("epsilon", budget="2/day")
    with pytest.raises(openai.APIStatusError) as caught:
        ask(orig, key)
    assert caught.value.status_code == 503
    assert caught.value.body["code"] == "provider_key_unavailable"
    assert orfake.served == []  # never with the uncapped main key
    sub_problem = orig.wallet.provider_keys.report("openrouter")
    assert sub_problem == []  # no key was made
    orfake.management_down = False
    orig.wallet.notify_engine()
    wait_until(lambda: key_of(orfake, "epsilon"), what="the key made once OpenRouter answers")
    assert ask(orig, key).choices[0].message.content


def test_the_report_puts_openrouter_figures_beside_the_wallets(orig, orfake):
    key = orig.app("zeta", budget="3/day")
    made(orig, orfake, "zeta")
    ask(orig, key)
    ask(orig, key, "a second question with more words in it")
    orig.engine.subkeys.poke()
    # usage is read on the timer; run one reading pass now, on the engine's loop
    import asyncio

    asyncio.run_coroutine_threadsafe(
        orig.engine.subkeys.sync(read_usage=True), orig.engine.loop
    ).result(10)
    (view,) = orig.wallet.provider_keys.report("openrouter")
    assert view.app == "zeta" and view.limit_nano == 3_000_000_000
    assert view.limit_reset == "daily" and not view.disabled
    assert view.wallet_used_nano > 0
    assert view.provider_used_nano == view.wallet_used_nano
    assert view.remaining_nano == 3_000_000_000 - view.provider_used_nano


def test_turning_per_app_keys_off_deletes_them_at_openrouter(orig, orfake):
    key = orig.app("eta", budget="2/day")
    made(orig, orfake, "eta")
    assert orig.wallet.provider_keys.disable("openrouter") == 1
    assert orfake.sub_keys() == []
    assert orig.wallet.subkeys.list() == []
    ask(orig, key)  # the provider's own key serves the app again
    assert orfake.served[-1].key_hash == orfake.keys[INFERENCE_KEY].hash


def test_removing_the_provider_deletes_its_per_app_keys_first(orig, orfake):
    orig.app("theta", budget="2/day")
    made(orig, orfake, "theta")
    orig.wallet.remove_provider("openrouter")
    assert orfake.sub_keys() == []
    assert orig.wallet.vault.get("provider:openrouter:management") is None
    assert orig.wallet.subkeys.list() == []
