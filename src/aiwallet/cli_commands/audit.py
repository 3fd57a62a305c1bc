"""``aiwallet audit``: check the tamper-evident audit log."""

from __future__ import annotations

import click

from aiwallet.cli_commands.common import Context, emit_json, json_option, pass_state, term


@click.group("audit")
def group() -> None:
    """The audit log: every change to keys, apps, budgets and settings, hash-chained."""


@group.command("verify")
@json_option
@pass_state
def verify(state: Context, as_json: bool) -> None:
    """Check the hash chain; report the first edited, removed or reordered entry."""
    result = state.wallet.verify_audit()
    if as_json:
        emit_json(result.to_json())
    elif result.ok:
        click.echo(f"audit log intact: {result.checked} entries, chain verified")
    else:
        click.echo(f"audit log BROKEN at entry {result.first_bad_seq}: {term(result.problem)}")
    if not result.ok:
        raise SystemExit(2)
