"""The ``aiwallet`` command.

Every action a user can take has a subcommand; every listing takes ``--json``. Deliberate
errors (:class:`WalletError`) print one line and exit 1; anything unexpected prints one line
naming the log file that holds the details, never a traceback on the terminal.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import click

from aiwallet import __version__
from aiwallet.cli_commands import (
    apps,
    audit,
    catalog,
    consent,
    prefs,
    provider_keys,
    providers,
    requests,
    routing,
    wallet,
)
from aiwallet.cli_commands.common import Context, emit_json, json_option, pass_state, term
from aiwallet.domain.errors import WalletError
from aiwallet.paths import resolve_data_dir

log = logging.getLogger("aiwallet.cli")

GLOBAL_VALUE_OPTIONS = ("--data-dir",)


def lift_global_options(args: list[str]) -> list[str]:
    """``--data-dir X`` (or ``--data-dir=X``) anywhere before a ``--`` moved to the front, so
    that ``aiwallet status --data-dir X`` means ``aiwallet --data-dir X status``."""
    lifted: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in GLOBAL_VALUE_OPTIONS and i + 1 < len(args):
            lifted += [arg, args[i + 1]]
            i += 2
            continue
        if arg.split("=", 1)[0] in GLOBAL_VALUE_OPTIONS and "=" in arg:
            lifted.append(arg)
        else:
            rest.append(arg)
        i += 1
    return lifted + rest


class WalletGroup(click.Group):
    """The top-level group: its global options may also follow a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, lift_global_options(args))


@click.group(
    cls=WalletGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    envvar="AIWALLET_HOME",
    help="Where the wallet keeps its files (default: the platform user-data dir); may also "
    "follow the subcommand.",
)
@click.option("--minimized", is_flag=True, help="Start the desktop app in the tray.")
@click.version_option(__version__, prog_name="aiwallet")
@click.pass_context
def cli(ctx: click.Context, data_dir: str | None, minimized: bool) -> None:
    """aiwallet: your own AI gateway and wallet. With no command, the desktop app starts."""
    state = Context(resolve_data_dir(data_dir))
    ctx.obj = state
    ctx.call_on_close(state.close)
    if ctx.invoked_subcommand is None:
        ctx.invoke(gui, minimized=minimized)


@cli.command()
@click.option("--minimized", is_flag=True, help="Start in the tray without opening the window.")
@pass_state
def gui(state: Context, minimized: bool) -> None:
    """Start the desktop app (window, tray, prompts) with its engine."""
    import os
    import sys

    headless = (
        sys.platform.startswith("linux")
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
        and not os.environ.get("QT_QPA_PLATFORM")
    )
    if headless:
        raise WalletError(
            "no display to show the desktop app on; run 'aiwallet serve' for the headless "
            "engine, or 'aiwallet status'"
        )
    from aiwallet.platformcheck import xcb_problem

    problem = xcb_problem()  # before Qt, which would abort with its own message
    if problem:
        raise WalletError(problem)
    from aiwallet.gui.app import run

    raise SystemExit(run(state.data_dir, minimized=minimized))


@cli.command()
@json_option
@pass_state
def status(state: Context, as_json: bool) -> None:
    """Show where the wallet lives, its secret store, catalog and providers."""
    info = state.wallet.status()
    if as_json:
        emit_json(info)
        return
    click.echo(f"aiwallet {__version__}")
    click.echo(f"data dir:      {term(info['data_dir'])}")
    click.echo(f"database:      {term(info['database'])}")
    click.echo(f"secret store:  {term(info['vault']['description'])}")
    if info["vault"]["is_fallback"]:
        click.echo("               (no OS keyring found: keys are in a passphrase-sealed file)")
    click.echo(
        f"catalog:       {info['catalog']['models']} models, {term(info['catalog']['source'])}"
    )
    names = term(", ".join(info["providers"]))
    click.echo(f"providers:     {names or 'none yet (aiwallet providers add)'}")


@cli.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on."
)
@click.option("--port", default=8402, show_default=True, help="0 picks a free port and prints it.")
@click.option(
    "--allow-non-loopback",
    is_flag=True,
    help="Allow a non-loopback --host (the wallet would then be reachable from the network).",
)
@pass_state
def serve(state: Context, host: str, port: int, allow_non_loopback: bool) -> None:
    """Run the engine without the desktop app (headless)."""
    import signal
    import threading

    state.wallet.unlock_vault()
    engine = state.wallet.new_engine(host=host, port=port, allow_non_loopback=allow_non_loopback)
    if allow_non_loopback and host not in ("127.0.0.1", "::1", "localhost"):
        click.echo(f"WARNING: listening on {host}: other machines can reach this wallet.", err=True)
    bound = engine.start()
    for res, outcome in engine.recovered:
        click.echo(
            f"recovered reservation of request {term(res.request_id)}: {term(outcome)}", err=True
        )
    click.echo(f"aiwallet engine listening on http://{host}:{bound}", err=True)
    click.echo(str(bound))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    engine.stop()


cli.add_command(providers.group)
providers.group.add_command(provider_keys.subkeys)
providers.group.add_command(provider_keys.balances)
cli.add_command(apps.group)
apps.group.add_command(routing.downgrade)
cli.add_command(routing.routes_group)
cli.add_command(routing.prompts_group)
cli.add_command(apps.budget_group)
cli.add_command(apps.usage)
cli.add_command(requests.requests)
cli.add_command(apps.pause)
cli.add_command(apps.resume)
cli.add_command(apps.origins_group)
cli.add_command(consent.group)
cli.add_command(consent.receipts_group)
cli.add_command(catalog.group)
cli.add_command(audit.group)
cli.add_command(prefs.group)
cli.add_command(wallet.group)


@contextmanager
def _error_boundary() -> Iterator[None]:
    try:
        yield
    except WalletError as err:
        # an error may quote what a caller, a provider or a file said
        click.echo(f"aiwallet: error: {term(err)}", err=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        click.echo("aiwallet: interrupted", err=True)
        raise SystemExit(130) from None


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    with _error_boundary():
        try:
            cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
        except click.exceptions.Abort:
            click.echo("aiwallet: aborted", err=True)
            raise SystemExit(1) from None
        except click.ClickException as exc:
            exc.show()
            raise SystemExit(exc.exit_code) from None
        except click.exceptions.Exit as exc:
            raise SystemExit(exc.exit_code) from None
        except (WalletError, KeyboardInterrupt):
            raise
        except Exception as exc:
            log.exception("unexpected error")
            click.echo(
                f"aiwallet: internal error ({type(exc).__name__}); details are in the log "
                "file in the data dir's logs/ folder",
                err=True,
            )
            raise SystemExit(70) from None
