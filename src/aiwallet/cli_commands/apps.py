"""``aiwallet apps``, ``budget``, ``usage``, ``pause`` / ``resume``: apps and their money."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from aiwallet.cli_commands.common import (
    Context,
    emit_json,
    emit_table,
    json_option,
    parse_since,
    pass_state,
    term,
)
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import BudgetSpec, format_usd, parse_budget_spec, parse_usd, usd_string
from aiwallet.summaries import app_summaries


def _budget_option(value: str | None) -> BudgetSpec | None:
    if value is None or value.lower() in ("none", "unlimited"):
        return None
    return parse_budget_spec(value)


@click.group("apps")
def group() -> None:
    """Apps: local programs that call AI through the wallet with their own key."""


@group.command("add")
@click.argument("name")
@click.option("--budget", "budget", help="e.g. 2/day, 10/week, 40/month, 5 total (default: none)")
@click.option(
    "--models", help="Comma-separated models or patterns: gpt-4o-mini,anthropic/* (default: all)"
)
@click.option("--expires", help="Lifetime of the grant: 1h, 7d, 30d (default: until revoked)")
@json_option
@pass_state
def add(
    state: Context,
    name: str,
    budget: str | None,
    models: str | None,
    expires: str | None,
    as_json: bool,
) -> None:
    """Create app NAME and print its key (shown only this once)."""
    spec = _budget_option(budget)
    expires_at = None
    if expires:
        start = parse_since(expires)
        if start is None:
            raise InvalidInput("--expires needs a lifetime such as 7d")
        expires_at = datetime.now(UTC) + (datetime.now(UTC) - start)
    scopes = models.split(",") if models else None
    app, key = state.wallet.create_app(name, budget=spec, models=scopes, expires_at=expires_at)
    if as_json:
        emit_json(
            {
                "name": app.name,
                "key": key,
                "budget": str(spec) if spec else None,
                "models": scopes or ["*"],
                "expires_at": expires_at,
            }
        )
        return
    click.echo(
        f"Created app {term(app.name)}. Its key (shown only now, keep it secret):\n\n  {key}\n"
    )
    click.echo(f"Budget: {spec.describe() if spec else 'none (only the wallet budget applies)'}")
    click.echo(f"Models: {term(', '.join(scopes or ['all']))}")
    click.echo(
        "Use it:  OPENAI_BASE_URL=http://127.0.0.1:8402/v1  or  ANTHROPIC_BASE_URL=http://127.0.0.1:8402"
    )


def _app_rows(state: Context) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [a.to_json(now) for a in app_summaries(state.wallet, now)]


@group.command("list")
@json_option
@pass_state
def list_(state: Context, as_json: bool) -> None:
    """List apps with their budget, spend in the current window and status."""
    rows = _app_rows(state)
    if as_json:
        emit_json(rows)
        return
    emit_table(
        [
            [
                str(r["name"]),
                str(r["status"]),
                str(r["budget"] or "-"),
                f"{r['spent_usd'] or '-'}",
                f"{r['remaining_usd'] or '-'}",
                str(r["resets"] or "-"),
                ",".join(str(m) for m in r["models"]),  # type: ignore[attr-defined]
            ]
            for r in rows
        ],
        ["name", "status", "budget", "spent", "left", "window", "models"],
    )


@group.command("show")
@click.argument("name")
@json_option
@pass_state
def show(state: Context, name: str, as_json: bool) -> None:
    """Show one app."""
    state.wallet.apps.get(name)
    row = next(r for r in _app_rows(state) if r["name"] == name)
    if as_json:
        emit_json(row)
        return
    for key, value in row.items():
        click.echo(f"{key + ':':16} {term(value) if value is not None else '-'}")


@group.command("receipt")
@click.argument("name")
@pass_state
def receipt(state: Context, name: str) -> None:
    """Print app NAME's signed consent receipt (JSON; check it with 'receipts verify')."""
    app = state.wallet.apps.get(name)
    grant = state.wallet.apps.grant(app.id)
    if grant is None or grant.receipt is None:
        raise InvalidInput(f"app {name!r} has no receipt")
    emit_json(grant.receipt)


@group.command("revoke")
@click.argument("name")
@json_option
@pass_state
def revoke(state: Context, name: str, as_json: bool) -> None:
    """Revoke app NAME: its next request is refused."""
    state.wallet.revoke_app(name)
    emit_json({"revoked": name}) if as_json else click.echo(f"Revoked {term(name)}.")


@group.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_state
def remove(state: Context, name: str, yes: bool, as_json: bool) -> None:
    """Remove app NAME for good: its per-app provider keys are deleted at each provider, then
    the app, its grant and budget. What it spent stays in the ledger."""
    if not yes and not as_json:
        click.confirm(f"Remove app {term(name)} for good?", abort=True, err=True)
    state.wallet.provider_keys.remove_app(name)
    emit_json({"removed": name}) if as_json else click.echo(f"Removed {term(name)}.")


@group.command("limits")
@click.argument("name")
@click.option("--rpm", type=int, help="Requests per minute (omit for no limit).")
@click.option("--tpm", type=int, help="Tokens per minute (omit for no limit).")
@click.option("--concurrency", type=int, help="Requests in flight at once (omit for no limit).")
@pass_state
def limits(
    state: Context, name: str, rpm: int | None, tpm: int | None, concurrency: int | None
) -> None:
    """Set app NAME's rate limits (refused requests get 429 with Retry-After)."""
    app = state.wallet.set_app_limits(name, rpm=rpm, tpm=tpm, concurrency=concurrency)
    click.echo(
        f"Limits of {term(app.name)}: {app.rpm_limit or 'no'} requests/min, "
        f"{app.tpm_limit or 'no'} tokens/min, {app.concurrency_limit or 'no'} at once."
    )


