"""What every ``evenflow`` command shares: exit codes, the one-line error policy, output.

The subcommand modules (``_cli_log``, ``_cli_recovery``, ...) and ``_cli`` itself import these
from here, so that ``_cli``, which assembles the commands, is imported by none of them.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from ._cli_load import CliError

if TYPE_CHECKING:
    from rich.console import Console

    from ._views import PipelineRunView

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True, slots=True)
class _Options:
    debug: bool = False


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip()) or "failed"


def _report(message: str, exc: BaseException | None, debug: bool) -> None:
    if debug and exc is not None:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: {_one_line(message)}", file=sys.stderr, flush=True)


def _describe(exc: BaseException) -> str:
    from .errors import EngineError

    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, CliError | EngineError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@contextlib.contextmanager
def _errors(ctx: typer.Context) -> Iterator[None]:
    """Turn what a command raises into one ``error:`` line and its exit code."""
    options = ctx.find_object(_Options) or _Options()
    try:
        yield
    except (typer.Exit, typer.Abort, BrokenPipeError):
        raise  # typer exits 1 quietly on a closed stdout (``evenflow runs list | head -1``)
    except KeyboardInterrupt as exc:
        _report("interrupted", exc, options.debug)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except CliError as exc:
        _report(str(exc), exc, options.debug)
        raise typer.Exit(exc.code) from None
    except Exception as exc:
        _report(_describe(exc), exc, options.debug)
        raise typer.Exit(EXIT_USAGE) from None


def _console() -> Console:
    """Stdout. Not a terminal (a pipe, CI) and no ``$COLUMNS``: wide, so rows are not wrapped
    at rich's default 80 columns."""
    import os

    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=200)
    return console


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, default=str), flush=True)


def _find_run(ref: str) -> PipelineRunView:
    from .client import Client
    from .errors import RunNotFoundError

    client = Client()
    if ref == "latest":
        runs = client.list_pipeline_runs(size=1)
        if not runs:
            raise CliError(f"there are no runs yet in {client.home.db}")
        return runs[0]
    try:
        return client.get_pipeline_run(ref)
    except RunNotFoundError as exc:
        hint = " (an id prefix needs at least 8 characters)" if len(ref) < 8 else ""
        raise CliError(f"{exc}{hint}") from exc
