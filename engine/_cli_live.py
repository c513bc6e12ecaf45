"""``evenflow run``: run a pipeline while following its committed events.

The run and the follower share one open engine inside one task group. The follower subscribes
from the log's head before the run starts, so it sees every event of the run; it locks onto the
run whose ``run.created`` names our pipeline and whose ``run.started`` names this engine's owner
id (those two are appended together), and folds that stream with the projections' own reducers,
so what the display shows is exactly what ``runs show`` will read afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio
import structlog

import projections
from events import Recorded, RunCreated, RunStarted, StepDeclared

from . import _cli_render as render

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType

    from ._pipeline import Pipeline
    from ._views import PipelineRunView

Display = Literal["live", "lines", "none"]
_DRAIN_SECONDS = 5.0


class RunTracker:
    """The state of the run this process started, folded from its committed events."""

    def __init__(self, pipeline: str, owner: str) -> None:
        self.pipeline = pipeline
        self.owner = owner
        self.run: projections.RunView | None = None
        self.steps: dict[str, projections.StepView] = {}
        self._candidates: dict[str, list[Recorded]] = {}

    @property
    def finished(self) -> bool:
        return self.run is not None and self.run.status.is_finished

    def apply(self, rec: Recorded) -> list[projections.StepView]:
        """Fold one record; returns the steps whose status changed (new steps included)."""
        if self.run is None:
            return self._locate(rec)
        if rec.stream != self.run.id:
            return []
        return self._fold(rec)

    def _locate(self, rec: Recorded) -> list[projections.StepView]:
        event = rec.event
        if isinstance(event, RunCreated) and event.pipeline == self.pipeline:
            self._candidates[rec.stream] = [rec]
            return []
        backlog = self._candidates.get(rec.stream)
        if backlog is None:
            return []
        backlog.append(rec)
        if isinstance(event, RunStarted) and event.owner == self.owner:
            self._candidates.clear()
            changed: list[projections.StepView] = []
            for old in backlog:
                changed.extend(self._fold(old))
            return changed
        return []

    def _fold(self, rec: Recorded) -> list[projections.StepView]:
        self.run = projections.evolve_run(self.run, rec)
        event = rec.event
        changed: list[projections.StepView] = []
        if isinstance(event, RunCreated):
            for spec in event.steps:
                born = projections.evolve_step(None, rec, spec)
                if born is not None and spec.id not in self.steps:
                    self.steps[spec.id] = born
                    changed.append(born)
            return changed
        step_id = projections.step_of(event)
        if step_id is None:
            return changed
        before = self.steps.get(step_id)
        after = projections.evolve_step(before, rec)
        if after is None:
            return changed
        self.steps[step_id] = after
        if before is None or before.status != after.status or isinstance(event, StepDeclared):
            changed.append(after)
        return changed

    def elapsed(self) -> float:
        if self.run is None or self.run.started_at is None:
            return 0.0
        end = self.run.ended_at if self.run.ended_at is not None else time.time()
        return end - self.run.started_at

    def progress(self) -> str:
        """``in 2.31s: 8/8 steps done: 8 completed`` (``for ...`` while the run is live)."""
        steps = list(self.steps.values())
        counts = render.count_statuses(s.status.value for s in steps)
        verb = "in" if self.finished else "for"
        took = render.fmt_duration(self.elapsed())
        return f"{verb} {took}: {render.fmt_counts(counts, len(steps))}"

    def summary(self) -> str:
        """``run NAME completed in 2.31s: 8/8 steps done: 8 completed``."""
        if self.run is None:
            return "waiting for the run to start"
        return f"run {self.run.name} {self.run.status.value} {self.progress()}"


def _step_duration(step: projections.StepView) -> float | None:
    if step.duration is not None:
        return step.duration
    if step.status in ("running", "retrying") and step.start_time is not None:
        return time.time() - step.start_time
    return None


def _step_note(step: projections.StepView) -> str:
    if step.error:
        return " ".join(f"{step.error_type or 'error'}: {step.error}".split())
    if step.original_step_run_id:
        return f"cache hit from run {step.original_step_run_id.split('/')[0][:8]}"
    if step.attempt > 1:
        return f"attempt {step.attempt}"
    return ""


_QUIET = frozenset({"completed", "cached", "pending"})


def visible_steps(
    steps: list[projections.StepView], rows: int
) -> tuple[list[projections.StepView], str]:
    """At most ``rows`` steps to show, in declaration order, and a note on the rest.

    A run taller than the terminal shows the steps worth watching (running, queued, failed,
    ...) first and hides completed, cached and pending ones: ``runs show`` has them all."""
    if len(steps) <= rows:
        return steps, ""
    keep = [s for s in steps if s.status not in _QUIET][: max(rows - 1, 1)]
    shown = {s.id for s in keep}
    hidden = render.count_statuses(s.status.value for s in steps if s.id not in shown)
    note = ", ".join(f"{n} {status}" for status, n in hidden.items())
    more = "more " if keep else ""
    return keep, f"... {len(steps) - len(keep)} {more}steps ({note})"


class LiveView:
    """The rich renderable the live display refreshes: one row per step and a summary line."""

    def __init__(self, tracker: RunTracker) -> None:
        self.tracker = tracker

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        from rich.table import Table
        from rich.text import Text

        run = self.tracker.run
        if run is None:
            yield Text(self.tracker.summary(), style="dim")
            return
        yield Text.assemble(("run ", "bold"), (run.name, "bold"), (f"  {run.id}", "dim"))
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("step", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("duration", justify="right", no_wrap=True)
        table.add_column("", overflow="ellipsis", no_wrap=True)
        # list(): the refresh thread reads while the event loop folds (a dict copy is atomic).
        rows = max(options.max_height - 4, 8)
        steps, more = visible_steps(list(self.tracker.steps.values()), rows)
        for step in steps:
            table.add_row(
                step.id,
                render.status_text(step.status.value),
                render.fmt_duration(_step_duration(step)),
                Text(_step_note(step), style="dim red" if step.error else "dim"),
            )
        if steps:
            yield table
        if more:
            yield Text(more, style="dim")
        yield Text.assemble(render.status_text(run.status.value), " ", self.tracker.progress())


class Sink(Protocol):
    def start(self) -> None: ...

    def update(self, changed: list[projections.StepView]) -> None: ...

    def stop(self) -> None: ...


class LiveSink:
    """A terminal: a rich Live table, then the final table printed once."""

    def __init__(self, tracker: RunTracker, console: Console) -> None:
        from rich.live import Live

        self.view = LiveView(tracker)
        self.console = console
        self.live = Live(self.view, console=console, refresh_per_second=10, transient=True)

    def start(self) -> None:
        self.live.start()

    def update(self, changed: list[projections.StepView]) -> None:
        # Nothing to do: Live redraws at 10 Hz from its own thread. Redrawing per event would
        # render the whole table on the event loop once per event (quadratic in big runs).
        pass

    def stop(self) -> None:
        self.live.stop()
        if self.view.tracker.run is not None:
            self.console.print(self.view)


class LineSink:
    """Not a terminal (CI logs, pipes): one flushed line per step transition."""

    def __init__(self, tracker: RunTracker) -> None:
        self.tracker = tracker
        self.announced = False

    def start(self) -> None:
        pass

    def update(self, changed: list[projections.StepView]) -> None:
        run = self.tracker.run
        if run is None:
            return
        if not self.announced:
            self.announced = True
            print(f"run {run.name} ({run.id}): {len(self.tracker.steps)} steps", flush=True)
        width = max((len(s) for s in self.tracker.steps), default=0)
        for step in changed:
            if step.status == "pending":
                continue
            line = f"{self.tracker.elapsed():8.2f}s  {step.id:<{width}}  {step.status.value}"
            if step.status.is_finished and step.duration is not None:
                line += f" in {render.fmt_duration(step.duration)}"
            note = _step_note(step)
            if note:
                line += f"  ({note})"
            print(line, flush=True)

    def stop(self) -> None:
        if self.tracker.run is not None:
            print(self.tracker.summary(), flush=True)


class NoSink:
    def start(self) -> None:
        pass

    def update(self, changed: list[projections.StepView]) -> None:
        pass

    def stop(self) -> None:
        pass


@contextlib.contextmanager
def engine_logs(debug: bool) -> Iterator[None]:
    """While a command runs the engine, its structlog diagnostics go to stderr, and only at
    error level unless ``--debug``: stdout belongs to the display (or to ``--json``), and a
    failed run is reported once, by its ``error:`` line. The previous configuration is restored
    afterwards (the CLI is an edge, not the owner of the process's logging)."""
    from ._log_capture import current_stream

    configured, saved = structlog.is_configured(), structlog.get_config()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if debug else logging.ERROR
        ),
        # The stderr of each write, not this one: a step's lines then reach its step log.
        logger_factory=structlog.PrintLoggerFactory(current_stream("stderr")),
    )
    try:
        yield
    finally:
        if configured:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()


