"""Pricing a gateway's ``vendor/model`` ids, Cloudflare's URLs and ids, local prices: pure
functions, checked against the bundled catalog where it matters."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiwallet.domain.catalog import Catalog, parse_models_dev
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.gateways import (
    catalog_spellings,
    check_account_id,
    check_gateway_id,
    cloudflare_base_url,
    price_candidates,
    split_vendor_model,
)
from aiwallet.domain.local_servers import (
    local_options,
    local_price,
    local_price_row,
    parse_price_per_m,
)
from aiwallet.engine.routing import Router


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    raw = resources.files("aiwallet.resources").joinpath("models.dev.json").read_bytes()
    return parse_models_dev(raw, source="bundled")


@pytest.fixture(scope="module")
def router(catalog) -> Router:
    return Router([], catalog)


@pytest.mark.parametrize(
    ("gateway_id", "provider", "model"),
    [
        # Anthropic: the gateways' dots are the catalog's dashes
        ("anthropic/claude-sonnet-4.5", "anthropic", "claude-sonnet-4-5"),
        ("anthropic/claude-opus-4.1", "anthropic", "claude-opus-4-1"),
        ("anthropic/claude-haiku-4.5", "anthropic", "claude-haiku-4-5"),
        ("anthropic/claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
        ("anthropic/claude-sonnet-4", "anthropic", "claude-sonnet-4-0"),  # Anthropic's alias
        ("anthropic/claude-3.5-haiku", "anthropic", "claude-3-5-haiku-latest"),
        ("anthropic/claude-sonnet-4-5-20250929", "anthropic", "claude-sonnet-4-5-20250929"),
        # other vendors spell ids as the gateways do
        ("openai/gpt-4.1-mini", "openai", "gpt-4.1-mini"),
        ("google/gemini-2.5-pro", "google", "gemini-2.5-pro"),
        ("google-ai-studio/gemini-2.5-flash", "google", "gemini-2.5-flash"),  # Cloudflare
        ("grok/grok-4.3", "xai", "grok-4.3"),  # Cloudflare
        ("xai/grok-4.3", "xai", "grok-4.3"),  # Vercel
        ("deepseek/deepseek-chat", "deepseek", "deepseek-chat"),
        ("mistral/mistral-large-latest", "mistral", "mistral-large-latest"),
        # no vendor row: OpenRouter's row of the same model
        ("meta/llama-3.3-70b-instruct", "openrouter", "meta-llama/llama-3.3-70b-instruct"),
        ("mistral/mistral-medium-3.1", "openrouter", "mistralai/mistral-medium-3.1"),
        ("anthropic/claude-opus-4.6-fast", "openrouter", "anthropic/claude-opus-4.6-fast"),
        ("moonshotai/kimi-k2-0905", "openrouter", "moonshotai/kimi-k2-0905"),
    ],
)
def test_vendor_ids_priced_by_the_right_row(router, gateway_id, provider, model):
    row = router.vendor_price(gateway_id)
    assert row is not None, gateway_id
    assert (row.provider, row.model) == (provider, model)


@pytest.mark.parametrize(
    "gateway_id",
    [
        "workers-ai/@cf/meta/llama-3.1-8b-instruct",  # Cloudflare-hosted: not in the catalog
        "anthropic/claude-sonnet-9.9",
        "anthropic/claude-sonnet",
        "openai/gpt-4-1-mini",  # dashes are not OpenAI's dots
        "gpt-4o-mini",  # no vendor
        "/gpt-4o-mini",
        "openai/",
    ],
)
def test_unknown_or_vendorless_ids_are_unpriced(router, gateway_id):
    assert router.vendor_price(gateway_id) is None


def test_the_anthropic_aliases_are_the_same_prices(catalog):
    """Where a spelling is an alias (``-0``, ``-latest``), it prices like the dated model."""
    for alias, dated in [("claude-sonnet-4-0", "claude-sonnet-4-20250514"),
                         ("claude-3-5-haiku-latest", "claude-3-5-haiku-20241022")]:  # fmt: skip
        a, d = catalog.get("anthropic", alias), catalog.get("anthropic", dated)
        assert a is not None and d is not None
        assert (a.input, a.output, a.cache_read, a.cache_write) == (
            d.input,
            d.output,
            d.cache_read,
            d.cache_write,
        )


_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.:@", min_size=1, max_size=24)


@given(vendor=_segment.filter(lambda v: "/" not in v), name=_segment)
def test_split_keeps_the_whole_name(vendor, name):
    assert split_vendor_model(f"{vendor}/{name}") == (vendor, name)
    assert split_vendor_model(f"{vendor}/{name}/more") == (vendor, f"{name}/more")


@given(name=_segment)
def test_only_anthropic_names_are_respelled(name):
    for provider in ("openai", "google", "xai", "mistral", "deepseek"):
        assert catalog_spellings(provider, name) == (name,)
    spellings = catalog_spellings("anthropic", name)
    assert spellings[0] == name and len(set(spellings)) == len(spellings)
    for s in spellings[1:]:  # respelled: no version dot left, nothing else changed
        assert not re.search(r"\d\.\d", s)
        assert re.sub(r"(-0|-latest)$", "", s) == re.sub(r"(?<=\d)\.(?=\d)", "-", name)


@given(vendor=st.sampled_from(["openai", "anthropic", "google", "mistral", "grok", "meta"]),
       name=_segment)  # fmt: skip
def test_candidates_try_the_vendor_before_openrouter(vendor, name):
    cands = price_candidates(f"{vendor}/{name}")
    providers = [p for p, _ in cands]
    assert providers[-1] == "openrouter"
    assert "openrouter" not in providers[:-1]
    assert cands[-1][1].endswith(f"/{name}")


def test_cloudflare_urls_and_ids():
    acct = "0123456789abcdef0123456789abcdef"
    assert cloudflare_base_url("cloudflare", acct, "gw") == (
        f"https://gateway.ai.cloudflare.com/v1/{acct}/gw/compat"
    )
    assert cloudflare_base_url("cloudflare-anthropic", acct, "g_1-x", "http://127.0.0.1:9/v1/") == (
        f"http://127.0.0.1:9/v1/{acct}/g_1-x/anthropic"
    )
    assert check_account_id(acct.upper()) == acct
    for bad in ["", acct[:-1], acct + "0", "g" * 32, f"{acct[:16]}/{acct[:15]}"]:
        with pytest.raises(InvalidInput, match="account id"):
            check_account_id(bad)
    for bad in ["", "a/b", "a b", "../x", "a?b", "x" * 65, "gw%2F", "gw\n", "gw\r\n"]:
        with pytest.raises(InvalidInput, match="AI Gateway id"):
            check_gateway_id(bad)
    with pytest.raises(InvalidInput):
        cloudflare_base_url("openai", acct, "gw")


@given(account=st.text(max_size=40), gateway=st.text(max_size=70))
def test_built_urls_never_carry_what_the_checks_refuse(account, gateway):
    try:
        url = cloudflare_base_url("cloudflare-openai", account, gateway)
    except InvalidInput:
        return
    tail = url.removeprefix("https://gateway.ai.cloudflare.com/v1/")
    acct, gw, endpoint = tail.split("/")
    assert len(acct) == 32 and endpoint == "openai"
    assert gw == gateway and all(c.isascii() and (c.isalnum() or c in "-_") for c in gw)


def test_local_prices():
    assert local_price(None) is None and local_price({"price": {"input": 1}}) is None
    assert local_price({"price": {"input": 1, "output": True}}) is None
    assert local_price({"price": {"input": 5, "output": 7}}) == (5, 7)
    row = local_price_row("ollama", "qwen3:8b", None)
    assert (row.input, row.output, row.ref) == (0, 0, "local:ollama/qwen3:8b")
    assert parse_price_per_m("0.15", "--price-input") == 150_000_000
    assert parse_price_per_m("0.0000000001", "x") == 0  # below a nano per 1M: rounds
    for bad in ["abc", "-1", "NaN", "inf", ""]:
        with pytest.raises(InvalidInput):
            parse_price_per_m(bad, "--price-input")
    opts = local_options({"price": {"input": 1, "output": 2}}, budgeted=True)
    assert opts == {"price": {"input": 1, "output": 2}, "budgeted": True}
    assert local_options(opts, price=None, budgeted=False) == {}
