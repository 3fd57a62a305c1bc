"""The leak scan (tests/leakscan.py) really finds keys, reports them safely, and fails runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import leakscan
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY

TESTS = Path(__file__).resolve().parent


def planted_key() -> str:
    # built, never written as one literal: the source scan must not pick it up as a real key
    return "sk-" + "planted-" + uuid.uuid4().hex


def test_scanner_finds_planted_keys_at_their_offsets_and_skips_the_os_keyring(
    tmp_path, monkeypatch
):
    key = planted_key()
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "wallet.sqlite3-wal").write_bytes(b"\x00" * 100 + key.encode())
    (tmp_path / "clean.log").write_text("nothing to see " * 100)
    keyring = tmp_path / "os-keyring" / "keyring.json"
    keyring.parent.mkdir()
    keyring.write_text(json.dumps({"aiwallet/w\0provider:openai": key}))
    # a key straddling a chunk boundary, and twice in one file
    monkeypatch.setattr(leakscan, "CHUNK", 64)
    (tmp_path / "big.bin").write_bytes(b"x" * 50 + key.encode() + b"y" * 200 + key.encode())

    hits = leakscan.scan_paths([tmp_path], [key, OPENAI_KEY])
    found = sorted((Path(h.where).name, h.offset) for h in hits)
    assert found == [("big.bin", 50), ("big.bin", 250 + len(key)), ("wallet.sqlite3-wal", 100)]
    assert all(h.key == key for h in hits)
    assert key not in str(hits[0]) and "at byte" in str(hits[0])  # reported by hint only
    # the keyring stand-in is the only exclusion, and only under its own name
    assert leakscan.is_excluded(keyring)
    assert not leakscan.is_excluded(tmp_path / "keyring.json")


def test_the_key_list_holds_every_configured_provider_key():
    keys = leakscan.provider_keys()
    assert {OPENAI_KEY, ANTHROPIC_KEY} <= keys
    from test_cli import KEY as CLI_KEY
    from test_key_leak import KEYS as LEAK_KEYS
    from vault.test_vault import KEY as VAULT_KEY

    assert {CLI_KEY, VAULT_KEY, *LEAK_KEYS} <= keys
    assert not keys & leakscan.NOT_PROVIDER_KEYS


def test_the_shared_fake_upstream_is_teed(fake):
    """The session's ``fake`` (tests/conftest.py) is the fixture every in-process test talks
    to: what it serves reaches the scan."""
    import httpx

    before = len(leakscan._recorded)
    resp = httpx.get(
        fake.base_url + "/v1/models", headers={"Authorization": f"Bearer {OPENAI_KEY}"}, timeout=5
    )
    assert resp.status_code == 200
    assert len(leakscan._recorded) == before + 1
    assert leakscan._recorded[-1] is fake.served[-1]


INNER_TEST = """
import types

import pytest

import leakscan

KEY = {key!r}


class FakeUpstream:  # stands in for fakeupstream.FakeUpstream: its record gets teed
    def __init__(self):
        self.record = types.SimpleNamespace(add=lambda served: None)


@pytest.fixture
def upstream():
    return FakeUpstream()


def test_writes(tmp_path, upstream):
    leakscan.register_key(KEY)
    answer = ("data: " + (KEY if {leak!r} else "hello") + "\\n\\n").encode()
    upstream.record.add(types.SimpleNamespace(path="/v1/chat/completions", raw_out=answer))
    (tmp_path / "os-keyring").mkdir()
    (tmp_path / "os-keyring" / "keyring.json").write_text(KEY)  # allowed: the OS keyring
    (tmp_path / "audit.log").write_text("prefix " + (KEY if {leak!r} else "no key here"))
"""


def run_inner(tmp_path: Path, leak: bool) -> subprocess.CompletedProcess[str]:
    key = planted_key()
    root = tmp_path / ("leaky" if leak else "clean")
    root.mkdir()
    (root / "test_inner.py").write_text(INNER_TEST.format(key=key, leak=leak))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "leakscan",
            "-p",
            "no:cacheprovider",
            f"--basetemp={root / 'base'}",
            str(root / "test_inner.py"),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(TESTS), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        timeout=120,
    )
    assert key not in proc.stdout + proc.stderr  # never the whole key
    return proc


def test_a_session_that_leaks_a_key_fails_and_names_the_file(tmp_path):
    proc = run_inner(tmp_path, leak=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 passed" in out  # the test itself passed: the session fails on the leak
    assert "audit.log at byte 7: provider key sk-plan" in out
    assert "response /v1/chat/completions #0 at byte 6: provider key sk-plan" in out
    assert "keyring.json" not in out


def test_a_clean_session_passes(tmp_path):
    proc = run_inner(tmp_path, leak=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "leakscan: no provider key" in out and " in 1 files" in out
    assert ", 1 fake upstream records or " in out
