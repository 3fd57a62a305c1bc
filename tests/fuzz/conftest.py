"""Live engines in front of the fake upstream for the fuzz tests (the engine tests' rig).

``AIWALLET_FUZZ_LONG=1`` multiplies the number of generated cases (see each module)."""

from __future__ import annotations

import os

import pytest

from engine.conftest import make_rig
from fakeupstream import FakeUpstream

LONG = os.environ.get("AIWALLET_FUZZ_LONG", "") not in ("", "0")


def scaled(short: int, long: int) -> int:
    """A case count: ``short`` by default, ``long`` under AIWALLET_FUZZ_LONG=1."""
    return long if LONG else short


@pytest.fixture(scope="session")
def fuzz_fake():
    f = FakeUpstream()
    f.start_in_thread()
    yield f
    f.stop()


@pytest.fixture
def make_engine(tmp_path, fuzz_fake):
    """``make_engine(consent_timeout_s=...)``: a fresh wallet and engine, stopped afterwards."""
    made = []

    def make(**engine_kw):
        fuzz_fake.reset()
        r = make_rig(tmp_path / f"e{len(made)}", fuzz_fake, **engine_kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.engine.stop()
        r.wallet.close()
