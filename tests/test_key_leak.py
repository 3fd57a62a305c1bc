"""Invariant 1: a stored provider key is nowhere but in the secret store."""

import asyncio
import sqlite3
import subprocess

import pytest
from keyring.backends import fail

from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from aiwallet.vault import open_vault
from pgserver import PgServer

KEYS = ["sk-proj-LEAKCHECK-aaaaaaaaaaaaaaaaaaaa0001", "sk-ant-api03-LEAKCHECK-bbbbbbbbbbbbbbbb0002"]


def _exercise(wallet: Wallet) -> None:
    wallet.add_provider("openai", kind="openai", api_key=KEYS[0], base_url="http://127.0.0.1:9/v1")
    wallet.add_provider("claude", kind="anthropic", api_key=KEYS[1], base_url="http://127.0.0.1:9")
    # the probe sends the key to a dead port: the failure text must not carry it
    result = asyncio.run(wallet.test_provider("openai", timeout_s=2))
    assert not result.ok and KEYS[0] not in result.message
    wallet.add_provider("openai", kind="openai", api_key=KEYS[0] + "-rotated", replace=True)
    wallet.audit.append(
        "test", "probe", "x", {"providers": [p.name for p in wallet.list_providers()]}
    )


def _scan_files(root, needles):
    hits = []
    for f in root.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            hits += [(str(f), n[:12]) for n in needles if n.encode() in data]
    return hits


def _needles():
    return [*KEYS, KEYS[0] + "-rotated", KEYS[0][8:30], KEYS[1][12:34]]  # whole keys and middles


def test_keys_absent_from_data_dir_and_sqlite_dump(tmp_path):
    data_dir = DataDir(tmp_path / "data")
    wallet = Wallet.open(data_dir)
    _exercise(wallet)
    assert wallet.vault.get("provider:openai").reveal() == KEYS[0] + "-rotated"
    wallet.close()
    assert _scan_files(data_dir.root, _needles()) == []
    with sqlite3.connect(data_dir.database) as conn:
        dump = "\n".join(conn.iterdump())
    assert "provider:openai" in dump  # the dump is real: it names the secret's reference
    assert not [n for n in _needles() if n in dump]


def test_keys_absent_from_sealed_vault_fallback(tmp_path):
    data_dir = DataDir(tmp_path / "data")
    wallet = Wallet.open(data_dir, passphrase_provider=lambda: "pass phrase")
    wallet.__dict__["vault"] = open_vault(
        data_dir,
        wallet.wallet_id,
        passphrase_provider=lambda: "pass phrase",
        backend=fail.Keyring(),
    )
    assert wallet.vault_status().is_fallback
    _exercise(wallet)
    wallet.close()
    assert data_dir.sealed_vault.exists()
    assert _scan_files(data_dir.root, _needles()) == []


def test_keys_absent_from_postgres_dump(tmp_path, pg_server, monkeypatch):
    if isinstance(pg_server, str):
        pytest.skip(pg_server)
    assert isinstance(pg_server, PgServer)
    url = pg_server.create_database()
    data_dir = DataDir(tmp_path / "data")
    wallet = Wallet.open(data_dir, url=url)
    _exercise(wallet)
    wallet.close()
    dbname = url.rsplit("/", 1)[1]
    dump = subprocess.run(
        [
            str(pg_server.bindir / "pg_dump"),
            "-h",
            "127.0.0.1",
            "-p",
            str(pg_server.port),
            "-U",
            "aiwallet",
            dbname,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "provider:openai" in dump
    assert not [n for n in _needles() if n in dump]
    assert _scan_files(data_dir.root, _needles()) == []
