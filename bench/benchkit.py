"""What the bench scripts share: the tests' file keyring and fake upstream in a temp dir, and
starting a process that prints its port (``python -m fakeupstream``, ``aiwallet serve``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_env(tmp: Path) -> dict[str, str]:
    """Child environment (and this process's) with the tests' file keyring under ``tmp``."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}",  # this checkout's code
        "PYTHON_KEYRING_BACKEND": "keyring_backend.TestFileKeyring",
        "AIWALLET_TEST_KEYRING_FILE": str(tmp / "keyring.json"),
    }
    os.environ.update({k: env[k] for k in ("PYTHON_KEYRING_BACKEND", "AIWALLET_TEST_KEYRING_FILE")})
    return env


def serve_args(data_dir: Path) -> list[str]:
    """``aiwallet serve`` on a free loopback port (it prints the port)."""
    return [sys.executable, "-m", "aiwallet", "--data-dir", str(data_dir), "serve", "--port", "0"]


FAKE_ARGS = [sys.executable, "-m", "fakeupstream", "--port", "0"]


def spawn_printing_port(
    args: list[str], env: dict[str, str], log: Path | None = None
) -> tuple[subprocess.Popen[str], int]:
    """Start a process that prints its port as its first stdout line; stderr to ``log``."""
    if log is None:
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
    else:
        with log.open("w") as err:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        proc.kill()
        proc.wait(10)
        raise SystemExit(f"could not start {args}: {line!r}" + (f", see {log}" if log else ""))
    return proc, int(line)
