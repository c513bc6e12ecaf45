"""The step reducer: ``evolve_step(view, record, spec) -> view``, one step run at a time.

Pure: it never edits the view it is given. A step view is born from ``run.created`` (with the
step's spec from its ``steps`` list) or from ``step.declared``; afterwards only the events that
name this step (``step``/``spec.id`` field) in this run's stream change it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, assert_never, overload

from msgspec.structs import replace

from events import (
    AnyEvent,
    ArtifactRef,
    ArtifactStored,
    HookFailed,
    HookStarted,
    HookSucceeded,
    MetadataLogged,
    ModelArtifactLinked,
    ModelStageSet,
    ModelVersionCreated,
    Recorded,
    RunCancelled,
    RunCancelRequested,
    RunCrashed,
    RunCreated,
    RunFailed,
    RunResumed,
    RunsDeleted,
    RunStarted,
    RunSucceeded,
    ScheduleCreated,
    ScheduleDeleted,
    SchedulePaused,
    ScheduleResumed,
    ScheduleTriggered,
    StepCached,
    StepCancelled,
    StepDeclared,
    StepFailed,
    StepLogs,
    StepReady,
    StepRetryScheduled,
    StepSkipped,
    StepSpec,
    StepStarted,
    StepSucceeded,
    UnknownEvent,
)

from ._status import ExecutionStatus
from ._views import StepView

_STEP_EVENTS = (
    StepReady,
    StepStarted,
    StepSucceeded,
    StepFailed,
    StepRetryScheduled,
    StepCached,
    StepSkipped,
    StepCancelled,
    StepLogs,
    ArtifactStored,
    MetadataLogged,
)


# The exact classes of _STEP_EVENTS: a set lookup instead of a walk of isinstance checks (each
# miss costs a metaclass __instancecheck__ call) for the events of every step transition.
_STEP_EVENT_TYPES: frozenset[type] = frozenset(_STEP_EVENTS)


def step_of(event: AnyEvent) -> str | None:
    """The invocation id of the step whose view ``event`` may change, if any.

    Hook events name a step too, but never change its view, so they give None.
    """
    if type(event) in _STEP_EVENT_TYPES:
        return event.step  # type: ignore[union-attr]  # every class in the set has .step
    if isinstance(event, StepDeclared):
        return event.spec.id
    if isinstance(event, _STEP_EVENTS):
        return event.step
    return None


def born(run_id: str, spec: StepSpec, seq: int) -> StepView:
    """The view of a step just declared (pending) by the event at ``seq`` of run ``run_id``."""
    return StepView(
        run_id=run_id,
        id=spec.id,
        name=spec.name,
        spec=spec,
        status=ExecutionStatus.PENDING,
        last_seq=seq,
    )


def _resolve(view: StepView, outputs: dict[str, str]) -> dict[str, list[ArtifactRef]]:
    """Output name -> artifact refs, from the ``artifact.stored`` events the step recorded.

    An id the step never stored (a log written by a buggy producer) still yields a ref with that
    id and the output's name, so a view never loses an output it was told about.
    """
    resolved: dict[str, list[ArtifactRef]] = {}
    for name, artifact_id in outputs.items():
        ref = view.artifacts.get(artifact_id)
        if ref is None:
            ref = ArtifactRef(
                id=artifact_id, name=name, content_hash="", uri="", materializer="", type_name=""
            )
        resolved[name] = [ref]
    return resolved


def _ready(view: StepView, event: StepReady, t: float, seq: int) -> StepView:
    return replace(view, status=ExecutionStatus.QUEUED, queued_at=t, last_seq=seq)


def _started(view: StepView, event: StepStarted, t: float, seq: int) -> StepView:
    return replace(
        view,
        status=ExecutionStatus.RUNNING,
        attempt=event.attempt,
        start_time=t,
        end_time=None,
        duration=None,
        retry_due_at=None,
        last_seq=seq,
    )


def _stored(view: StepView, event: ArtifactStored, t: float, seq: int) -> StepView:
    artifact = event.artifact
    return replace(view, artifacts={**view.artifacts, artifact.id: artifact}, last_seq=seq)


def _succeeded(view: StepView, event: StepSucceeded, t: float, seq: int) -> StepView:
    took = event.duration if event.duration > 0 else _elapsed(view.start_time, t)
    return replace(
        view,
        status=ExecutionStatus.COMPLETED,
        end_time=t,
        duration=took,
        outputs=_resolve(view, event.outputs),
        cache_key=event.cache_key or view.cache_key,
        error=None,
        error_type=None,
        retry_due_at=None,
        last_seq=seq,
    )


def _cached(view: StepView, event: StepCached, t: float, seq: int) -> StepView:
    start = view.start_time if view.start_time is not None else t
    return replace(
        view,
        status=ExecutionStatus.CACHED,
        start_time=start,
        end_time=t,
        duration=t - start,
        outputs={name: [ref] for name, ref in event.outputs.items()},
        cache_key=event.cache_key,
        original_step_run_id=f"{event.source_run}/{event.source_step}",
        error=None,
        error_type=None,
        retry_due_at=None,
        last_seq=seq,
    )


# The transitions of the events every step goes through, by exact class: one dict lookup
# instead of the match's walk of class patterns (each failed one is an isinstance call on a
# metaclass). The same functions the match picks for these classes (a test checks it).
HOT: dict[type, Callable[[StepView, Any, float, int], StepView]] = {
    StepReady: _ready,
    StepStarted: _started,
    ArtifactStored: _stored,
    StepSucceeded: _succeeded,
    StepCached: _cached,
}


@overload
def evolve_step(view: StepView, rec: Recorded, spec: StepSpec | None = None) -> StepView: ...


@overload
def evolve_step(
    view: StepView | None, rec: Recorded, spec: StepSpec | None = None
) -> StepView | None: ...


def evolve_step(
    view: StepView | None, rec: Recorded, spec: StepSpec | None = None
) -> StepView | None:
    """Fold one record into a step run's view.

    Args:
        view: the step's view so far, or None before the step is declared.
        rec: the next record. A record of another stream, or about another step, leaves the view
            as it is.
        spec: the step's spec, needed when ``rec`` is the ``run.created`` that declares it (one
            call per entry of ``RunCreated.steps``); ``step.declared`` carries its own.

    Returns:
        The new view (the same object when nothing changed), or None while the step is unknown.
    """
    event = rec.event
    if view is None:
        if isinstance(event, RunCreated) and spec is not None:
            return born(rec.stream, spec, rec.seq)
        if isinstance(event, StepDeclared):
            return born(rec.stream, event.spec, rec.seq)
        return None
    if rec.stream != view.run_id or step_of(event) != view.id:
        return view
    return evolve_known(view, rec)


def evolve_known(view: StepView, rec: Recorded) -> StepView:
    """:func:`evolve_step` for a record already known to name ``view``'s step of ``view``'s run
    (a fold that found the view by the record's stream and :func:`step_of`)."""
    event = rec.event
    hot = HOT.get(type(event))
    if hot is not None:
        return hot(view, event, rec.recorded_at, rec.seq)
    return transition(view, event, rec.recorded_at, rec.seq)


def transition(view: StepView, event: AnyEvent, t: float, seq: int) -> StepView:
    """The view after ``event`` (recorded at ``t``, ``seq``), which names the view's step."""
    match event:
        case StepReady():
            return _ready(view, event, t, seq)
        case StepStarted():
            return _started(view, event, t, seq)
        case ArtifactStored():
            return _stored(view, event, t, seq)
        case StepSucceeded():
            return _succeeded(view, event, t, seq)
        case StepCached():
            return _cached(view, event, t, seq)
        case StepFailed(final=final, error=error, error_type=error_type, attempt=attempt):
            status = ExecutionStatus.FAILED if final else ExecutionStatus.RETRYING
            return replace(
                view,
                status=status,
                attempt=max(view.attempt, attempt),
                end_time=t,
                duration=_elapsed(view.start_time, t),
                error=error or None,
                error_type=error_type or None,
                last_seq=seq,
            )
        case StepRetryScheduled(due_at=due_at):
            return replace(view, retry_due_at=due_at, last_seq=seq)
        case StepSkipped():
            return replace(view, status=ExecutionStatus.SKIPPED, end_time=t, last_seq=seq)
        case StepCancelled():
            return replace(
                view, status=ExecutionStatus.CANCELLED, end_time=t, retry_due_at=None, last_seq=seq
            )
        case StepDeclared():
            # Declared twice: the first declaration stands.
            return view
        case StepLogs(uri=uri):
            return replace(view, logs_uri=uri, last_seq=seq)
        case MetadataLogged(metadata=metadata):
            return replace(view, metadata={**view.metadata, **metadata}, last_seq=seq)
        case (
            RunCreated()
            | RunStarted()
            | RunSucceeded()
            | RunFailed()
            | RunCancelled()
            | RunCancelRequested()
            | RunCrashed()
            | RunResumed()
            | HookStarted()
            | HookSucceeded()
            | HookFailed()
            | ScheduleCreated()
            | ScheduleTriggered()
            | SchedulePaused()
            | ScheduleResumed()
            | ScheduleDeleted()
            | ModelVersionCreated()
            | ModelStageSet()
            | ModelArtifactLinked()
            | RunsDeleted()
            | UnknownEvent()
        ):
            # Unreachable past evolve_step's step_of() guard; listed so a new event type must
            # be placed.
            return view
        case _:
            assert_never(event)


def _elapsed(start: float | None, end: float) -> float | None:
    return None if start is None else end - start