async def run_followed(
    pipe: Pipeline, params: dict[str, Any], display: Display, console: Console | None
) -> tuple[PipelineRunView | None, BaseException | None, bool]:
    """Run ``pipe`` with ``params`` on a freshly opened engine while displaying its events.

    Returns:
        ``(view, error, started)``: the finished run's view (None if ``run_async`` raised),
        the exception ``run_async`` raised (None on success) and whether the run's events had
        started to arrive (an error before that is an input error, not a failed run).
    """
    from ._engine import Engine
    from .errors import PipelineRunFailedError

    async with Engine.open() as engine:
        tracker = RunTracker(pipe.name, engine.owner_id)
        sink: Sink
        if display == "live" and console is not None:
            sink = LiveSink(tracker, console)
        elif display == "lines":
            sink = LineSink(tracker)
        else:
            sink = NoSink()
        view: PipelineRunView | None = None
        error: BaseException | None = None
        since = await engine.store.last_seq()
        async with engine.store.subscribe(since=since) as sub:
            finished = anyio.Event()

            async def follow() -> None:
                async for rec in sub:
                    sink.update(tracker.apply(rec))
                    if tracker.finished:
                        break
                finished.set()

            sink.start()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(follow)
                    try:
                        view = await pipe.run_async(engine=engine, **params)
                    except Exception as exc:  # reported by the caller, after the display stops
                        error = exc
                    ran = error is None or isinstance(error, PipelineRunFailedError)
                    if ran or tracker.run is not None:
                        # The terminal event is committed before run_async returns; let the
                        # follower (which may lag) fold it. Bounded, in case the run ended
                        # without one.
                        with anyio.move_on_after(_DRAIN_SECONDS):
                            await finished.wait()
                    tg.cancel_scope.cancel()
            finally:
                sink.stop()
        return view, error, tracker.run is not None
