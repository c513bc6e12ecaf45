"""``evenflow secret create|list|delete``: the secret store from the command line.

Nothing this prints contains a value: ``create`` names the keys it stored, ``list`` shows names
and key names, and an argument that is not ``KEY=VALUE`` is named by its position, since it may
be a value typed without its key. Errors follow the CLI's policy: one ``error: ...`` line,
exit code 2.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from ._cli_load import CliError

if TYPE_CHECKING:
    from ._secrets import SecretStore

secret_app = typer.Typer(
    rich_markup_mode=None,  # plain click help: rich's help renderer costs ~200 ms at startup
    help="Manage secrets: named KEY=VALUE sets exposed to steps as environment variables.",
    pretty_exceptions_enable=False,
)


@secret_app.callback(invoke_without_command=True)
def _secret_root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


def _store() -> SecretStore:
    from ._home import Home
    from ._secrets import SecretStore

    return SecretStore(Home.resolve().secrets)


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` -> ``{"A": "1", "B": "x=y"}`` (split at the first ``=``).

    Raises:
        CliError: an argument has no ``=`` or an empty key (named by position, never shown),
            or a key is given twice.
    """
    values: dict[str, str] = {}
    for position, pair in enumerate(pairs, start=1):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(
                f"KEY=VALUE argument {position} has no {'key' if sep else '='}; "
                "write each value as KEY=VALUE"
            )
        if key in values:
            raise CliError(f"key {key!r} is given twice")
        values[key] = value
    return values


@secret_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The secret's name.", show_default=False)],
    pairs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="KEY=VALUE...",
            help="The values; each KEY becomes an environment variable of the steps.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the secret if it exists.")
    ] = False,
) -> None:
    """Create a secret (steps use it with secrets=[NAME])."""
    from ._cli_common import _errors

    with _errors(ctx):
        if not pairs:
            raise CliError(f"give at least one KEY=VALUE for secret {name!r}")
        values = parse_pairs(pairs)
        _store().create(name, values, overwrite=overwrite)
        print(f"created secret {name!r} with keys: {', '.join(sorted(values))}")


@secret_app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line: name and key names.")
    ] = False,
) -> None:
    """List secrets and their key names (never their values)."""
    from ._cli_common import _console, _errors

    with _errors(ctx):
        secrets = _store().key_names()
        if as_json:
            for name, keys in secrets.items():
                print(json.dumps({"name": name, "keys": keys}), flush=True)
            return
        if not secrets:
            print("no secrets yet")
            return
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        table.add_column("NAME")
        table.add_column("KEYS")
        for name, keys in secrets.items():
            table.add_row(name, ", ".join(keys))
        _console().print(table)


@secret_app.command("delete")
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The secret to delete.", show_default=False)],
) -> None:
    """Delete a secret."""
    from ._cli_common import _errors

    with _errors(ctx):
        _store().delete(name)
        print(f"deleted secret {name!r}")
