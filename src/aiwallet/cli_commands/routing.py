"""``aiwallet routes`` (named fallback chains), ``aiwallet prompts`` (stored prompt
templates) and ``aiwallet apps downgrade``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from aiwallet.cli_commands.common import (
    Context,
    emit_json,
    emit_table,
    json_option,
    pass_state,
    term,
)


@click.group("routes")
def routes_group() -> None:
    """Named fallback chains: an app calls the route's name; its targets are tried in order."""


@routes_group.command("add")
@click.argument("name")
@click.option("--to", "targets", required=True, help="provider/model targets, comma-separated.")
@click.option("--replace", is_flag=True, help="Change an existing route.")
@json_option
@pass_state
def routes_add(state: Context, name: str, targets: str, replace: bool, as_json: bool) -> None:
    """Add route NAME: `--to anthropic/claude-sonnet-4-5,openai/gpt-4.1`."""
    route = state.wallet.set_route(name, targets, replace=replace)
    if as_json:
        emit_json(route.to_json())
        return
    click.echo(f"Route {term(route.name)}: " + " → ".join(term(t) for t in route.targets))


@routes_group.command("list")
@json_option
@pass_state
def routes_list(state: Context, as_json: bool) -> None:
    """List routes."""
    items = state.wallet.routes.list()
    if as_json:
        emit_json([r.to_json() for r in items])
        return
    emit_table([[r.name, " → ".join(r.targets)] for r in items], ["route", "targets, in order"])


@routes_group.command("remove")
@click.argument("name")
@json_option
@pass_state
def routes_remove(state: Context, name: str, as_json: bool) -> None:
    """Remove route NAME."""
    state.wallet.remove_route(name)
    emit_json({"removed": name}) if as_json else click.echo(f"Removed route {term(name)}.")


@click.group("prompts")
def prompts_group() -> None:
    """Stored prompt templates with {{variables}}, used by name (and version) in a request's
    "aiwallet_template" field; they never hold completions."""


@prompts_group.command("add")
@click.argument("name")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='The template: JSON messages ([{"role", "content"}]) or plain text (else stdin).',
)
@json_option
@pass_state
def prompts_add(state: Context, name: str, path: Path | None, as_json: bool) -> None:
    """Add a new version of template NAME."""
    text = path.read_text(encoding="utf-8") if path else sys.stdin.read()
    record = state.wallet.add_template(name, text)
    if as_json:
        emit_json(record.to_json())
        return
    names = ", ".join(record.variables) or "none"
    click.echo(f"Template {term(record.name)} version {record.version}; variables: {term(names)}.")


@prompts_group.command("list")
@json_option
@pass_state
def prompts_list(state: Context, as_json: bool) -> None:
    """List templates and their versions."""
    items = state.wallet.templates.list()
    if as_json:
        emit_json([t.to_json() for t in items])
        return
    rows = [
        [t.name, str(t.version), ", ".join(t.variables) or "-", str(len(t.messages))] for t in items
    ]
    emit_table(rows, ["template", "version", "variables", "messages"])


@prompts_group.command("show")
@click.argument("name")
@click.option("--version", type=int, help="This version (default: the latest).")
@json_option
@pass_state
def prompts_show(state: Context, name: str, version: int | None, as_json: bool) -> None:
    """Show template NAME."""
    record = state.wallet.templates.get(name, version)
    if as_json:
        emit_json(record.to_json())
        return
    click.echo(f"{term(record.name)} version {record.version}")
    for m in record.messages:
        click.echo(f"[{m['role']}] {term(m['content'])}")


@prompts_group.command("remove")
@click.argument("name")
@click.option("--version", type=int, help="Only this version (default: every version).")
@json_option
@pass_state
def prompts_remove(state: Context, name: str, version: int | None, as_json: bool) -> None:
    """Remove template NAME (or one version of it)."""
    n = state.wallet.templates.remove(name, version)
    emit_json({"removed": name, "versions": n}) if as_json else click.echo(
        f"Removed {n} version{'s' if n != 1 else ''} of {term(name)}."
    )


@click.command("downgrade")
@click.argument("name")
@click.argument("state_", metavar="on|off", type=click.Choice(["on", "off"]))
@pass_state
def downgrade(state: Context, name: str, state_: str) -> None:
    """Budget-aware downgrade for app NAME: when its budget cannot pay for the model it asks,
    serve it with the next cheaper model of one of your routes (said in a response header)."""
    state.wallet.set_app_downgrade(name, state_ == "on")
    click.echo(f"Downgrade for {term(name)} is {state_}.")
