"""``aiwallet consent`` and ``aiwallet receipts``: answering apps, and what was granted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from aiwallet.cli_commands.common import (
    Context,
    emit_json,
    emit_table,
    json_option,
    pass_state,
    term,
)
from aiwallet.domain.receipts import verify_receipt


@click.group("consent")
def group() -> None:
    """Requests from apps waiting for an answer, and remembered decisions."""


@group.command("pending")
@json_option
@pass_state
def pending(state: Context, as_json: bool) -> None:
    """Requests waiting for an answer (from the running engine)."""
    items = state.wallet.engine_call("GET", "/admin/v1/consent/pending")
    if as_json:
        emit_json(items)
        return
    emit_table(
        [
            [
                r["id"],
                r["kind"],
                r["app_name"],
                r["process_label"],
                ",".join(r["models"]),
                r["budget"] or "-",
                f"{r['expires_in_s']} s",
                r["purpose"] or "-",
            ]
            for r in items
        ],
        ["id", "kind", "who", "process", "models", "budget", "answer within", "purpose"],
    )


@group.command("approve")
@click.argument("request_id")
@click.option("--budget", help="Grant this budget instead of the one asked (e.g. 1/day).")
@click.option("--models", help="Grant only these models (comma-separated).")
@click.option("--lifetime", type=int, help="Grant for this many seconds (default: as asked).")
@click.option("--once", is_flag=True, help="Allow this request only; remember nothing.")
@click.option(
    "--for",
    "duration",
    type=click.Choice(["once", "15m", "1h", "exit", "always"]),
    help="How long: this request, 15 minutes, an hour, until the program exits, or until "
    "revoked (default: the lifetime asked, else until revoked).",
)
@click.option(
    "--any-script",
    is_flag=True,
    help="Remember the allow for any script this interpreter runs, not only this one.",
)
@json_option
@pass_state
def approve(
    state: Context,
    request_id: str,
    budget: str | None,
    models: str | None,
    lifetime: int | None,
    once: bool,
    duration: str | None,
    any_script: bool,
    as_json: bool,
) -> None:
    """Approve REQUEST_ID, possibly with less than it asked for."""
    body = {
        "budget": budget,
        "models": models.split(",") if models else None,
        "lifetime_s": lifetime,
        "once": once,
        "duration": duration,
        "scope": "program" if any_script else "script",
    }
    result = state.wallet.engine_call("POST", f"/admin/v1/consent/{request_id}/approve", body)
    if as_json:
        emit_json(result)
        return
    answer = result["answer"]
    if result.get("kind") == "payment":
        held = result.get("held_request") or {}
        click.echo(
            f"Approved paying {term(held.get('payee', '?'))} for {term(result['app_name'])}"
            + (
                ": every payment to this payee from now on"
                if answer.get("remembered")
                else ": this payment only"
            )
        )
        return
    click.echo(
        f"Approved {term(result['app_name'])} as app {term(repr(answer['app']))}: models "
        f"{term(', '.join(answer['models']))}, budget {term(answer['budget'] or 'none')}"
        + _lasting(answer)
    )


def _lasting(answer: dict[str, Any]) -> str:
    duration = answer.get("duration")
    if duration == "once":
        return " (this request only)"
    if duration == "exit":
        return " until the program exits"
    if answer.get("expires_at"):
        return f" until {answer['expires_at']}"
    return " until you revoke it" + (
        " (for any script of this interpreter)" if answer.get("scope") == "program" else ""
    )


@group.command("deny")
@click.argument("request_id")
@click.option("--always", is_flag=True, help="Remember: refuse this app or program from now on.")
@click.option(
    "--any-script",
    is_flag=True,
    help="With --always: refuse any script this interpreter runs, not only this one.",
)
@pass_state
def deny(state: Context, request_id: str, always: bool, any_script: bool) -> None:
    """Deny REQUEST_ID (once, or --always)."""
    body = {"always": always, "scope": "program" if any_script else "script"}
    state.wallet.engine_call("POST", f"/admin/v1/consent/{request_id}/deny", body)
    click.echo(
        f"Denied {term(request_id)}" + (" and remembered it." if always else " (this time).")
    )


@group.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked decisions.")
@json_option
@pass_state
def list_(state: Context, include_revoked: bool, as_json: bool) -> None:
    """Every remembered decision, allow and deny."""
    rules = state.wallet.consent_rules.list(include_revoked=include_revoked)
    if as_json:
        emit_json([r.to_json() for r in rules])
        return
    emit_table(
        [
            [
                str(r.id),
                r.decision,
                r.subject_kind,
                r.subject,
                r.expires_at.isoformat(timespec="minutes") if r.expires_at else "-",
                "revoked" if r.revoked_at else "active",
            ]
            for r in rules
        ],
        ["id", "decision", "kind", "subject", "expires", "state"],
    )


@group.command("revoke")
@click.argument("rule_id", type=int)
@pass_state
def revoke(state: Context, rule_id: int) -> None:
    """Forget decision RULE_ID (an allow also revokes the app it created)."""
    state.wallet.revoke_consent_rule(rule_id)
    click.echo(f"Revoked decision {rule_id}.")


@click.group("receipts")
def receipts_group() -> None:
    """Consent receipts: signed records of what was granted."""


@receipts_group.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--public-key", help="Also require this wallet's public key (base64).")
@json_option
def verify(file: Path, public_key: str | None, as_json: bool) -> None:
    """Check FILE's signature offline."""
    check = verify_receipt(file.read_bytes(), trusted_public_key=public_key)
    if as_json:
        emit_json(check.to_json())
    elif check.ok and check.receipt is not None:
        r = check.receipt
        click.echo(
            f"valid receipt {term(r['receipt_id'])}: app {term(repr(r['app']))}, models "
            f"{term(', '.join(r['scopes']))}, budget {term(r['budget'] or 'none')}, "
            f"issued {term(r['issued_at'])}"
        )
    else:
        click.echo(f"INVALID receipt: {term(check.problem)}")
    if not check.ok:
        raise SystemExit(2)
