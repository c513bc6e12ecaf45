"""``evenflow schedule list|pause|resume|delete`` and ``evenflow serve``.

``serve`` runs the schedule service in the foreground on ``$EVENFLOW_HOME``, logging one
structlog line per event of note (tick fired, run finished, schedule changed) to stderr, until
SIGINT or SIGTERM: then it cancels its runs (recorded as cancelled), closes the log and exits 0.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._cli_load import CliError

if TYPE_CHECKING:
    from ._schedule_views import ScheduleView

schedule_app = typer.Typer(
    rich_markup_mode=None,  # plain click help: rich's help renderer costs ~200 ms at startup
    help="Manage schedules (register them with p.run(schedule=Schedule(...))).",
    pretty_exceptions_enable=False,
)


@schedule_app.callback(invoke_without_command=True)
def _schedule_root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


def _epoch(view_time: Any) -> float | None:
    return None if view_time is None else float(view_time.timestamp())


def schedule_dict(view: ScheduleView) -> dict[str, Any]:
    """One ``schedule list --json`` line (times as UTC epoch seconds)."""
    return {
        "id": view.id,
        "name": view.name,
        "pipeline": view.pipeline_name,
        "expression": view.expression,
        "status": view.status,
        "next_fire_time": _epoch(view.next_fire_time),
        "last_tick": _epoch(view.last_tick),
        "last_run_id": view.last_run_id,
        "last_run_status": None if view.last_run_status is None else view.last_run_status.value,
        "catchup": view.catchup,
        "timezone": view.timezone,
        "start_time": _epoch(view.start_time),
        "end_time": _epoch(view.end_time),
        "code": view.code,
        "fired": view.fired,
    }


@schedule_app.command("list")
def list_(
    ctx: typer.Context,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only schedules of this pipeline.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List schedules: name, pipeline, expression, status, next fire time, last run."""
    from ._cli_common import _console, _errors, _print_json

    with _errors(ctx):
        from .client import Client

        views = Client().list_schedules(pipeline=pipeline)
        if as_json:
            for view in views:
                _print_json(schedule_dict(view))
            return
        if not views:
            print("no schedules" + (" match" if pipeline else " yet"))
            return
        from rich.table import Table

        from ._cli_render import fmt_time

        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("name", "pipeline", "expression", "status", "next fire", "last run"):
            table.add_column(column, overflow="fold")
        for view in views:
            last = "-"
            if view.last_run_id is not None:
                status = view.last_run_status.value if view.last_run_status else "pending"
                last = f"{view.last_run_id[:8]} {fmt_time(view.last_tick)} {status}"
            table.add_row(
                view.name,
                view.pipeline_name,
                view.expression,
                view.status,
                fmt_time(view.next_fire_time),
                last,
            )
        _console().print(table)


def _change(ctx: typer.Context, name: str, action: str) -> None:
    from ._cli_common import _errors

    with _errors(ctx):
        from .client import Client

        client = Client()
        if not client.home.db.exists():
            raise CliError(f"no schedule {name!r}: {client.home.db} does not exist")
        view = getattr(client, f"{action}_schedule")(name)
        print(f"{action}d schedule {view.name!r}" if view else f"{action}d schedule {name!r}")


_NAME = Annotated[
    str, typer.Argument(metavar="NAME", help="A schedule name, id or id prefix (8+ chars).")
]


@schedule_app.command("pause")
def pause(ctx: typer.Context, name: _NAME) -> None:
    """Pause a schedule: no tick fires until it is resumed (missed ticks follow catchup)."""
    _change(ctx, name, "pause")


@schedule_app.command("resume")
def resume(ctx: typer.Context, name: _NAME) -> None:
    """Resume a paused schedule."""
    _change(ctx, name, "resume")


@schedule_app.command("delete")
def delete(ctx: typer.Context, name: _NAME) -> None:
    """Delete a schedule (its runs stay)."""
    _change(ctx, name, "delete")


# -- serve -------------------------------------------------------------------------------------


def _log_to_stderr(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("evenflow")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)


async def _serve_until_signal() -> None:
    import signal

    import anyio

    from ._engine import Engine
    from ._log import get_logger

    log = get_logger("evenflow.serve")
    async with Engine.open() as engine, anyio.create_task_group() as tg:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            await tg.start(engine.serve)
            print(f"serving schedules of {engine.home.root} (Ctrl-C stops)", flush=True)
            async for signum in signals:
                log.info("signal_received", signal=signal.Signals(signum).name)
                tg.cancel_scope.cancel()
                break


def serve_command(ctx: typer.Context) -> None:
    """Fire due schedules in the foreground until SIGINT/SIGTERM (logs go to stderr)."""
    from ._cli_common import _errors, _Options

    debug = (ctx.find_object(_Options) or _Options()).debug
    with _errors(ctx):
        import anyio

        _log_to_stderr(debug)
        anyio.run(_serve_until_signal, backend="asyncio")
        print("stopped", flush=True)
        _wait_for_step_threads()


def _wait_for_step_threads() -> None:
    """Wait for the threads of sync steps that were running when the service stopped.

    Their runs are already recorded as cancelled and the log is closed, but a thread cannot be
    interrupted, and Python waits for it at exit: say so, and let a second SIGINT/SIGTERM end
    the process at once instead of after the step's own duration."""
    import os
    import signal
    import threading

    from ._threads import THREAD_NAME

    # Only the threads of sync steps: others left from the shutdown (anyio's workers, the
    # database connections' threads) end on their own within moments.
    left = [t for t in threading.enumerate() if t.name == THREAD_NAME and t.is_alive()]
    if not left:
        return

    def exit_now(signum: int, _frame: object) -> None:
        sys.stderr.write("exiting without waiting for them\n")
        sys.stderr.flush()
        os._exit(128 + signum)  # nothing left to record: the runs are cancelled in the log

    signal.signal(signal.SIGINT, exit_now)
    signal.signal(signal.SIGTERM, exit_now)
    print(
        f"waiting for {len(left)} step thread(s) to return (a running sync step cannot be "
        "interrupted; its run is recorded as cancelled); press Ctrl-C or send SIGTERM again to "
        "exit now",
        file=sys.stderr,
        flush=True,
    )
    for thread in left:
        while thread.is_alive():
            thread.join(0.1)
