"""The vault: OS keyring when secure, a sealed file otherwise; secrets never leak."""

import asyncio
import json
import logging
import stat

import nacl.pwhash
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keyring.backend import KeyringBackend
from keyring.backends import fail

from aiwallet.domain.errors import VaultError
from aiwallet.paths import DataDir
from aiwallet.vault import Secret, key_hint, open_vault
from aiwallet.vault.keyring_store import is_secure
from aiwallet.vault.sealed import SealedFileStore

KEY = "sk-proj-THIS-IS-A-SECRET-0123456789abcdefXYZ"
FAST = {
    "opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN,
    "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN,
}


class PlaintextKeyring(KeyringBackend):
    """Looks like keyrings.alt's plaintext file backend: must never be used."""

    priority = 1

    def get_password(self, service, username):
        return None

    def set_password(self, service, username, password):
        raise AssertionError("plaintext keyring must not be used")

    def delete_password(self, service, username):
        pass


@pytest.fixture
def data_dir(tmp_path):
    return DataDir(tmp_path / "data").ensure()


def test_secure_keyring_is_chosen_and_keeps_secret_out_of_data_dir(data_dir, tmp_path):
    vault = open_vault(data_dir, "w1")
    assert vault.status.kind == "keyring" and not vault.status.is_fallback
    vault.set("provider:openai", KEY)
    assert vault.get("provider:openai").reveal() == KEY
    assert vault.names() == ["provider:openai"]
    for f in data_dir.root.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes()
    # it is in the (test) OS keyring, namespaced by wallet id
    store = json.loads((tmp_path / "os-keyring" / "keyring.json").read_text())
    assert store["aiwallet/w1\0provider:openai"] == KEY
    vault.delete("provider:openai")
    assert vault.get("provider:openai") is None and vault.names() == []


@pytest.mark.parametrize("backend", [PlaintextKeyring(), fail.Keyring()])
def test_insecure_or_missing_keyring_falls_back_to_sealed_file(data_dir, backend):
    assert not is_secure(backend)
    vault = open_vault(data_dir, "w1", passphrase_provider=lambda: "pw", backend=backend)
    assert vault.status.kind == "sealed-file" and vault.status.is_fallback
    assert "passphrase-sealed file" in vault.status.description
    with pytest.raises(VaultError):
        open_vault(data_dir, "w1", backend=backend, prefer="keyring")


def test_sealed_file_round_trip_mode_and_no_plaintext(data_dir):
    store = SealedFileStore(data_dir.sealed_vault, lambda: "correct horse", **FAST)
    store.set("provider:openai", KEY)
    assert stat.S_IMODE(data_dir.sealed_vault.stat().st_mode) == 0o600
    raw = data_dir.sealed_vault.read_bytes()
    assert KEY.encode() not in raw and b"provider:openai" not in raw
    reopened = SealedFileStore(data_dir.sealed_vault, lambda: "correct horse")
    assert reopened.get("provider:openai") == KEY


def test_wrong_passphrase_and_tampering_are_refused(data_dir):
    SealedFileStore(data_dir.sealed_vault, lambda: "right", **FAST).set("k", KEY)
    with pytest.raises(VaultError, match="passphrase is wrong"):
        SealedFileStore(data_dir.sealed_vault, lambda: "wrong").get("k")
    doc = json.loads(data_dir.sealed_vault.read_text())
    box = bytearray(doc["box"].encode())
    box[40] = ord("A") if box[40] != ord("A") else ord("B")
    doc["box"] = box.decode()
    data_dir.sealed_vault.write_text(json.dumps(doc))
    with pytest.raises(VaultError, match="altered"):
        SealedFileStore(data_dir.sealed_vault, lambda: "right").get("k")
    data_dir.sealed_vault.write_text("{broken")
    with pytest.raises(VaultError, match="damaged"):
        SealedFileStore(data_dir.sealed_vault, lambda: "right").get("k")


def test_secret_never_shows_itself(data_dir):
    vault = open_vault(data_dir, "w1")
    vault.set("provider:x", KEY)
    secret = vault.get("provider:x")
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr(vault)):
        assert KEY not in text
    assert repr(secret) == f"Secret({key_hint(KEY)!r})" == "Secret('sk-…fXYZ')"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)


def test_log_file_scrubs_registered_secrets(tmp_path):
    from aiwallet.logsetup import REDACTOR, setup_logging

    setup_logging(tmp_path / "logs")
    REDACTOR.register(KEY)
    log = logging.getLogger("aiwallet.test")
    log.error("a careless message with %s in it", KEY)
    try:
        raise ValueError(f"an exception holding {KEY}")
    except ValueError:
        log.exception("and a traceback")
    for handler in logging.getLogger("aiwallet").handlers:
        handler.flush()
    text = (tmp_path / "logs" / "aiwallet.log").read_text()
    assert "careless message with [redacted]" in text and "holding [redacted]" in text
    assert KEY not in text
    setup_logging(None)


def test_key_hint_reveals_little():
    assert key_hint(KEY) == "sk-…fXYZ"
    assert key_hint("short-key-123") == "…23"
    assert key_hint("tiny") == "…"
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")


def test_async_access_keeps_the_loop_free(data_dir):
    """The KDF runs in a thread: a coroutine keeps ticking while the vault unlocks."""
    store = SealedFileStore(data_dir.sealed_vault, lambda: "pw")  # MODERATE: ~0.5 s of KDF
    store.set("k", KEY)
    from aiwallet.vault.select import Vault

    vault = Vault(SealedFileStore(data_dir.sealed_vault, lambda: "pw"), is_fallback=True)
    ticks = 0

    async def ticker(stop: asyncio.Event):
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(ticker(stop))
        await asyncio.sleep(0)
        before = ticks
        value = await vault.aget("k")
        during = ticks - before
        stop.set()
        await task
        return value, during

    value, during = asyncio.run(main())
    assert value is not None and value.reveal() == KEY
    assert during >= 3  # a blocking KDF on the loop would have allowed at most one tick


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=st.dictionaries(st.text(min_size=1, max_size=40), st.text(max_size=200), max_size=5))
def test_sealed_file_round_trips_any_unicode(tmp_path, entries):
    path = tmp_path / f"v{abs(hash(tuple(entries))) % 10**9}.sealed"
    store = SealedFileStore(path, lambda: "pässwörd ✓", **FAST)
    for name, value in entries.items():
        store.set(name, value)
    again = SealedFileStore(path, lambda: "pässwörd ✓")
    assert {n: again.get(n) for n in again.names()} == entries
