"""Where the provider reports a request's cost (OpenRouter's ``usage.cost``), the ledger bills
exactly that, plain and streamed, with the catalog's figure beside it; a difference over 1 %
is flagged in the request log. OpenRouter's own model list prices its models."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import openai
import pytest

from aiwallet.cli import main
from aiwallet.domain.errors import CatalogError
from engine.conftest import make_rig
from orkit.server import INFERENCE_KEY, FakeOpenRouter

MODEL = "openrouter/openai/gpt-4o-mini"


@pytest.fixture
def orfake():
    f = FakeOpenRouter()
    f.start_in_thread()
    yield f
    f.stop()


@pytest.fixture
def orig(tmp_path, fake, orfake):
    fake.reset()
    r = make_rig(tmp_path, fake)
    r.wallet.add_provider(
        "openrouter", kind="openrouter", api_key=INFERENCE_KEY, base_url=orfake.base_url
    )
    yield r
    r.engine.stop()
    r.wallet.close()


def nano(cost: Decimal) -> int:
    return int(cost.scaleb(9).to_integral_value(rounding=ROUND_CEILING))


def messages(text: str = "what is the cost of this") -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("stream", [False, True])
def test_the_reported_cost_is_billed_exactly(orig, orfake, stream):
    orfake.markup = Decimal("1.003")  # within 1 % of the list: billed as reported, no flag
    client = orig.openai(orig.app())
    if stream:
        chunks = list(
            client.chat.completions.create(
                model=MODEL, messages=messages(), max_tokens=40, stream=True
            )
        )
        # the usage chunk the wallet asked for is not relayed to a client that did not
        assert all(c.usage is None for c in chunks)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        reply = client.chat.completions.create(model=MODEL, messages=messages(), max_tokens=40)
        assert reply.usage is not None and reply.usage.completion_tokens == 12
    served = orfake.served[-1]
    (row,) = orig.ledger_rows()
    assert row["amount_nano"] == nano(served.cost)
    assert row["token_source"] == "provider_cost"
    assert row["catalog_cost_nano"] is not None and row["catalog_cost_nano"] != row["amount_nano"]
    (req,) = orig.requests()
    assert req["cost_nano"] == row["amount_nano"] and req["cost_differs"] is False
    assert req["catalog_cost_nano"] == row["catalog_cost_nano"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_bill_over_one_percent_off_the_catalog_is_flagged(orig, orfake, stream, capsys):
    orfake.markup = Decimal("1.05")
    client = orig.openai(orig.app())
    if stream:
        with client.chat.completions.create(
            model=MODEL, messages=messages(), max_tokens=40, stream=True,
            stream_options={"include_usage": True},
        ) as events:  # fmt: skip
            chunks = list(events)
        # a client that asked for usage gets OpenRouter's own, cost included
        assert chunks[-1].usage is not None
        assert Decimal(str(chunks[-1].usage.model_extra["cost"])) == orfake.served[-1].cost
    else:
        client.chat.completions.create(model=MODEL, messages=messages(), max_tokens=40)
    served = orfake.served[-1]
    (row,) = orig.ledger_rows()
    assert row["amount_nano"] == nano(served.cost)
    catalog = row["catalog_cost_nano"]
    assert abs(row["amount_nano"] - catalog) * 100 > catalog
    assert "the catalog's price is" in row["note"]
    (req,) = orig.requests()
    assert req["cost_differs"] is True
    main(["--data-dir", str(orig.data_dir.root), "requests"])
    assert "(catalog $" in capsys.readouterr().out


def test_openrouters_own_list_prices_its_models(orig, orfake):
    """Refreshed from GET /api/v1/models (prices per token as strings): the engine then
    prices OpenRouter's models by it, and a model only OpenRouter's list has is served."""
    client = orig.openai(orig.app())
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(
            model="openrouter/aiwallet-test/listed-only", messages=messages()
        )
    assert unknown.value.body["code"] == "unknown_model"
    assert "aiwallet catalog openrouter" in unknown.value.body["message"]
    result = orig.wallet.refresh_openrouter_prices()
    assert result.models == 3 and result.provider == "openrouter"
    reply = client.chat.completions.create(
        model="openrouter/aiwallet-test/listed-only", messages=messages(), max_tokens=9
    )
    assert reply.choices
    row = orig.ledger_rows()[-1]
    assert row["price_row_ref"].startswith("openrouter-api:openrouter/aiwallet-test/")
    assert row["price_row"]["input"] == 130_000_000  # $0.00000013 per token = $0.13 per 1M
    assert row["amount_nano"] == row["catalog_cost_nano"]  # the list and the bill agree


def test_a_broken_list_changes_nothing(orig, orfake):
    orig.wallet.refresh_openrouter_prices()
    before = orig.data_dir.openrouter_models.read_bytes()
    orfake.models_answer = {"data": "not a list"}
    with pytest.raises(CatalogError, match="no 'data' array"):
        orig.wallet.refresh_openrouter_prices()
    orfake.models_answer = {
        "data": [{"id": "x/y", "pricing": {"prompt": "-1", "completion": "-1"}}]
    }
    with pytest.raises(CatalogError, match="priced no model"):
        orig.wallet.refresh_openrouter_prices()
    assert orig.data_dir.openrouter_models.read_bytes() == before


def test_a_server_that_is_not_trusted_to_bill_is_priced_by_the_catalog(orig, orfake):
    """Only kinds whose cost report is their bill (OpenRouter, a prepaid x402 router) are
    billed by it: any OpenAI-compatible server may write ``usage.cost``, even $0."""
    orig.wallet.add_provider(
        "lookalike", kind="openai-compatible", api_key=INFERENCE_KEY, base_url=orfake.base_url
    )
    orfake.markup = Decimal("0.01")  # it claims 1 % of the list price
    client = orig.openai(orig.app())
    client.chat.completions.create(
        model="lookalike/openai/gpt-4o-mini", messages=messages(), max_tokens=40
    )
    (row,) = orig.ledger_rows()
    assert row["token_source"] == "provider" and row["catalog_cost_nano"] is None
    assert row["amount_nano"] > nano(orfake.served[-1].cost) * 50
