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
from aiwallet.cli_commands import audit, catalog, providers
from aiwallet.cli_commands.common import Context, emit_json, json_option, pass_state
from aiwallet.domain.errors import WalletError
from aiwallet.paths import resolve_data_dir

log = logging.getLogger("aiwallet.cli")


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    envvar="AIWALLET_HOME",
    help="Where the wallet keeps its files (default: the platform user-data dir).",
)
@click.version_option(__version__, prog_name="aiwallet")
@click.pass_context
def cli(ctx: click.Context, data_dir: str | None) -> None:
    """aiwallet: your own AI gateway and wallet."""
    state = Context(resolve_data_dir(data_dir))
    ctx.obj = state
    ctx.call_on_close(state.close)
    if ctx.invoked_subcommand is None:
        ctx.invoke(status)


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
    click.echo(f"data dir:      {info['data_dir']}")
    click.echo(f"database:      {info['database']}")
    click.echo(f"secret store:  {info['vault']['description']}")
    if info["vault"]["is_fallback"]:
        click.echo("               (no OS keyring found: keys are in a passphrase-sealed file)")
    click.echo(f"catalog:       {info['catalog']['models']} models, {info['catalog']['source']}")
    click.echo(
        f"providers:     {', '.join(info['providers']) or 'none yet (aiwallet providers add)'}"
    )


cli.add_command(providers.group)
cli.add_command(catalog.group)
cli.add_command(audit.group)


@contextmanager
def _error_boundary() -> Iterator[None]:
    try:
        yield
    except WalletError as err:
        click.echo(f"aiwallet: error: {err}", err=True)
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
