"""Vercel AI Gateway and Cloudflare AI Gateway through a real engine, driven by the official
SDKs, against strict fakes on loopback (tests/gatewaykit.py)."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from aiwallet.domain.cost import cost_of
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.gateways import gateway_secret_name
from aiwallet.domain.usage import Usage
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from aiwallet.upstreams.client import Timeouts
from engine.conftest import Rig, cli
from gatewaykit import (
    ACCOUNT,
    CF_ANTHROPIC_KEY,
    CF_OPENAI_KEY,
    CF_TOKEN,
    GATEWAY,
    VERCEL_KEY,
    CloudflareFake,
    VercelFake,
)
from leakscan import register_key

register_key(CF_TOKEN)

SONNET_NANO = 21 * 3_000 + 7 * 15_000  # 21 input at $3/1M, 7 output at $15/1M: 168,000 nano


@pytest.fixture(scope="module")
def vercel():
    fake = VercelFake().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def cloudflare():
    fake = CloudflareFake().start()
    yield fake
    fake.stop()


def _rig(tmp_path, setup) -> Rig:
    data_dir = DataDir(tmp_path / "wallet")
    wallet = Wallet.open(data_dir)
    setup(wallet)
    engine = wallet.new_engine(port=0, timeouts=Timeouts(connect_s=2, read_s=5),
                               consent_timeout_s=0.3)  # fmt: skip
    engine.start()
    return Rig(wallet, engine, None, data_dir)  # type: ignore[arg-type]


@pytest.fixture
def gw(tmp_path, vercel, cloudflare):
    vercel.seen.clear()
    cloudflare.seen.clear()
    cloudflare.token, cloudflare.stored_keys, cloudflare.echo_token = CF_TOKEN, False, False

    def setup(w: Wallet) -> None:
        w.add_provider("vercel", kind="vercel", api_key=VERCEL_KEY, base_url=vercel.root + "/v1")
        w.add_provider(
            "vercel-anthropic", kind="vercel-anthropic", api_key=VERCEL_KEY, base_url=vercel.root
        )
        w.add_provider(
            "cf",
            kind="cloudflare",
            api_key=CF_OPENAI_KEY,
            base_url=cloudflare.root,
            account_id=ACCOUNT,
            gateway_id=GATEWAY,
            gateway_token=CF_TOKEN,
        )
        w.add_provider(
            "cf-openai",
            kind="cloudflare-openai",
            api_key=CF_OPENAI_KEY,
            base_url=cloudflare.root,
            account_id=ACCOUNT,
            gateway_id=GATEWAY,
            gateway_token=CF_TOKEN,
        )
        w.add_provider("cf-anthropic", kind="cloudflare-anthropic", api_key=CF_ANTHROPIC_KEY,
                       base_url=cloudflare.root, account_id=ACCOUNT, gateway_id=GATEWAY,
                       gateway_token=CF_TOKEN)  # fmt: skip

    r = _rig(tmp_path, setup)
    yield r
    r.engine.stop()
    r.wallet.close()


def _spend(rig: Rig) -> dict:
    rows = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    assert len(rows) == 1, rows
    return rows[0]


def _row(rig: Rig, provider: str, model: str):
    row = rig.wallet.catalog.get(provider, model)
    assert row is not None
    return row


def _check_billed(
    rig: Rig, provider: str, model: str, upstream_model: str, source: str = "provider"
) -> dict:
    """One spend row: the model as the gateway was asked for it, priced by the catalog row
    ``provider/model``, at exactly the fake's usage under that row."""
    spend = _spend(rig)
    row = _row(rig, provider, model)
    assert spend["model"] == upstream_model
    assert spend["price_row_ref"] == row.ref
    assert spend["price_row"]["provider"] == provider and spend["price_row"]["model"] == model
    assert spend["token_source"] == source  # "injected": the wallet asked for stream usage
    assert spend["amount_nano"] == cost_of(Usage(input_tokens=21, output_tokens=7), row).nano
    return spend


