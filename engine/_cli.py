"""The ``evenflow`` command line (typer + rich).

Exit codes: 0 ok, 1 the run failed, 2 usage or input error. Every error is exactly one line on
stderr, ``error: <message>``, with no traceback and no box, unless ``--debug`` is given (then the
traceback comes first). :func:`main` is the console script; it applies that policy to what click
itself reports (unknown options, missing arguments) and to anything escaping a command.

Startup stays fast: rich rendering, the pipeline machinery and anyio are imported inside the
commands that need them, never at module import.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, NoReturn

import typer

from ._cli_common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    _console,
    _describe,
    _errors,
    _find_run,
    _Options,
    _print_json,
    _report,
)
from ._cli_load import CliError
from ._cli_log import audit_app, projections_app, replay_command, tail_command
from ._cli_logs import logs_command
from ._cli_recovery import cancel_command, resume_command
from ._cli_retention import gc_command, runs_delete
from ._cli_schedule import schedule_app, serve_command
from ._cli_secret import secret_app

app = typer.Typer(
    rich_markup_mode=None,  # plain click help: rich's help renderer costs ~200 ms at startup
    name="evenflow",
    help="evenflow: an async, event-sourced pipeline engine with ZenML's API.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
runs_app = typer.Typer(
    rich_markup_mode=None,  # plain click help: rich's help renderer costs ~200 ms at startup
    help="Inspect pipeline runs.",
    pretty_exceptions_enable=False,
)
app.add_typer(runs_app, name="runs")
app.add_typer(secret_app, name="secret")
app.add_typer(schedule_app, name="schedule")
app.command("serve")(serve_command)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    ctx.obj = _Options(debug=debug)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


@runs_app.callback(invoke_without_command=True)
def _runs_root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


# -- run ---------------------------------------------------------------------------------------


@app.command("run")
def run_command(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="FILE.py:PIPELINE",
            help="The file defining the pipeline and its name (optional if it has only one).",
            show_default=False,
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "-p",
            "--param",
            metavar="KEY=VALUE",
            help="A pipeline parameter; the value is read as YAML (3 is an int). Repeatable.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="No live display; print the finished run as JSON.")
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Run again whenever a .py file under the pipeline file's folder changes"
            " (unchanged steps come from the cache). Ctrl-C stops.",
        ),
    ] = False,
) -> None:
    """Run a pipeline and follow its steps live."""
    debug = (ctx.find_object(_Options) or _Options()).debug
    if watch:
        from ._watch import watch as watch_loop

        with _errors(ctx):
            code = watch_loop(target, param or [], as_json=as_json, debug=debug)
        raise typer.Exit(code)
    with _errors(ctx):
        from ._cli_live import engine_logs

        with engine_logs(debug):
            code = _run(target, param or [], as_json)
    raise typer.Exit(code)


def _run(target: str, params_in: list[str], as_json: bool) -> int:
    import anyio

    from . import _cli_load as load
    from ._cli_live import Display, run_followed
    from ._cli_render import run_dict
    from .errors import PipelineRunFailedError

    path, name = load.split_target(target)
    params = load.parse_params(params_in)
    try:
        module = load.import_file(path)
    except CliError:
        raise
    except Exception as exc:
        raise CliError(f"cannot import {path}: {_describe(exc)}") from exc
    pipe = load.find_pipeline(module, path, name)
    console = None if as_json else _console()
    display: Display = "none" if console is None else "live" if console.is_terminal else "lines"
    view, error, started = anyio.run(
        run_followed, pipe, params, display, console, backend="asyncio"
    )
    if isinstance(error, PipelineRunFailedError):
        if as_json:
            _print_json(run_dict(error.run))
        raise CliError(str(error), EXIT_FAILED) from error
    if error is not None:
        if started:
            raise CliError(f"the run stopped: {_describe(error)}", EXIT_FAILED) from error
        raise error
    assert view is not None
    if as_json:
        _print_json(run_dict(view))
    if view.status.is_failed:  # raise_on_failure=False returns the failed run
        raise CliError(f"run {view.name!r} {view.status.value}: {view.error}", EXIT_FAILED)
    return EXIT_OK


# -- runs ------------------------------------------------------------------------------------


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only runs of this pipeline.")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="Only runs with this status (e.g. failed).")
    ] = None,
    size: Annotated[int, typer.Option("--size", help="At most this many runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List runs, newest first."""
    with _errors(ctx):
        from .client import Client
        from .enums import ExecutionStatus

        known = [s.value for s in ExecutionStatus]
        if status is not None and status not in known:
            raise CliError(f"unknown status {status!r}; use one of: {', '.join(known)}")
        if size < 0:
            raise CliError(f"--size must be >= 0, got {size}")
        runs = Client().list_pipeline_runs(pipeline=pipeline, status=status, size=size)
        if as_json:
            from ._cli_render import run_summary_dict

            for run in runs:
                _print_json(run_summary_dict(run))
            return
        if not runs:
            print("no runs" + (" match" if pipeline or status else " yet"))
            return
        from ._cli_render import runs_table

        _console().print(runs_table(runs))


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run: Annotated[
        str,
        typer.Argument(
            metavar="RUN", help="A run id, id prefix (8+ chars), run name, or 'latest'."
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run as one JSON object.")
    ] = False,
) -> None:
    """Show a run: its header and its DAG with per-step status."""
    with _errors(ctx):
        view = _find_run(run)
        from ._cli_render import run_details, run_dict

        if as_json:
            _print_json(run_dict(view))
        else:
            _console().print(run_details(view))


runs_app.command("resume")(resume_command)
runs_app.command("cancel")(cancel_command)
app.command("tail")(tail_command)
app.command("logs")(logs_command)
app.command("replay")(replay_command)
app.add_typer(audit_app, name="audit")
app.add_typer(projections_app, name="projections")
runs_app.command("delete")(runs_delete)
app.command("gc")(gc_command)


# -- entry point -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``evenflow`` console script: run the app, exit with its code, errors on one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="evenflow", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt) as exc:
        _report("interrupted", exc, debug)
        sys.exit(EXIT_INTERRUPTED)
    except typer.TyperException as exc:  # click's usage errors: unknown option, missing argument
        message = exc.format_message()
        sub = getattr(getattr(exc, "ctx", None), "command_path", None)
        if sub:
            message = f"{message.rstrip('.')} (see '{sub} --help')"
        _report(message, exc, debug)
        sys.exit(EXIT_USAGE)
    except Exception as exc:
        _report(_describe(exc), exc, debug)
        sys.exit(EXIT_USAGE)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
