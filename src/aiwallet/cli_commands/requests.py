"""``aiwallet requests``: the request log (what the desktop app's Activity page lists).

Read through ``Wallet.reports`` with a :class:`RequestFilter`, newest first. The store
filters by app, model, time and ``ok`` / ``error`` / error code; an HTTP status (``402``)
is not a notion of the filter, so those rows are picked here while paging the log (narrowed
to ``error`` in SQL when the status is 400 or above).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click

from aiwallet.cli_commands.common import (
    Context,
    emit_json,
    emit_table,
    json_option,
    parse_since,
    pass_state,
)
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import format_usd, usd_string
from aiwallet.domain.reports import RequestFilter, RequestRow

if TYPE_CHECKING:
    from aiwallet.store.reports import Reports

# The Activity page's status choices (gui/pages/activity.py STATUSES), by value.
STATUS_CHOICES = (
    "ok",
    "error",
    "budget_exceeded",
    "wallet_paused",
    "consent_required",
    "consent_denied",
    "expensive_request_denied",
    "too_many_pending",
    "rate_limited",
    "upstream_unavailable",
)
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]*")
_SCAN_PAGE = 500  # rows read per page when picking an HTTP status out of the log


def parse_status(value: str | None) -> tuple[str | None, int | None]:
    """``--status`` as (the filter's status, an HTTP status to pick out of the rows)."""
    if not value:
        return None, None
    text = value.strip().lower()
    if text.isdigit():
        code = int(text)
        if not 100 <= code <= 599:
            raise InvalidInput(f"{value!r} is not an HTTP status (100 to 599)")
        return ("error" if code >= 400 else None), code
    if _ERROR_CODE.fullmatch(text):
        return text, None
    raise InvalidInput(
        f"{value!r} is not a status; use an HTTP status such as 402, or one of "
        f"{', '.join(STATUS_CHOICES)} (or another error code)"
    )


def newest(
    reports: Reports, f: RequestFilter, http_status: int | None, limit: int
) -> tuple[list[RequestRow], bool]:
    """Up to ``limit`` matching rows, newest first, and whether more match."""
    if http_status is None:
        rows = reports.request_page(f, limit=limit + 1)
        return rows[:limit], len(rows) > limit
    found: list[RequestRow] = []
    before = None
    while len(found) <= limit:
        page = reports.request_page(f, before=before, limit=_SCAN_PAGE)
        found += [r for r in page if r.status == http_status]
        if len(page) < _SCAN_PAGE:
            break
        before = (page[-1].ts, page[-1].id)
    return found[:limit], len(found) > limit


def count(reports: Reports, f: RequestFilter) -> int:
    """How many rows match ``f``."""
    return reports.request_count(f)


def row_json(r: RequestRow) -> dict[str, object]:
    return {
        "id": r.id,
        "ts": r.ts.isoformat(),
        "app": r.app,
        "endpoint": r.endpoint,
        "model": r.model,
        "provider": r.provider,
        "status": r.status,
        "error_code": r.error_code,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cost_usd": usd_string(r.cost_nano),
        "token_source": r.token_source,
        "latency_ms": r.latency_ms,
        "stream": r.stream,
        "catalog_cost_usd": None
        if r.catalog_cost_nano is None
        else usd_string(r.catalog_cost_nano),
        "cost_differs": r.cost_differs,
    }


def row_cells(r: RequestRow) -> list[str]:
    return [
        r.ts.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
        r.app,
        r.model or "-",
        f"{r.status} {r.error_code}" if r.error_code else str(r.status),
        f"{r.input_tokens:,} / {r.output_tokens:,}",
        format_usd(r.cost_nano, places=None)
        + (
            f" (catalog {format_usd(r.catalog_cost_nano, places=None)})"
            if r.cost_differs and r.catalog_cost_nano is not None
            else ""
        ),
        f"{r.latency_ms:,} ms" if r.latency_ms is not None else "-",
    ]


@click.command("requests")
@click.option("--app", "app_name", help="Only this app's requests.")
@click.option("--model", help="Only requests for this model (exact name).")
@click.option(
    "--status",
    help="An HTTP status (402), ok, error (failed or refused), or an error code: "
    + ", ".join(STATUS_CHOICES[2:])
    + ", ...",
)
@click.option("--since", help="24h, 7d, 30m or a date like 2026-11-01 (default: everything).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Show this many, newest first.",
)
@json_option
@pass_state
def requests(
    state: Context,
    app_name: str | None,
    model: str | None,
    status: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The request log, newest first: one line per request the engine handled.

    Tokens in count the prompt with its cache reads and writes; costs are exact.
    """
    w = state.wallet
    store_status, http_status = parse_status(status)
    f = RequestFilter(
        app_id=w.apps.get(app_name).id if app_name else None,
        model=model or None,
        status=store_status,
        since=parse_since(since),
    )
    rows, more = newest(w.reports, f, http_status, limit)
    if as_json:
        emit_json([row_json(r) for r in rows])
        return
    if not rows:
        filtered = any((app_name, model, status, since))
        click.echo(
            "No requests match these filters."
            if filtered
            else "No requests yet: the log fills as apps call AI through the engine."
        )
        return
    emit_table(
        [row_cells(r) for r in rows],
        ["time", "app", "model", "status", "tokens in/out", "cost", "latency"],
    )
    if more:
        if http_status is None:
            click.echo(f"{len(rows)} newest of {count(w.reports, f):,} shown; --limit shows more.")
        else:
            click.echo(f"{len(rows)} newest shown; more match (--limit shows more).")
