"""What the ``aiwallet`` subcommands share: the context object, output and secret input.

Output: every value that anyone but the code wrote (an app's name or purpose, a command
line, a path, a model, a provider's message) is printed through ``term`` (the display form
of ``domain.display`` in its terminal mode: ESC, CR/LF, C0/C1, DEL, bidi and zero-width
characters written as visible escapes such as ``\\x1b``), ``emit_table`` (every cell) or
``emit_json`` (the same document, with the characters json leaves raw escaped too)."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from aiwallet.domain.display import display, json_safe
from aiwallet.domain.errors import InvalidInput, VaultError
from aiwallet.domain.sealing import new_seal_problem
from aiwallet.logsetup import setup_logging
from aiwallet.paths import DataDir

if TYPE_CHECKING:
    from aiwallet.service import Wallet

ENV_PASSPHRASE = "AIWALLET_VAULT_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


class Context:
    """What every subcommand shares: the chosen data dir and a lazily opened wallet."""

    def __init__(self, data_dir: DataDir) -> None:
        self.data_dir = data_dir
        self._wallet: Wallet | None = None

    @property
    def wallet(self) -> Wallet:
        """The wallet, opened on first use (creating the data dir and database)."""
        if self._wallet is None:
            from aiwallet.service import Wallet

            self.data_dir.ensure()
            setup_logging(self.data_dir.logs)
            _show_engine_warnings()
            sealed = self.data_dir.sealed_vault
            self._wallet = Wallet.open(
                self.data_dir,
                passphrase_provider=lambda: passphrase_provider(new=not sealed.exists()),
            )
        return self._wallet

    def close(self) -> None:
        if self._wallet is not None:
            self._wallet.close()
            self._wallet = None


class _StderrWarnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"aiwallet: warning: {record.getMessage()}", err=True)


def _show_engine_warnings() -> None:
    """What the engine client warns about (an unverified listener on the engine's address)
    is shown on the terminal as well as logged."""
    logger = logging.getLogger("aiwallet.engine.client")
    if not any(isinstance(h, _StderrWarnings) for h in logger.handlers):
        logger.addHandler(_StderrWarnings(logging.WARNING))


def passphrase_provider(*, new: bool = False) -> str:
    """The sealed-file vault's passphrase: from the environment, else asked at the terminal;
    ``new`` (no sealed file yet): chosen now, typed twice, with what it protects and that it
    cannot be recovered."""
    env = os.environ.get(ENV_PASSPHRASE)
    if env:
        return env
    if not sys.stdin.isatty():
        raise VaultError(
            "no secure OS keyring is available, so keys are kept in a passphrase-sealed file; "
            f"set {ENV_PASSPHRASE} or run this command in a terminal to type the passphrase"
        )
    if not new:
        value: str = click.prompt("Vault passphrase", hide_input=True, err=True)
        return value
    click.echo(
        "No OS keyring was found, so the wallet keeps your provider keys and its receipt-signing "
        "key in a file sealed with a passphrase you choose now. It cannot be recovered: if you "
        "lose it, delete the sealed file and add your provider keys again. Headless runs read it "
        f"from {ENV_PASSPHRASE}.",
        err=True,
    )
    for _ in range(3):
        first: str = click.prompt("Choose a vault passphrase", hide_input=True, err=True)
        again: str = click.prompt("Type it again", hide_input=True, err=True)
        problem = new_seal_problem(first, again)
        if problem is None:
            return first
        click.echo(f"aiwallet: {problem}", err=True)
    raise VaultError("no passphrase was chosen; nothing was sealed")


def term(value: object, limit: int | None = None) -> str:
    """Untrusted text as a terminal may print it: one line, every control or invisible
    character a visible escape (``\\x1b``, ``\\n``, ``\\u202e``), readable back."""
    return display(value, terminal=True, limit=limit)


def emit_json(data: object) -> None:
    dumped = json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    click.echo(json_safe(dumped))


def emit_table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> None:
    """A plain aligned table, every cell in terminal display form (no cell can hold a line
    break or a terminal sequence); an empty listing says so instead of printing only
    headers."""
    if not rows:
        click.echo("(none)")
        return
    rows = [[term(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def parse_since(value: str | None) -> datetime | None:
    """``24h``, ``7d``, ``30m``, ``2w`` (that long before now) or an ISO date (UTC when it
    names no zone); ``None`` or empty for no bound."""
    if not value:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{value!r} is not a time; use 24h, 7d or a date like 2026-11-01"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_secret(api_key_env: str | None, prompt: str) -> str:
    """A key from ``$VAR``, a pipe on stdin, or a hidden prompt; never from an argument."""
    if api_key_env:
        value = os.environ.get(api_key_env, "")
        if not value.strip():
            raise InvalidInput(f"the environment variable {api_key_env} is not set or empty")
        return value.strip()
    if not sys.stdin.isatty():
        value = sys.stdin.read().strip()
        if not value:
            raise InvalidInput("no key on stdin; pipe the key in or use --api-key-env VAR")
        return value
    typed: str = click.prompt(prompt, hide_input=True, err=True)
    if not typed.strip():
        raise InvalidInput("no key typed")
    return typed.strip()


pass_state = click.make_pass_decorator(Context)
