"""The step reducer: ``evolve_step(view, record, spec) -> view``, one step run at a time.

Pure: it never edits the view it is given. A step view is born from ``run.created`` (with the
step's spec from its ``steps`` list) or from ``step.declared``; afterwards only the events that
name this step (``step``/``spec.id`` field) in this run's stream change it.
"""

from __future__ import annotations

from typing import assert_never

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


def step_of(event: AnyEvent) -> str | None:
    """The invocation id of the step whose view ``event`` may change, if any.

    Hook events name a step too, but never change its view, so they give None.
    """
    if isinstance(event, StepDeclared):
        return event.spec.id
    if isinstance(event, _STEP_EVENTS):
        return event.step
    return None


def _born(rec: Recorded, spec: StepSpec) -> StepView:
    return StepView(
        run_id=rec.stream,
        id=spec.id,
        name=spec.name,
        spec=spec,
        status=ExecutionStatus.PENDING,
        last_seq=rec.seq,
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
            return _born(rec, spec)
        if isinstance(event, StepDeclared):
            return _born(rec, event.spec)
        return None
    if rec.stream != view.run_id or step_of(event) != view.id:
        return view
    t = rec.recorded_at
    seq = rec.seq
    match event:
        case StepDeclared():
            # Declared twice: the first declaration stands.
            return view
        case StepReady():
            return replace(view, status=ExecutionStatus.QUEUED, queued_at=t, last_seq=seq)
        case StepStarted(attempt=attempt):
            return replace(
                view,
                status=ExecutionStatus.RUNNING,
                attempt=attempt,
                start_time=t,
                end_time=None,
                duration=None,
                retry_due_at=None,
                last_seq=seq,
            )
        case StepSucceeded(outputs=outputs, duration=duration, cache_key=cache_key):
            took = duration if duration > 0 else _elapsed(view.start_time, t)
            return replace(
                view,
                status=ExecutionStatus.COMPLETED,
                end_time=t,
                duration=took,
                outputs=_resolve(view, outputs),
                cache_key=cache_key or view.cache_key,
                error=None,
                error_type=None,
                retry_due_at=None,
                last_seq=seq,
            )
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
        case StepCached(cache_key=key, source_run=source_run, source_step=source_step):
            start = view.start_time if view.start_time is not None else t
            return replace(
                view,
                status=ExecutionStatus.CACHED,
                start_time=start,
                end_time=t,
                duration=t - start,
                outputs={name: [ref] for name, ref in event.outputs.items()},
                cache_key=key,
                original_step_run_id=f"{source_run}/{source_step}",
                error=None,
                error_type=None,
                retry_due_at=None,
                last_seq=seq,
            )
        case StepSkipped():
            return replace(view, status=ExecutionStatus.SKIPPED, end_time=t, last_seq=seq)
        case StepCancelled():
            return replace(
                view, status=ExecutionStatus.CANCELLED, end_time=t, retry_due_at=None, last_seq=seq
            )
        case StepLogs(uri=uri):
            return replace(view, logs_uri=uri, last_seq=seq)
        case ArtifactStored(artifact=artifact):
            return replace(view, artifacts={**view.artifacts, artifact.id: artifact}, last_seq=seq)
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
            # Unreachable past the step_of() guard; listed so a new event type must be placed.
            return view
        case _:
            assert_never(event)


def _elapsed(start: float | None, end: float) -> float | None:
    return None if start is None else end - start
