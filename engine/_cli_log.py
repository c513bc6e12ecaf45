"""``evenflow tail``, ``replay``, ``audit verify|export`` and ``projections rebuild``: the log.

None of these runs user code: they read events and fold them, they never import a pipeline's
module. Errors follow the CLI's policy (one ``error: ...`` line; exit 2 for bad input), and a
failed audit exits 1 naming the first bad seq and what is wrong with it.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from ._cli_load import CliError

if TYPE_CHECKING:
    import sqlite3

    from ._home import Home
    from ._views import RunEvent

_RUN_HELP = "A run id, id prefix (8+ chars), run name, or 'latest'."

audit_app = typer.Typer(
    rich_markup_mode=None,  # plain click help: rich's help renderer costs ~200 ms at startup
    help="Check the log's hash chain and triggers; export a run's events.",
    pretty_exceptions_enable=False,
)
projections_app = typer.Typer(
    rich_markup_mode=None,  # plain click help: rich's help renderer costs ~200 ms at startup
    help="Maintain the views folded from the log.",
    pretty_exceptions_enable=False,
)


@audit_app.callback(invoke_without_command=True)
def _audit_root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


@projections_app.callback(invoke_without_command=True)
def _projections_root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


# -- tail ------------------------------------------------------------------------------------


class _Labels:
    """``<id prefix> <pipeline>`` labels of streams, each looked up once (one short read)."""

    def __init__(self, home: Home) -> None:
        self._home = home
        self._conn: sqlite3.Connection | None = None
        self._names: dict[str, str] = {}

    def get(self, ev: RunEvent) -> str:
        label = self._names.get(ev.stream)
        if label is None:
            label = self._lookup(ev)
            self._names[ev.stream] = label
        return label

    def _lookup(self, ev: RunEvent) -> str:
        import sqlite3

        import projections
        from events import RunCreated

        try:
            if self._conn is None:
                self._conn = sqlite3.connect(f"{self._home.db.as_uri()}?mode=ro", uri=True)
            run = projections.get_run(self._conn, ev.stream)
        except sqlite3.Error:
            run = None  # no projections in this file (yet): fall back to the event
        if run is not None:
            return f"{run.id[:8]} {run.pipeline}"
        if isinstance(ev.event, RunCreated):
            return f"{ev.stream[:8]} {ev.event.pipeline}"
        return ev.stream[:8] if len(ev.stream) == 36 else ev.stream  # a run id, or schedule:...

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


async def _tail(
    run_id: str | None, since: int | None, type_prefix: str | None, follow: bool, as_json: bool
) -> None:
    from ._home import Home
    from .client import Client

    client = Client()
    labels = _Labels(Home.resolve())
    try:
        async for ev in client.tail(run_id, since, type_prefix=type_prefix, follow=follow):
            if as_json:
                print(json.dumps(ev.to_dict(), default=str), flush=True)
            else:
                from ._cli_timeline import tail_line

                print(tail_line(ev, labels.get(ev)), flush=True)
    finally:
        labels.close()


def tail_command(
    ctx: typer.Context,
    run: Annotated[
        str | None,
        typer.Argument(metavar="RUN", help=f"Only this run's events. {_RUN_HELP}"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per event, one per line.")
    ] = False,
    since: Annotated[
        int | None,
        typer.Option("--since", metavar="SEQ", help="Start after this seq (default: last 20)."),
    ] = None,
    type_prefix: Annotated[
        str | None,
        typer.Option("--type", metavar="PREFIX", help="Only event types starting with this."),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow/--no-follow", help="Keep following (default) or stop when done."),
    ] = True,
) -> None:
    """Print events as any process commits them (Ctrl-C stops)."""
    from ._cli_common import _errors, _find_run

    with _errors(ctx):
        if since is not None and since < 0:
            raise CliError(f"--since must be a seq >= 0, got {since}")
        run_id = None if run is None else _find_run(run).id
        import anyio

        try:
            anyio.run(_tail, run_id, since, type_prefix, follow, as_json, backend="asyncio")
        except KeyboardInterrupt:
            raise typer.Exit(0) from None  # Ctrl-C is how a follow ends: not an error


# -- replay ----------------------------------------------------------------------------------


def replay_command(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help=_RUN_HELP, show_default=False)],
    at: Annotated[
        int | None,
        typer.Option("--at", metavar="SEQ", help="Show the run as it was after this seq."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print a run's timeline and its state (as of --at), from the log alone."""
    from ._cli_common import _errors, _find_run, _print_json

    with _errors(ctx):
        from ._cli_timeline import header_lines, replay_dict, replay_line, state_lines
        from .client import Client

        view = _find_run(run)
        events = view.events()
        last = events[-1].seq if events else 0
        at_seq = last if at is None else at
        if events and at_seq < events[0].seq:
            raise CliError(
                f"run {view.name!r} has no events at or before seq {at_seq}; "
                f"its first event is seq {events[0].seq}"
            )
        shown = [ev for ev in events if ev.seq <= at_seq]
        state = Client().get_run_state(view.id, at_seq=at_seq)
        data = replay_dict(view, state, shown, at_seq, len(events) - len(shown))
        if as_json:
            _print_json(data)
            return
        start = shown[0].recorded_at.timestamp() if shown else 0.0
        lines = header_lines(view, shown, at_seq, len(events) - len(shown))
        lines += ["", *(replay_line(ev, start) for ev in shown), "", *state_lines(data)]
        print("\n".join(lines), flush=True)