@group.command("ask-over")
@click.argument("name")
@click.argument("amount")
@pass_state
def ask_over(state: Context, name: str, amount: str) -> None:
    """Ask before serving any single request of app NAME whose worst case is over AMOUNT
    dollars (e.g. 0.50); 'off' leaves only the wallet-wide threshold ('aiwallet prefs set
    ask_over_usd 1.00')."""
    nano = None if amount.strip().lower() in {"off", "none", ""} else parse_usd(amount)
    app = state.wallet.set_app_ask_over(name, nano)
    if app.ask_over_nano is None:
        click.echo(f"{term(app.name)}: no threshold of its own (the wallet's applies).")
    else:
        click.echo(
            f"{term(app.name)}: the wallet asks you before any single request whose worst "
            f"case is over {format_usd(app.ask_over_nano, places=None)}."
        )


@group.command("pause")
@click.argument("name")
@pass_state
def pause_app(state: Context, name: str) -> None:
    """Pause one app (its requests are refused until resumed)."""
    state.wallet.set_app_paused(name, True)
    click.echo(f"Paused {term(name)}.")


@group.command("resume")
@click.argument("name")
@pass_state
def resume_app(state: Context, name: str) -> None:
    """Resume a paused app."""
    state.wallet.set_app_paused(name, False)
    click.echo(f"Resumed {term(name)}.")


@click.group("budget")
def budget_group() -> None:
    """Budgets: per app, and one for the whole wallet."""


@budget_group.command("set")
@click.argument("target")
@click.argument("spec")
@pass_state
def budget_set(state: Context, target: str, spec: str) -> None:
    """Set the budget of app TARGET (or 'wallet') to SPEC (2/day, 40/month, none)."""
    parsed = _budget_option(spec)
    state.wallet.set_budget(parsed, None if target == "wallet" else target)
    what = "the wallet" if target == "wallet" else target
    click.echo(f"Budget of {term(what)}: {parsed.describe() if parsed else 'none'}.")


@click.command("usage")
@click.option("--app", "app_name", help="Only this app.")
@click.option("--since", help="24h, 7d, 30d or a date (default: everything).")
@click.option("--by", type=click.Choice(["app", "model"]), default="app", show_default=True)
@json_option
@pass_state
def usage(state: Context, app_name: str | None, since: str | None, by: str, as_json: bool) -> None:
    """Spend from the ledger, grouped by app or model."""
    w = state.wallet
    start = parse_since(since)
    app_id = None
    if app_name:
        app = w.apps.get(app_name)
        app_id = app.id
        total = w.ledger.total_spent(app_id=app.id, since=start)
        rows: list[dict[str, object]] = [{"key": app.name, "spent_usd": usd_string(total)}]
    else:
        rows = [
            {"key": s.key, "requests": s.requests, "spent_usd": usd_string(s.spent_nano)}
            for s in w.ledger.spend_by(by, since=start)
        ]
        total = w.ledger.total_spent(since=start)
    over = w.ledger.over_reserved(app_id=app_id, since=start)
    if as_json:
        emit_json(
            {
                "since": start.isoformat() if start else None,
                "total_usd": usd_string(total),
                "rows": rows,
                "over_reserved": {
                    "requests": over.requests,
                    "billed_usd": usd_string(over.cost_nano),
                    "beyond_reserved_usd": usd_string(over.beyond_nano),
                },
            }
        )
        return
    emit_table(
        [[str(r["key"] or "-"), str(r.get("requests", "")), str(r["spent_usd"])] for r in rows],
        [by if not app_name else "app", "requests", "spent (USD)"],
    )
    click.echo(f"total: {format_usd(total, places=None)}")
    if over.requests:
        click.echo(
            f"over the reservation: {over.requests} request(s) a provider billed beyond what "
            f"they allowed, {format_usd(over.beyond_nano, places=None)} more than reserved "
            f"(billed {format_usd(over.cost_nano, places=None)}); see 'aiwallet requests "
            "--status over_reserved'"
        )


@click.command("pause")
@pass_state
def pause(state: Context) -> None:
    """Stop all AI spending now (the kill switch)."""
    state.wallet.set_paused(True)
    click.echo("Wallet paused: every request is refused until 'aiwallet resume'.")


@click.command("resume")
@pass_state
def resume(state: Context) -> None:
    """Allow AI spending again."""
    state.wallet.set_paused(False)
    click.echo("Wallet resumed.")


@click.group("origins")
def origins_group() -> None:
    """Web origins allowed to call the wallet (none by default: browsers are refused)."""


@origins_group.command("list")
@json_option
@pass_state
def origins_list(state: Context, as_json: bool) -> None:
    """List allowed origins."""
    items = state.wallet.allowed_origins()
    if as_json:
        emit_json(items)
    else:
        click.echo(
            "\n".join(term(i) for i in items)
            if items
            else "(none: every browser origin is refused)"
        )


@origins_group.command("allow")
@click.argument("origin")
@pass_state
def origins_allow(state: Context, origin: str) -> None:
    """Let pages from ORIGIN (e.g. http://localhost:3000) call the wallet."""
    state.wallet.allow_origin(origin)
    click.echo(f"Allowed {term(origin)}.")


@origins_group.command("remove")
@click.argument("origin")
@pass_state
def origins_remove(state: Context, origin: str) -> None:
    """Stop allowing ORIGIN."""
    state.wallet.disallow_origin(origin)
    click.echo(f"Removed {term(origin)}.")
