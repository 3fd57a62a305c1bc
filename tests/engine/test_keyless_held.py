"""A keyless call is read, routed and bounded before it is held: its consent request (what
the CLI, the admin API and the desktop prompt see) carries the held request's model, exact
worst case and output bound, the purpose the program declared in ``x-aiwallet-purpose``, and
the models "any model" would cover, by name; approving it reserves exactly that worst case."""

import threading

import openai
import pytest

from aiwallet.domain.money import usd_string
from engine.conftest import cli, make_rig
from engine.test_consent import wait_pending
from fakeupstream import Script
from waiting import wait_until

MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture
def patient(tmp_path, fake):
    fake.reset()
    rig = make_rig(tmp_path / "patient", fake, consent_timeout_s=20)
    yield rig
    rig.engine.stop()
    rig.wallet.close()


def test_the_held_keyless_request_is_in_its_consent_request(capsys, patient):
    client = openai.OpenAI(
        base_url=patient.url + "/v1",
        api_key="nokey",
        max_retries=0,
        default_headers={"x-aiwallet-purpose": "tidy my <i>notes</i>"},
    )
    out: dict[str, object] = {}

    def go() -> None:
        try:
            out["r"] = client.chat.completions.create(
                model="gpt-4o-mini", max_tokens=777, messages=MSGS
            )
        except openai.APIError as exc:
            out["e"] = exc

    thread = threading.Thread(target=go)
    thread.start()
    wait_until(lambda: out or patient.engine.consent.pending(), what="the call held")
    assert not out, out
    [req] = wait_pending(capsys, patient)
    assert req["kind"] == "keyless" and req["purpose"] == "tidy my <i>notes</i>"
    held = req["held_request"]
    assert held["model"] == "gpt-4o-mini" and held["max_output_tokens"] == 777
    assert req["models"] == ["gpt-4o-mini"]  # what was asked, not "*"
    assert "gpt-4o-mini" in req["served_models"]
    assert req["served_count"] == len(req["served_models"])
    assert patient.wallet.budgets.open_reservations() == []  # nothing held while asking
    patient.fake.script(Script(gate="held"))
    code, _, err = cli(capsys, patient, "consent", "approve", req["id"], "--for", "1h")
    assert code == 0, err
    [res] = wait_until(patient.wallet.budgets.open_reservations, what="its reservation")
    assert usd_string(res.amount_nano) == held["worst_case_usd"]
    patient.fake.open_gate("held")
    thread.join(30)
    assert "r" in out, out.get("e")
