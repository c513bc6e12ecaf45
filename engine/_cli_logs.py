"""``evenflow logs RUN [STEP] [--follow]``: print what a run's steps printed and logged.

Reads the step log files (``$EVENFLOW_HOME/logs/<run id>/``) and never runs user code. One
step: its log as written. Every step: each line prefixed with ``<step> | ``, the steps in DAG
order (``docker compose logs`` style). ``--follow`` keeps reading the files of a running run,
printing each complete line as it lands, until the run has finished; the files are polled
(a few times a second), like ``tail -f``.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from ._cli_load import CliError

if TYPE_CHECKING:
    from ._home import Home
    from ._views import PipelineRunView

_POLL_SECONDS = 0.2


class _Follower:
    """Per step: how far its file was read, and the start of a line not yet complete."""

    def __init__(self, home: Home, run_id: str, prefix: bool) -> None:
        self.home = home
        self.run_id = run_id
        self.prefix = prefix
        self.steps: list[str] = []
        self.offsets: dict[str, int] = {}
        self.partial: dict[str, bytes] = {}
        self.printed = False

    def add_steps(self, steps: list[str]) -> None:
        for step in steps:
            if step not in self.offsets:
                self.steps.append(step)
                self.offsets[step] = 0
                self.partial[step] = b""

    def drain(self, final: bool) -> None:
        """Print the new complete lines of every step (all that is left, when ``final``)."""
        from ._step_logs import log_uri, read_log

        width = max((len(s) for s in self.steps), default=0)
        out: list[str] = []
        for step in self.steps:
            data = read_log(self.home, log_uri(self.run_id, step), self.offsets[step])
            self.offsets[step] += len(data)
            data = self.partial[step] + data
            cut = len(data) if final else data.rfind(b"\n") + 1
            self.partial[step] = data[cut:]
            if not cut:
                continue
            text = data[:cut].decode("utf-8", errors="replace")
            if self.prefix:
                label = f"{step:<{width}} | "
                text = "".join(label + line for line in text.splitlines(keepends=True))
            if not text.endswith("\n"):
                text += "\n"  # a final line without one: keep the next step's lines apart
            out.append(text)
        if out:
            self.printed = True
            sys.stdout.write("".join(out))
            sys.stdout.flush()


def _current(home: Home, run_id: str) -> PipelineRunView:
    from ._views import load_run_view

    return load_run_view(home, run_id)


def logs_command(
    ctx: typer.Context,
    run: Annotated[
        str,
        typer.Argument(
            metavar="RUN",
            help="A run id, id prefix (8+ chars), run name, or 'latest'.",
            show_default=False,
        ),
    ],
    step: Annotated[
        str | None,
        typer.Argument(metavar="STEP", help="Only this step (its invocation id)."),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new lines until the run finishes."),
    ] = False,
) -> None:
    """Print what a run's steps printed and logged (stdout, stderr, logging, structlog)."""
    from ._cli_common import _errors, _find_run

    with _errors(ctx):
        from ._home import Home

        view = _find_run(run)
        if step is not None and step not in view.steps:
            known = ", ".join(view.steps) or "none"
            raise CliError(f"run {view.name!r} has no step {step!r} (steps: {known})")
        home = Home.resolve()
        follower = _Follower(home, view.id, prefix=step is None)
        follower.add_steps([step] if step is not None else list(view.steps))
        finished = view.status.is_finished
        try:
            while follow and not finished:
                follower.drain(final=False)
                time.sleep(_POLL_SECONDS)
                # Status first, files second: a finished run's logs are all on disk by then.
                view = _current(home, view.id)
                finished = view.status.is_finished
                if step is None:
                    follower.add_steps(list(view.steps))  # a dynamic run declares steps late
        except KeyboardInterrupt:
            raise typer.Exit(0) from None  # Ctrl-C is how a follow may end: not an error
        follower.drain(final=True)
        if not follower.printed:
            what = f"step {step!r} of run" if step is not None else "run"
            print(f"no logs for {what} {view.name!r}", file=sys.stderr, flush=True)
