"""The command line's first run without an OS keyring: the passphrase is chosen, typed twice,
with what it protects and that it cannot be recovered; a short or mismatched one is refused.
Driven through a real pseudo-terminal (the prompt reads with echo off, as a person types)."""

import os
import pty
import select
import subprocess
import sys
import time

from aiwallet.paths import DataDir
from leakscan import register_key


def _read_until(fd: int, wanted: bytes, seen: bytearray, start: int, deadline: float) -> int:
    """Read until ``wanted`` appears after ``start``; the offset just past it."""
    while (at := seen.find(wanted, start)) == -1:
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {wanted!r}; saw {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"the command ended before {wanted!r}; saw {bytes(seen)!r}"
            seen += chunk
    return at + len(wanted)


def test_first_run_chooses_a_passphrase_twice_and_refuses_short_and_mismatched(tmp_path):
    data_dir = DataDir(tmp_path / "w")
    key = "sk-first-seal-" + "q" * 30
    register_key(key)  # sealed in the file: the leak scan checks no file holds it in clear
    env = {
        **os.environ,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "OPENAI_TEST_KEY": key,
    }
    env.pop("AIWALLET_VAULT_PASSPHRASE", None)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiwallet", "--data-dir", str(data_dir.root), "providers", "add",
         "openai", "--api-key-env", "OPENAI_TEST_KEY"],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + 120
    try:
        answers = [("short", "short"), ("correct horse", "correct horsf"), ("correct horse",) * 2]
        at = 0
        for first, again in answers:
            at = _read_until(master, b"Choose a vault passphrase", seen, at, deadline)
            os.write(master, first.encode() + b"\n")
            at = _read_until(master, b"Type it again", seen, at, deadline)
            os.write(master, again.encode() + b"\n")
        assert proc.wait(timeout=120) == 0, bytes(seen).decode(errors="replace")
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = bytes(seen).decode(errors="replace")
    assert "cannot be recovered" in text and "receipt-signing" in text
    assert "shorter than 8 characters" in text
    assert "the two passphrases differ" in text
    assert "correct horse" not in text  # typed with echo off
    assert data_dir.sealed_vault.exists()
