"""Invariant 1 through the engine: provider keys appear in no response, log, DB or audit."""

import contextlib
import sqlite3

import httpx

from aiwallet.logsetup import setup_logging
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY, Script

MSGS = [{"role": "user", "content": "hello"}]


def test_no_provider_key_anywhere_after_traffic_and_faults(rig):
    setup_logging(rig.data_dir.logs)
    try:
        key = rig.app()
        bodies = []
        oa = {"Authorization": f"Bearer {key}"}
        an = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        chat = {"model": "gpt-4o-mini", "messages": MSGS}
        for script in (
            Script(),
            Script(status=500),
            Script(status=429, retry_after=3),
            Script(usage="malformed"),
            Script(cut_after_events=2),
        ):
            rig.fake.script(script)
            with contextlib.suppress(httpx.HTTPError):
                bodies.append(
                    httpx.post(
                        rig.url + "/v1/chat/completions",
                        json={**chat, "stream": script.cut_after_events is not None},
                        headers=oa,
                    )
                )
        rig.fake.script(Script(status=401))  # the provider refuses the wallet's key
        bodies.append(
            httpx.post(
                rig.url + "/v1/messages",
                json={"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": MSGS},
                headers=an,
            )
        )
        assert bodies[-1].json()["error"]["code"] == "upstream_unavailable"
        bodies.append(httpx.get(rig.url + "/v1/models", headers=oa))
        secrets = [OPENAI_KEY.encode(), ANTHROPIC_KEY.encode()]
        for resp in bodies:
            blob = resp.content + repr(resp.headers).encode()
            assert not [s for s in secrets if s in blob]
        logfile = rig.data_dir.logs / "aiwallet.log"
        assert logfile.exists()
        for f in rig.data_dir.root.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                assert not [s for s in secrets if s in data], f
        with sqlite3.connect(rig.data_dir.database) as conn:
            dump = "\n".join(conn.iterdump()).encode()
        assert b'INSERT INTO "ledger"' in dump and not [s for s in secrets if s in dump]
    finally:
        setup_logging(None)
