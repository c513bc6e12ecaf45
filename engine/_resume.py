"""Resuming a run whose owner died: fold its log into what each step left behind, then drive it
to the end in the same stream.

What the log says about a step decides what the resumed run does with it:

* ``step.succeeded`` / ``step.cached``: finished; its artifacts are reused, it never runs again.
* ``step.failed`` (final), ``step.skipped``, ``step.cancelled``: settled as recorded.
* ``step.retry_scheduled`` with no later start: the retry timer is restored (its ``due_at`` is
  wall-clock time, so a retry already due runs at once).
* ``step.started`` with no outcome: the attempt was lost with the process; the step runs again
  (at-least-once: a step may run twice when its process dies mid-step).
* ``step.ready`` with no start: queued again.

A static run is recompiled from its recorded code location and parameters and must declare the
steps the log recorded; a dynamic run's body runs again and its invocations are matched by id
(:meth:`RunLoop.declare`), and a body that now declares a different step under a recorded id
fails the resume with :class:`RunResumeError` instead of mixing two shapes in one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from events import (
    ArtifactRef,
    ArtifactStored,
    Recorded,
    RunCancelled,
    RunCreated,
    RunFailed,
    RunSucceeded,
    StepCached,
    StepCancelled,
    StepDeclared,
    StepFailed,
    StepReady,
    StepRetryScheduled,
    StepSkipped,
    StepSpec,
    StepStarted,
    StepSucceeded,
)

from .errors import RunNotFoundError, RunResumeError

if TYPE_CHECKING:
    from ._engine import Engine
    from ._pipeline import Pipeline
    from ._run_plan import RunPlan
    from ._views import PipelineRunView

_TERMINAL = {RunSucceeded: "completed", RunFailed: "failed", RunCancelled: "cancelled"}


@dataclass(slots=True)
class StepPast:
    """One step as the log left it."""

    state: str = "pending"  # ready | started | retrying | completed | failed | skipped | cancelled
    attempt: int = 0
    refs: dict[str, ArtifactRef] = field(default_factory=dict)
    due_at: float = 0.0
    error: str = ""
    error_type: str = ""


@dataclass(slots=True)
class RunPast:
    """A run's log folded for resuming: its creation, version and every step's state."""

    run_id: str
    created: RunCreated
    version: int
    terminal: str | None = None
    steps: dict[str, StepPast] = field(default_factory=dict)
    declared: dict[str, StepSpec] = field(default_factory=dict)

    def step(self, step_id: str) -> StepPast:
        past = self.steps.get(step_id)
        if past is None:
            past = self.steps[step_id] = StepPast()
        return past


def fold_past(records: list[Recorded]) -> RunPast:
    """Fold one run stream's records (in order) into a :class:`RunPast`."""
    if not records or not isinstance(records[0].event, RunCreated):
        raise RunResumeError("the run's log does not start with run.created")
    past = RunPast(records[0].stream, records[0].event, records[-1].version)
    stored: dict[str, ArtifactRef] = {}
    for rec in records[1:]:
        event = rec.event
        match event:
            case StepDeclared(spec=spec):
                past.declared[spec.id] = spec
            case StepReady(step=step):
                past.step(step).state = "ready"
            case StepStarted(step=step, attempt=attempt):
                s = past.step(step)
                s.state, s.attempt = "started", attempt
            case ArtifactStored(artifact=artifact):
                stored[artifact.id] = artifact
            case StepSucceeded(step=step, outputs=outputs, attempt=attempt):
                s = past.step(step)
                s.state, s.attempt = "completed", attempt
                s.refs = {name: stored[aid] for name, aid in outputs.items() if aid in stored}
            case StepCached(step=step, outputs=outputs):
                s = past.step(step)
                s.state, s.refs = "completed", dict(outputs)
            case StepFailed(step=step, attempt=attempt, final=final):
                s = past.step(step)
                s.attempt, s.error, s.error_type = attempt, event.error, event.error_type
                s.state = "failed" if final else "retrying"
            case StepRetryScheduled(step=step, attempt=attempt, due_at=due_at):
                s = past.step(step)
                s.state, s.attempt, s.due_at = "retrying", attempt - 1, due_at
            case StepSkipped(step=step):
                past.step(step).state = "skipped"
            case StepCancelled(step=step):
                past.step(step).state = "cancelled"
            case RunSucceeded() | RunFailed() | RunCancelled():
                past.terminal = _TERMINAL[type(event)]
            case _:
                pass
    return past


def same_shape(recorded: StepSpec, now: StepSpec) -> str | None:
    """Why ``now`` is not the step the log recorded under the same id (None when it is)."""
    for name in ("name", "inputs", "parameters", "after", "outputs"):
        if getattr(recorded, name) != getattr(now, name):
            return (
                f"step {now.id!r} now has {name} {getattr(now, name)!r}, the log recorded "
                f"{getattr(recorded, name)!r}"
            )
    return None


def check_same_steps(created: RunCreated, plan: RunPlan) -> None:
    """A static run resumes only if its code still compiles to the steps the log recorded."""
    recorded = {spec.id: spec for spec in created.steps}
    now = {inv_id: inv.spec() for inv_id, inv in plan.invocations.items()}
    problem = None
    if recorded.keys() != now.keys():
        gone = sorted(recorded.keys() - now.keys())
        new = sorted(now.keys() - recorded.keys())
        problem = f"steps no longer declared: {gone or 'none'}; new steps: {new or 'none'}"
    else:
        problem = next((why for i in now if (why := same_shape(recorded[i], now[i]))), None)
    if problem is not None:
        raise RunResumeError(
            f"cannot resume run {created.run_name!r}: pipeline {created.pipeline!r} changed "
            f"since the run started ({problem})"
        )


async def load_past(engine: Engine, run_id: str) -> RunPast:
    records = await engine.store.read_stream(run_id)
    if not records:
        raise RunNotFoundError(f"no run with id {run_id!r}")
    past = fold_past(records)
    if past.terminal is not None:
        raise RunResumeError(
            f"run {past.created.run_name!r} ({run_id}) already ended {past.terminal}; only a "
            "run that did not finish can be resumed"
        )
    return past


def load_pipeline(code: str, run_name: str, root: str = "") -> Pipeline:
    """The pipeline object a run recorded as its code location (and root)."""
    from ._code import find_pipeline

    try:
        return find_pipeline(code, root)
    except Exception as exc:
        raise RunResumeError(
            f"run {run_name!r}: cannot load its pipeline from {code!r}: {exc}"
        ) from exc


async def resume(engine: Engine, run_id: str) -> PipelineRunView:
    """Take the run's lease and drive it to its end; returns the finished run's view.

    The lease comes first: no other process can resume the run while this one folds its log,
    and a live owner is reported as such (:class:`RunResumeError`).
    """
    from ._lease import Lease

    lease = Lease.acquire(engine.home.leases, run_id, engine.owner_id)
    try:
        past = await load_past(engine, run_id)
        created = past.created
        pipe = load_pipeline(created.code, created.run_name, created.code_root)
        params: dict[str, Any] = dict(created.parameters)
    except BaseException:
        lease.release()
        raise
    return await pipe._resume(engine, past, params, lease)