# -- Vercel ------------------------------------------------------------------------------------
def test_vercel_openai_format_priced_as_the_vendor_sells_it(gw, vercel):
    key = gw.app(budget="1/day")
    out = gw.openai(key).chat.completions.create(  # "vercel/": Cloudflare's /compat serves it too
        model="vercel/anthropic/claude-sonnet-4.5", messages=[{"role": "user", "content": "hi"}]
    )
    assert out.choices[0].message.content == "Hello from the gateway."
    assert out.usage is not None and out.usage.prompt_tokens == 21
    (seen,) = vercel.seen
    assert seen.path == "/v1/chat/completions" and seen.status == 200
    assert seen.headers["Authorization"] == f"Bearer {VERCEL_KEY}"
    assert seen.body["model"] == "anthropic/claude-sonnet-4.5"  # as the gateway expects it
    spend = _check_billed(gw, "anthropic", "claude-sonnet-4-5", "anthropic/claude-sonnet-4.5")
    assert spend["amount_nano"] == SONNET_NANO
    assert spend["provider"] == "vercel"


def test_vercel_openai_stream_metered_from_the_usage_chunk(gw, vercel):
    key = gw.app(budget="1/day")
    stream = gw.openai(key).chat.completions.create(
        model="vercel/openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the gateway."
    assert all(c.usage is None for c in chunks)  # the injected usage chunk is stripped
    (seen,) = vercel.seen
    assert seen.body["stream_options"] == {"include_usage": True}
    _check_billed(gw, "openai", "gpt-4o-mini", "openai/gpt-4o-mini", "injected")


@pytest.mark.parametrize("stream", [False, True])
def test_vercel_anthropic_format(gw, vercel, stream):
    key = gw.app(budget="1/day")
    client = gw.anthropic(key)
    args = dict(model="anthropic/claude-sonnet-4.5", max_tokens=100,
                messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    if stream:
        with client.messages.stream(**args) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        assert final.usage.output_tokens == 7
    else:
        msg = client.messages.create(**args)
        text = msg.content[0].text
    assert text == "Hello from the gateway."
    (seen,) = vercel.seen
    assert seen.path == "/v1/messages"
    assert seen.headers["Authorization"] == f"Bearer {VERCEL_KEY}"
    assert "x-api-key" not in seen.headers
    spend = _check_billed(gw, "anthropic", "claude-sonnet-4-5", "anthropic/claude-sonnet-4.5")
    assert spend["amount_nano"] == SONNET_NANO


def test_vercel_model_only_openrouter_prices(gw, vercel):
    """``meta/...``: no vendor row in the catalog, so OpenRouter's ``meta-llama/...`` row."""
    key = gw.app(budget="1/day")
    gw.openai(key).chat.completions.create(
        model="vercel/meta/llama-3.3-70b-instruct", messages=[{"role": "user", "content": "hi"}]
    )
    assert vercel.seen[0].body["model"] == "meta/llama-3.3-70b-instruct"
    _check_billed(gw, "openrouter", "meta-llama/llama-3.3-70b-instruct",
                  "meta/llama-3.3-70b-instruct")  # fmt: skip


def test_unpriced_vendor_model_is_refused_before_any_upstream_call(gw, vercel, cloudflare):
    key = gw.app(budget="1/day")
    with pytest.raises(openai.NotFoundError) as err:
        gw.openai(key).chat.completions.create(
            model="workers-ai/@cf/meta/llama-3.1-8b-instruct",
            messages=[{"role": "user", "content": "hi"}],
        )
    assert err.value.code == "unknown_model"
    assert vercel.seen == [] and cloudflare.seen == []


def test_grant_scopes_apply_to_vendor_ids(gw, vercel):
    key = gw.app(budget="1/day", models=["openai/*"])
    with pytest.raises(openai.PermissionDeniedError) as err:
        gw.openai(key).chat.completions.create(
            model="vercel/anthropic/claude-sonnet-4.5",
            messages=[{"role": "user", "content": "hi"}],
        )
    assert err.value.code == "model_not_allowed"
    assert vercel.seen == []
    gw.openai(key).chat.completions.create(  # the vendor's id matches "openai/*"
        model="vercel/openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert [s.status for s in vercel.seen] == [200]


def test_unprefixed_vendor_id_goes_to_the_first_gateway_by_name(gw, vercel, cloudflare):
    key = gw.app(budget="1/day")
    gw.openai(key).chat.completions.create(
        model="anthropic/claude-sonnet-4.5", messages=[{"role": "user", "content": "hi"}]
    )
    assert vercel.seen == [] and [s.status for s in cloudflare.seen] == [200]
    assert _spend(gw)["provider"] == "cf"


# -- Cloudflare --------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_cloudflare_compat_sends_key_and_gateway_token(gw, cloudflare, stream):
    key = gw.app(budget="1/day")
    client = gw.openai(key)
    model = "cf/google-ai-studio/gemini-2.5-flash"  # the provider's name picks Cloudflare
    if stream:
        chunks = list(client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        ))  # fmt: skip
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        out = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
        assert out.choices[0].message.content == "Hello from the gateway."
    (seen,) = cloudflare.seen
    assert seen.path == f"/v1/{ACCOUNT}/{GATEWAY}/compat/chat/completions"
    assert seen.status == 200
    assert seen.headers["Authorization"] == f"Bearer {CF_OPENAI_KEY}"
    assert seen.headers["cf-aig-authorization"] == f"Bearer {CF_TOKEN}"
    assert seen.body["model"] == "google-ai-studio/gemini-2.5-flash"
    source = "injected" if stream else "provider"
    _check_billed(gw, "google", "gemini-2.5-flash", "google-ai-studio/gemini-2.5-flash", source)


def test_cloudflare_openai_passthrough(gw, cloudflare):
    key = gw.app(budget="1/day")
    gw.openai(key).chat.completions.create(
        model="cf-openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    (seen,) = cloudflare.seen
    assert seen.path == f"/v1/{ACCOUNT}/{GATEWAY}/openai/chat/completions"
    assert seen.headers["cf-aig-authorization"] == f"Bearer {CF_TOKEN}"
    assert seen.body["model"] == "gpt-4o-mini"
    _check_billed(gw, "openai", "gpt-4o-mini", "gpt-4o-mini")


@pytest.mark.parametrize("stream", [False, True])
def test_cloudflare_anthropic_passthrough(gw, cloudflare, stream):
    key = gw.app(budget="1/day")
    client = gw.anthropic(key)
    args = dict(model="cf-anthropic/claude-sonnet-4-5", max_tokens=100,
                messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    if stream:
        with client.messages.stream(**args) as s:
            assert "".join(s.text_stream) == "Hello from the gateway."
    else:
        assert client.messages.create(**args).content[0].text == "Hello from the gateway."
    (seen,) = cloudflare.seen
    assert seen.path == f"/v1/{ACCOUNT}/{GATEWAY}/anthropic/v1/messages"
    assert seen.headers["x-api-key"] == CF_ANTHROPIC_KEY
    assert seen.headers["anthropic-version"]  # the SDK's, passed through
    assert seen.headers["cf-aig-authorization"] == f"Bearer {CF_TOKEN}"
    spend = _check_billed(gw, "anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5")
    assert spend["amount_nano"] == SONNET_NANO


def test_cloudflare_refusing_the_token_is_an_upstream_error(gw, cloudflare):
    cloudflare.token = "another-token-0123456789"
    key = gw.app(budget="1/day")
    with pytest.raises(openai.APIStatusError) as err:
        gw.openai(key).chat.completions.create(
            model="cf-openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.status_code == 502
    assert cloudflare.seen[0].status == 401
    assert [r for r in gw.ledger_rows() if r["kind"] == "spend"] == []


def test_echoed_gateway_token_is_scrubbed(gw, cloudflare):
    cloudflare.echo_token = True
    key = gw.app(budget="1/day")
    with pytest.raises(openai.BadRequestError) as err:
        gw.openai(key).chat.completions.create(
            model="cf/openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    body = err.value.response.text
    assert cloudflare.seen[0].status == 400
    assert "cf-aig-authorization=" in body and "[redacted]" in body
    assert CF_TOKEN not in body and CF_TOKEN[:16] not in body


def test_stored_keys_gateway_needs_no_provider_key(tmp_path, cloudflare):
    cloudflare.seen.clear()
    cloudflare.token, cloudflare.stored_keys, cloudflare.echo_token = CF_TOKEN, True, False

    def setup(w: Wallet) -> None:
        w.add_provider("cf", kind="cloudflare-openai", api_key=None, base_url=cloudflare.root,
                       account_id=ACCOUNT, gateway_id=GATEWAY, gateway_token=CF_TOKEN)  # fmt: skip

    rig = _rig(tmp_path, setup)
    try:
        key = rig.app(budget="1/day")
        rig.openai(key).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        (seen,) = cloudflare.seen
        assert "Authorization" not in seen.headers
        assert seen.headers["cf-aig-authorization"] == f"Bearer {CF_TOKEN}"
        _check_billed(rig, "openai", "gpt-4o-mini", "gpt-4o-mini")
    finally:
        rig.engine.stop()
        rig.wallet.close()
        cloudflare.stored_keys = False


# -- set-up, providers test, removal ------------------------------------------------------------
def test_cloudflare_ids_are_checked_and_the_url_is_built(gw):
    w = gw.wallet
    info = {p.name: p for p in w.list_providers()}
    assert info["cf"].base_url == f"{gw_root(gw)}/{ACCOUNT}/{GATEWAY}/compat"
    assert info["cf-anthropic"].base_url == f"{gw_root(gw)}/{ACCOUNT}/{GATEWAY}/anthropic"
    assert info["cf"].options == {"account_id": ACCOUNT, "gateway_id": GATEWAY,
                                  "gateway_auth": True}  # fmt: skip
    assert info["cf"].notes == "gateway 012345…/my-gateway_1, token"
    for acct, gwid in [("not-hex", GATEWAY), (ACCOUNT[:-1], GATEWAY), (ACCOUNT, "a/b"),
                       (ACCOUNT, "x?y"), (ACCOUNT, "")]:  # fmt: skip
        with pytest.raises(InvalidInput):
            w.add_provider("cf2", kind="cloudflare", api_key=CF_OPENAI_KEY,
                           account_id=acct, gateway_id=gwid)  # fmt: skip
    with pytest.raises(InvalidInput, match="needs an API key"):
        w.add_provider("cf3", kind="cloudflare", api_key=None, account_id=ACCOUNT,
                       gateway_id=GATEWAY)  # fmt: skip
    with pytest.raises(InvalidInput, match="no gateway token"):
        w.add_provider("v2", kind="vercel", api_key=VERCEL_KEY, gateway_token=CF_TOKEN)
    assert {p.name for p in w.list_providers()} == {"vercel", "vercel-anthropic", "cf",
                                                    "cf-openai", "cf-anthropic"}  # fmt: skip


def gw_root(rig: Rig) -> str:
    return rig.wallet.providers.get("cf").base_url.rsplit("/", 3)[0]


def test_default_root_is_cloudflares(tmp_path):
    w = Wallet.open(DataDir(tmp_path / "w"))
    try:
        info = w.add_provider("cf", kind="cloudflare-openai", api_key=CF_OPENAI_KEY,
                              account_id=ACCOUNT.upper(), gateway_id=GATEWAY)  # fmt: skip
        assert info.base_url == (f"https://gateway.ai.cloudflare.com/v1/{ACCOUNT}/{GATEWAY}/openai")
        assert "token" not in info.notes  # an open gateway
    finally:
        w.close()


def test_providers_test_sends_the_gateway_token(gw, cloudflare):
    for name in ("cf-openai", "cf-anthropic", "cf"):
        result = asyncio.run(gw.wallet.test_provider(name, timeout_s=5))
        assert result.ok, (name, result)
    paths = [(s.path, s.headers.get("cf-aig-authorization")) for s in cloudflare.seen]
    p = f"/v1/{ACCOUNT}/{GATEWAY}"
    bearer = f"Bearer {CF_TOKEN}"
    assert paths == [(f"{p}/openai/models", bearer), (f"{p}/anthropic/v1/models", bearer),
                     (f"{p}/compat/models", bearer)]  # fmt: skip
    cloudflare.token = "another-token-0123456789"
    result = asyncio.run(gw.wallet.test_provider("cf", timeout_s=5))
    assert not result.ok and result.status == 401
    assert "gateway token" in result.message


def test_removing_a_provider_removes_its_gateway_token(gw):
    vault = gw.wallet.vault
    assert vault.get(gateway_secret_name("cf")) is not None
    gw.wallet.remove_provider("cf")
    assert vault.get(gateway_secret_name("cf")) is None
    assert vault.get("provider:cf") is None


# -- the fakes are strict -------------------------------------------------------------------
def test_fakes_refuse_what_the_real_gateways_refuse(vercel, cloudflare):
    cloudflare.token = CF_TOKEN
    chat = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    p = f"{cloudflare.root}/{ACCOUNT}/{GATEWAY}"
    good = {
        "Authorization": f"Bearer {CF_OPENAI_KEY}",
        "cf-aig-authorization": f"Bearer {CF_TOKEN}",
    }
    with httpx.Client() as c:
        assert c.post(f"{p}/compat/chat/completions", json=chat, headers=good).status_code == 200
        no_token = {"Authorization": good["Authorization"]}
        assert (
            c.post(f"{p}/compat/chat/completions", json=chat, headers=no_token).status_code == 401
        )
        bad_key = {**good, "Authorization": "Bearer sk-wrong"}
        assert c.post(f"{p}/compat/chat/completions", json=chat, headers=bad_key).status_code == 401
        assert c.post(f"{p}/compat/v1/chat/completions", json=chat, headers=good).status_code == 404
        other = f"{cloudflare.root}/{'f' * 32}/{GATEWAY}/compat/chat/completions"
        assert c.post(other, json=chat, headers=good).status_code == 404
        bare = {**chat, "model": "gpt-4o-mini"}
        assert c.post(f"{p}/compat/chat/completions", json=bare, headers=good).status_code == 400
        v = {"Authorization": f"Bearer {VERCEL_KEY}"}
        assert c.post(f"{vercel.root}/v1/chat/completions", json=chat, headers=v).status_code == 200
        assert c.post(f"{vercel.root}/v1/chat/completions", json=chat).status_code == 401
        assert c.post(f"{vercel.root}/chat/completions", json=chat, headers=v).status_code == 404
        assert c.post(f"{vercel.root}/v1/chat/completions", json=bare, headers=v).status_code == 400


# -- the command line ------------------------------------------------------------------------
def test_cli_adds_a_cloudflare_gateway(gw, cloudflare, capsys, monkeypatch):
    monkeypatch.setenv("CF_KEY", CF_OPENAI_KEY)
    monkeypatch.setenv("CF_TOKEN", CF_TOKEN)
    code, out, err = cli(
        capsys, gw, "providers", "add", "work", "--kind", "cloudflare-openai",
        "--account-id", ACCOUNT, "--gateway-id", GATEWAY, "--base-url", cloudflare.root,
        "--api-key-env", "CF_KEY", "--gateway-token-env", "CF_TOKEN", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert f'"base_url": "{cloudflare.root}/{ACCOUNT}/{GATEWAY}/openai"' in out
    assert CF_TOKEN not in out and CF_OPENAI_KEY not in out
    assert gw.wallet.vault.get(gateway_secret_name("work")).reveal() == CF_TOKEN
    code, out, _ = cli(capsys, gw, "providers", "test", "work")
    assert code == 0, out
    assert cloudflare.seen[-1].headers["cf-aig-authorization"] == f"Bearer {CF_TOKEN}"
    code, out, _ = cli(capsys, gw, "providers", "list")
    assert "gateway 012345…/my-gateway_1, token" in out and CF_TOKEN not in out
    code, _, _ = cli(capsys, gw, "providers", "remove", "work")
    assert code == 0 and gw.wallet.vault.get(gateway_secret_name("work")) is None


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--account-id", "nothex", "--gateway-id", GATEWAY], "is not a Cloudflare account id"),
        (["--account-id", ACCOUNT, "--gateway-id", "a/b"], "is not an AI Gateway id"),
        (["--gateway-id", GATEWAY], "needs --account-id and --gateway-id"),
        (["--account-id", ACCOUNT, "--gateway-id", GATEWAY, "--no-key"], "--no-key is for"),
    ],
)
def test_cli_refuses_bad_cloudflare_setups(gw, capsys, monkeypatch, args, says):
    monkeypatch.setenv("CF_KEY", CF_OPENAI_KEY)
    code, _, err = cli(capsys, gw, "providers", "add", "bad", "--kind", "cloudflare",
                       "--api-key-env", "CF_KEY", *args)  # fmt: skip
    assert code == 1 and says in err
    assert gw.wallet.providers.find("bad") is None


def test_cli_no_key_with_a_gateway_token(gw, capsys, monkeypatch):
    monkeypatch.setenv("CF_TOKEN", CF_TOKEN)
    code, _out, err = cli(
        capsys, gw, "providers", "add", "byok", "--kind", "cloudflare-anthropic",
        "--account-id", ACCOUNT, "--gateway-id", GATEWAY, "--no-key",
        "--gateway-token-env", "CF_TOKEN",
    )  # fmt: skip
    assert code == 0, err
    record = gw.wallet.providers.get("byok")
    assert record.secret_ref is None and record.options["gateway_auth"] is True
    code, _, err = cli(capsys, gw, "providers", "add", "v9", "--kind", "vercel", "--no-key")
    assert code == 1 and "--no-key is for" in err
