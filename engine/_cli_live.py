"""``evenflow run``: run a pipeline while following its committed events.

The run and the follower share one open engine inside one task group. The follower subscribes
from the log's head before the run starts, so it sees every event of the run; it locks onto the
run whose ``run.created`` names our pipeline and whose ``run.started`` names this engine's owner
id (those two are appended together), and folds that stream with the projections' own reducers,
so what the display shows is exactly what ``runs show`` will read afterwards.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio

import projections
from events import Recorded, RunCreated, RunStarted, StepDeclared

from . import _cli_render as render

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

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

    def summary(self) -> str:
        """``run NAME completed in 2.31s: 8/8 steps done: 8 completed``."""
        if self.run is None:
            return "waiting for the run to start"
        steps = list(self.steps.values())
        counts = render.count_statuses(s.status.value for s in steps)
        took = render.fmt_duration(self.elapsed())
        verb = "in" if self.run.status.is_finished else "for"
        return (
            f"run {self.run.name} {self.run.status.value} {verb} {took}: "
            f"{render.fmt_counts(counts, len(steps))}"
        )


def _step_duration(step: projections.StepView) -> float | None:
    if step.duration is not None:
        return step.duration
    if step.status in ("running", "retrying") and step.start_time is not None:
        return time.time() - step.start_time
    return None


def _step_note(step: projections.StepView) -> str:
    if step.error:
        return f"{step.error_type or 'error'}: {step.error}"
    if step.original_step_run_id:
        return f"cache hit from run {step.original_step_run_id.split('/')[0][:8]}"
    if step.attempt > 1:
        return f"attempt {step.attempt}"
    return ""


class LiveView:
    """The rich renderable the live display refreshes: one row per step and a summary line."""

    def __init__(self, tracker: RunTracker) -> None:
        self.tracker = tracker

    def __rich__(self) -> RenderableType:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("step", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("duration", justify="right", no_wrap=True)
        table.add_column("", overflow="ellipsis", no_wrap=True)
        # list(): the refresh thread reads while the event loop folds (a dict copy is atomic).
        for step in list(self.tracker.steps.values()):
            table.add_row(
                step.id,
                render.status_text(step.status.value),
                render.fmt_duration(_step_duration(step)),
                Text(_step_note(step), style="dim red" if step.error else "dim"),
            )
        return Group(table, Text(self.tracker.summary(), style="bold"))


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
        if changed:
            self.live.refresh()

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
        for step in changed:
            if step.status == "pending":
                continue
            width = max((len(s) for s in self.tracker.steps), default=0)
            line = f"{self.tracker.elapsed():8.2f}s  {step.id:<{width}}  {step.status.value}"
            if step.status.is_finished and step.duration is not None:
                line += f" in {render.fmt_duration(step.duration)}"
            note = _step_note(step)
            if note:
                line += f"  ({' '.join(note.split())})"
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
                    if tracker.run is not None or view is not None:
                        # The terminal event is committed before run_async returns; let the
                        # follower fold it (bounded, in case the run ended without one).
                        with anyio.move_on_after(_DRAIN_SECONDS):
                            await finished.wait()
                    tg.cancel_scope.cancel()
            finally:
                sink.stop()
        return view, error, tracker.run is not None