# -- audit -----------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    run: Annotated[
        str | None,
        typer.Option("--run", metavar="RUN", help=f"Check only this run's rows. {_RUN_HELP}"),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", metavar="FILE", help="Check an export instead of the database."),
    ] = None,
) -> None:
    """Verify the hash chain and the append-only triggers (exit 0 intact, 1 not)."""
    from ._cli_common import EXIT_FAILED, _errors, _find_run

    with _errors(ctx):
        import events

        from ._home import Home

        if run is not None and file is not None:
            raise CliError("give --run or --file, not both")
        started = time.perf_counter()
        if file is not None:
            report = events.audit_export(file)
            what = f"export {file}"
        else:
            stream = None if run is None else _find_run(run).id
            report = events.audit_database(Home.resolve().db, stream=stream)
            what = f"run {stream}" if stream else str(Home.resolve().db)
        if not report.ok:
            problems = "; ".join(str(p) for p in report.problems)
            raise CliError(f"audit of {what} failed: {problems}", EXIT_FAILED)
        seconds = time.perf_counter() - started
        extra = "" if file is not None else ", triggers in place"
        print(
            f"ok: {what}: {report.checked} events checked in {seconds:.2f}s, chain intact up to "
            f"seq {report.head_seq} (hash {report.head_hash.hex()[:16]}){extra}",
            flush=True,
        )


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help=_RUN_HELP, show_default=False)],
    out: Annotated[
        str,
        typer.Option("--out", metavar="FILE", help="Where to write the JSON lines ('-': stdout)."),
    ],
) -> None:
    """Write a run's events as JSON lines with their hashes (check with verify --file)."""
    from ._cli_common import _errors, _find_run

    with _errors(ctx):
        import events

        from ._home import Home

        view = _find_run(run)
        db = Home.resolve().db
        if out == "-":
            events.export_stream(db, view.id, sys.stdout)
            sys.stdout.flush()
            return
        try:
            with open(out, "w", encoding="utf-8") as handle:
                count = events.export_stream(db, view.id, handle)
        except OSError as exc:
            raise CliError(f"cannot write {out}: {exc.strerror or exc}") from exc
        print(f"exported {count} events of run {view.name} to {out}", flush=True)


# -- projections -----------------------------------------------------------------------------


@projections_app.command("rebuild")
def projections_rebuild(ctx: typer.Context) -> None:
    """Drop every persisted view and fold it again from the log (one transaction)."""
    from ._cli_common import _errors

    with _errors(ctx):
        from .client import Client

        client = Client()
        started = time.perf_counter()
        folded = client.rebuild_projections()
        seconds = time.perf_counter() - started
        print(f"rebuilt the projections of {client.home.db}: {folded} events in {seconds:.2f}s")
