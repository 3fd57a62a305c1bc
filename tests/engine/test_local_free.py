"""Servers on this machine (Ollama kind): any model, metered at $0 and outside every budget;
priced and counted only when the user says so. Real engine, official SDK, a strict fake that
refuses any credential (tests/gatewaykit.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import openai
import pytest

from aiwallet.domain.cost import cost_of
from aiwallet.domain.money import parse_budget_spec
from aiwallet.domain.providers import WireFormat
from aiwallet.domain.usage import Usage
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from aiwallet.upstreams.client import Timeouts
from engine.conftest import Rig, cli
from gatewaykit import LocalFake


@pytest.fixture(scope="module")
def local():
    fake = LocalFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def rig(tmp_path, local):
    local.seen.clear()
    data_dir = DataDir(tmp_path / "wallet")
    wallet = Wallet.open(data_dir)
    wallet.add_provider("ollama", kind="ollama", api_key=None, base_url=local.root + "/v1")
    engine = wallet.new_engine(port=0, timeouts=Timeouts(connect_s=2, read_s=5),
                               consent_timeout_s=0.3)  # fmt: skip
    engine.start()
    r = Rig(wallet, engine, None, data_dir)  # type: ignore[arg-type]
    yield r
    engine.stop()
    wallet.close()


def _counters(rig: Rig, app_name: str) -> list[tuple[int, int]]:
    """(spent, reserved) of every budget that applies to the app, now."""
    budgets = rig.wallet.budgets
    app = rig.wallet.apps.get(app_name)
    now, tz = datetime.now(UTC), rig.wallet.timezone
    out = []
    for b in budgets.applicable(app.id):
        st = budgets.state(b, now, tz)
        out.append((st.spent_nano, st.reserved_nano))
    return out


def _chat(rig: Rig, key: str, *, model: str = "llama3.2:latest", stream: bool = False) -> str:
    client = rig.openai(key)
    msgs = [{"role": "user", "content": "hi"}]
    if stream:
        chunks = client.chat.completions.create(model=model, messages=msgs, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    out = client.chat.completions.create(model=model, messages=msgs)
    return out.choices[0].message.content or ""


@pytest.mark.parametrize("stream", [False, True])
def test_free_call_passes_an_exhausted_budget_and_moves_no_counter(rig, local, stream):
    key = rig.app("script", budget="0/day")
    rig.wallet.set_budget(parse_budget_spec("0/day"))  # the wallet-wide one too
    assert _chat(rig, key, stream=stream) == "Hello from the gateway."
    (seen,) = local.seen
    assert seen.status == 200 and "Authorization" not in seen.headers
    assert seen.body["model"] == "llama3.2:latest"
    (spend,) = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    assert spend["amount_nano"] == 0
    assert spend["price_row_ref"] == "local:ollama/llama3.2:latest"
    assert spend["price_row"]["input"] == 0 and spend["price_row"]["output"] == 0
    (req,) = rig.requests()
    assert (req["input_tokens"], req["output_tokens"], req["status"]) == (21, 7, 200)
    assert req["provider"] == "ollama" and req["cost_nano"] == 0
    assert _counters(rig, "script") == [(0, 0), (0, 0)]


def test_a_model_the_catalog_sells_is_not_taken_by_the_local_server(rig, local):
    key = rig.app("script", budget="1/day")
    with pytest.raises(openai.APIStatusError) as err:
        _chat(rig, key, model="gpt-4o-mini")
    assert err.value.code == "no_provider"
    assert _chat(rig, key, model="ollama/gpt-4o-mini")  # asked by name, it is served
    assert [s.body["model"] for s in local.seen] == ["gpt-4o-mini"]


def test_grant_scopes_still_apply(rig, local):
    key = rig.app("script", budget="1/day", models=["qwen*"])
    with pytest.raises(openai.PermissionDeniedError) as err:
        _chat(rig, key)
    assert err.value.code == "model_not_allowed"
    assert local.seen == []
    assert _chat(rig, key, model="qwen3:8b")


def test_priced_and_budgeted_is_billed_and_counted(rig, local):
    rig.wallet.set_local_pricing("ollama", price=(1_000_000_000, 2_000_000_000), budgeted=True)
    key = rig.app("script", budget="1/day")
    _chat(rig, key)
    (spend,) = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    expected = 21 * 1_000 + 7 * 2_000  # $1 and $2 per 1M tokens
    assert spend["amount_nano"] == expected
    row = spend["price_row"]
    assert (row["input"], row["output"]) == (1_000_000_000, 2_000_000_000)
    assert spend["price_row_ref"] == "local:ollama/llama3.2:latest@in=1000000000,out=2000000000"
    billed = rig.engine.state.router.resolve("llama3.2:latest", WireFormat.OPENAI).row
    assert cost_of(Usage(input_tokens=21, output_tokens=7), billed).nano == expected
    assert _counters(rig, "script") == [(expected, 0)]


def test_budgeted_local_server_is_refused_when_the_budget_is_spent(rig, local):
    rig.wallet.set_local_pricing("ollama", price=(1_000_000_000, 2_000_000_000), budgeted=True)
    key = rig.app("script", budget="0/day")
    with pytest.raises(openai.APIStatusError) as err:
        _chat(rig, key)
    assert err.value.status_code == 402 and err.value.code == "budget_exceeded"
    assert local.seen == []


def test_priced_but_unbudgeted_is_billed_outside_budgets(rig, local):
    rig.wallet.set_local_pricing("ollama", price=(1_000_000_000, 2_000_000_000))
    key = rig.app("script", budget="0/day")
    _chat(rig, key)
    (spend,) = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    assert spend["amount_nano"] == 21 * 1_000 + 7 * 2_000
    assert _counters(rig, "script") == [(0, 0)]


def test_cli_prices_and_frees_a_local_server(rig, local, capsys):
    code, out, err = cli(capsys, rig, "providers", "set", "ollama", "--price-input", "0.15",
                         "--price-output", "0.6", "--budgeted")  # fmt: skip
    assert code == 0, err
    assert "priced, counted in budgets" in out and "$0.15" in out
    opts = rig.wallet.providers.get("ollama").options
    assert opts == {"price": {"input": 150_000_000, "output": 600_000_000}, "budgeted": True}
    code, out, _ = cli(capsys, rig, "providers", "list")
    assert "priced, counted in budgets" in out
    code, out, _ = cli(capsys, rig, "providers", "set", "ollama", "--free", "--unbudgeted")
    assert code == 0 and "free, outside budgets" in out
    assert rig.wallet.providers.get("ollama").options is None
    actions = [e.action for e in rig.wallet.audit.entries()]
    assert actions.count("provider.options") == 2  # each change audited
    # bad input: a clear error, nothing changed
    code, _, err = cli(capsys, rig, "providers", "set", "ollama", "--price-input", "abc",
                       "--price-output", "1")  # fmt: skip
    assert code != 0 and "is not a price" in err
    code, _, err = cli(capsys, rig, "providers", "set", "ollama", "--price-input", "1")
    assert code != 0 and "both --price-input and --price-output" in err


def test_cli_add_with_prices_and_refusals(rig, capsys):
    code, out, err = cli(capsys, rig, "providers", "add", "lms", "--kind", "lmstudio",
                         "--price-input", "1", "--price-output", "2", "--json")  # fmt: skip
    assert code == 0, err
    assert '"notes": "priced, outside budgets"' in out
    code, _, err = cli(capsys, rig, "providers", "set", "lms", "--budgeted")
    assert code == 0
    assert rig.wallet.providers.get("lms").options == {
        "price": {"input": 1_000_000_000, "output": 2_000_000_000},
        "budgeted": True,
    }
    code, _, err = cli(capsys, rig, "providers", "add", "llama", "--kind", "llamacpp",
                       "--price-input", "-1", "--price-output", "2")  # fmt: skip
    assert code != 0 and "not a usable price" in err
