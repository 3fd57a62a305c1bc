"""Ask before an expensive request: a request whose worst case is over the app's (or else
the wallet's) threshold is held and prompted with its cost; nothing is reserved while the
user decides; approving serves that one request, denying refuses it."""

import asyncio
import contextlib
import json
import threading

import anthropic
import pytest

from aiwallet.domain.money import usd_string
from engine.conftest import cli, make_rig
from engine.test_consent import pending, wait_pending
from fakeupstream import Script
from waiting import wait_until

MSGS = [{"role": "user", "content": "write me a long essay"}]
SONNET = "claude-sonnet-4-5"  # $15 per 1M output tokens: 20,000 of them are $0.30


@pytest.fixture
def patient(tmp_path, fake):
    """An engine whose prompts wait long enough for a test to answer them."""
    fake.reset()
    rig = make_rig(tmp_path / "patient", fake, consent_timeout_s=20)
    yield rig
    rig.engine.stop()
    rig.wallet.close()


class Background:
    """One SDK call on its own thread: its answer, or the API error it raised."""

    def __init__(self, client: anthropic.Anthropic, max_tokens: int) -> None:
        self.result: object = None
        self.error: anthropic.APIStatusError | None = None
        self.thread = threading.Thread(target=self._run, args=(client, max_tokens))
        self.thread.start()

    def _run(self, client: anthropic.Anthropic, max_tokens: int) -> None:
        try:
            self.result = client.messages.with_raw_response.create(
                model=SONNET, max_tokens=max_tokens, messages=MSGS
            )
        except anthropic.APIStatusError as exc:
            self.error = exc

    def join(self) -> None:
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_over_the_app_threshold_is_held_with_its_cost_and_approved_once(capsys, patient):
    key = patient.app("essays", budget="0.2/day")
    code, out, err = cli(capsys, patient, "apps", "ask-over", "essays", "0.10")
    assert code == 0, err
    assert "over $0.10" in out
    client = patient.anthropic(key)

    call = Background(client, 20000)
    [req] = wait_pending(capsys, patient)
    assert req["kind"] == "expensive" and req["app_name"] == "essays"
    held = req["held_request"]
    assert held["model"] == SONNET and held["max_output_tokens"] == 20000
    assert held["threshold_usd"] == "0.100000000" and held["threshold_of"] == "app"
    worst = int(held["worst_case_usd"].replace(".", ""))  # exact nano-dollars
    assert 300_000_000 < worst < 301_000_000  # 20,000 x $15/1M, and the prompt
    # nothing is reserved, nothing went upstream, while the user decides
    assert patient.wallet.budgets.open_reservations() == []
    assert patient.fake.served == []

    code, _, err = cli(capsys, patient, "consent", "approve", req["id"])
    assert code == 0, err
    call.join()
    assert call.error is None, call.error
    # approved, then the budget was checked: $0.20 cannot pay $0.30, so it went out clamped
    clamped = int(call.result.headers["x-aiwallet-max-tokens-clamped"])
    assert 16 <= clamped < 20000
    assert [s.request_json["max_tokens"] for s in patient.fake.served] == [clamped]
    # the approval was for that one request: the next one is asked about again
    again = Background(client, 20000)
    [req2] = wait_pending(capsys, patient)
    assert req2["id"] != req["id"]
    cli(capsys, patient, "consent", "deny", req2["id"])
    again.join()
    assert again.error is not None and again.error.status_code == 403
    body = again.error.body["error"]
    assert body["code"] == "expensive_request_denied"
    assert (
        "did not approve" in body["message"] and "ask-before threshold of $0.10" in body["message"]
    )
    assert len(patient.fake.served) == 1
    assert patient.wallet.apps.get("essays").ask_over_nano == 100_000_000
    # no app was created by the approval, and no rule remembered by either answer
    assert [a.name for a in patient.wallet.apps.list()] == ["essays"]
    assert json.loads(cli(capsys, patient, "consent", "list", "--json")[1]) == []


