"""``aiwallet prefs``: read and set the wallet's typed preferences (preferences.py)."""

from __future__ import annotations

import json
from typing import Any

import click

from aiwallet.cli_commands.common import Context, emit_json, json_option, pass_state
from aiwallet.domain.errors import InvalidInput
from aiwallet.preferences import ALL, Pref

group = click.Group("prefs", help="Show or set the wallet's preferences.")


def _by_key(key: str) -> Pref[Any]:
    for pref in ALL:
        if pref.key == key:
            return pref
    known = ", ".join(p.key for p in ALL)
    raise InvalidInput(f"no preference {key!r}; the preferences are: {known}")


def _value(pref: Pref[Any], text: str) -> Any:
    """Typed text: 'off'/'none' clears a preference that may be empty; numbers, true/false
    and lists are read as JSON; anything else is kept as text (a dollar amount)."""
    if text.strip().lower() in {"off", "none"} and pref.default is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return str(value) if isinstance(pref.default, str) or pref.default is None else value


@group.command("show")
@json_option
@pass_state
def show(state: Context, as_json: bool) -> None:
    """Print every preference and its value."""
    values = {p.key: state.wallet.pref(p) for p in ALL}
    if as_json:
        emit_json(values)
        return
    for pref in ALL:
        click.echo(f"{pref.key} = {values[pref.key]!r}  ({pref.label})")


@group.command("set")
@click.argument("key")
@click.argument("value")
@pass_state
def set_pref(state: Context, key: str, value: str) -> None:
    """Set preference KEY to VALUE (e.g. 'aiwallet prefs set ask_over_usd 0.50';
    'off' clears ask_over_usd)."""
    pref = _by_key(key)
    checked = state.wallet.set_pref(pref, _value(pref, value))
    click.echo(f"{pref.key} = {checked!r}")
