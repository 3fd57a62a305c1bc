"""Provider balances: OpenRouter's key endpoint read exactly (dollars as decimals, cut to
nano-dollars), other kinds not asked; faults say what happened without the body."""

from __future__ import annotations

import asyncio

from aiwallet.domain.providers import provider_kind
from aiwallet.upstreams.balance import provider_balance
from fakeupstream import OPENAI_KEY


def _balance(fake, key=OPENAI_KEY, kind="openrouter"):
    return asyncio.run(
        provider_balance("router", provider_kind(kind), fake.base_url + "/v1", key, timeout_s=5)
    )


def test_openrouter_limit_usage_and_remaining_are_exact(fake):
    b = _balance(fake)
    assert b.remaining_nano == 37_654_321_098  # 37.6543210988 cut (not rounded) to nano
    assert b.limit_nano == 50_000_000_000
    assert b.used_nano == 12_345_678_901
    assert b.problem is None


def test_a_key_without_limit_reports_usage_only(fake):
    saved = dict(fake.key_info)
    fake.key_info.update(limit=None, limit_remaining=None)
    try:
        b = _balance(fake)
    finally:
        fake.key_info.clear()
        fake.key_info.update(saved)
    assert b.remaining_nano is None and b.limit_nano is None
    assert b.used_nano == 12_345_678_901


def test_a_refused_key_is_a_problem_not_an_error(fake):
    b = _balance(fake, key="sk-wrong")
    assert b.problem == "the provider answered HTTP 401"
    assert b.remaining_nano is None


def test_kinds_without_a_published_balance_are_not_asked(fake):
    before = len(fake.served)
    assert _balance(fake, kind="openai") is None
    assert _balance(fake, kind="anthropic") is None
    assert len(fake.served) == before


def test_an_unreachable_provider_is_named():
    b = asyncio.run(
        provider_balance(
            "router", provider_kind("openrouter"), "http://127.0.0.1:9/v1", "k", timeout_s=2
        )
    )
    assert b.problem.startswith("cannot reach http://127.0.0.1:9/v1")