def test_under_the_threshold_is_not_held(capsys, rig):
    key = rig.app("small", budget="2/day")
    cli(capsys, rig, "apps", "ask-over", "small", "0.10")
    raw = rig.anthropic(key).messages.with_raw_response.create(
        model=SONNET, max_tokens=1000, messages=MSGS
    )  # $0.015 and a little prompt
    assert raw.http_response.status_code == 200
    assert pending(capsys, rig) == [] and len(rig.fake.served) == 1


def test_the_wallet_threshold_and_an_app_that_sets_its_own(capsys, rig):
    # rig's prompts time out after 0.3 s: unanswered is refused like a denial
    plain, trusted = rig.app("plain", budget="2/day"), rig.app("trusted", budget="2/day")
    code, out, err = cli(capsys, rig, "prefs", "set", "ask_over_usd", "0.05")
    assert code == 0, err
    assert out.strip() == "ask_over_usd = '0.050000000'"
    wait_until(lambda: rig.engine.state.ask_over_nano == 50_000_000, what="the engine read it")
    cli(capsys, rig, "apps", "ask-over", "trusted", "1.00")  # its own threshold wins
    with pytest.raises(anthropic.APIStatusError) as err_info:
        rig.anthropic(plain).messages.create(model=SONNET, max_tokens=20000, messages=MSGS)
    assert err_info.value.status_code == 403
    body = err_info.value.body["error"]
    assert body["code"] == "expensive_request_denied"
    assert "the wallet's ask-before threshold of $0.05" in body["message"]
    assert rig.fake.served == [] and rig.wallet.budgets.open_reservations() == []
    ok = rig.anthropic(trusted).messages.with_raw_response.create(
        model=SONNET, max_tokens=20000, messages=MSGS
    )
    assert ok.http_response.status_code == 200 and len(rig.fake.served) == 1
    # 'off' turns the wallet's threshold off again
    code, out, err = cli(capsys, rig, "prefs", "set", "ask_over_usd", "off")
    assert code == 0, err
    assert out.strip() == "ask_over_usd = None"
    wait_until(lambda: rig.engine.state.ask_over_nano is None, what="the engine read it")
    served = rig.anthropic(plain).messages.with_raw_response.create(
        model=SONNET, max_tokens=20000, messages=MSGS
    )
    assert served.http_response.status_code == 200


def test_the_prompt_cost_is_the_reservation(capsys, patient):
    """The worst case the prompt shows is exactly what is then reserved."""
    key = patient.app("exact", budget="5/day")
    cli(capsys, patient, "apps", "ask-over", "exact", "0.01")
    call = Background(patient.anthropic(key), 20000)
    [req] = wait_pending(capsys, patient)
    patient.fake.script(Script(gate="exact"))  # keep it in flight to read its reservation
    cli(capsys, patient, "consent", "approve", req["id"])
    [res] = wait_until(
        patient.wallet.budgets.open_reservations, what="the approved request's reservation"
    )
    assert usd_string(res.amount_nano) == req["held_request"]["worst_case_usd"]
    patient.fake.open_gate("exact")
    call.join()
    assert call.error is None
    assert patient.wallet.budgets.open_reservations() == []


def test_a_client_that_leaves_withdraws_its_prompt(capsys, patient):
    key = patient.app("impatient", budget="5/day")
    cli(capsys, patient, "apps", "ask-over", "impatient", "0.10")
    client = patient.async_anthropic(key)

    async def main() -> None:
        call = asyncio.ensure_future(
            client.messages.create(model=SONNET, max_tokens=20000, messages=MSGS)
        )
        await asyncio.to_thread(wait_pending, capsys, patient)
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call

    asyncio.run(main())
    wait_until(lambda: pending(capsys, patient) == [], what="the prompt withdrawn")
    assert patient.fake.served == [] and patient.wallet.budgets.open_reservations() == []
