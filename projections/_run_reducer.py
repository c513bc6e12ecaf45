"""The run reducer: ``evolve_run(view, record) -> view``, run-level fields only.

Pure: it never edits the view it is given, and returns that same object for every event that
does not change a run-level field (step transitions, hooks, other streams...), so a caller can
skip writing an unchanged row. Step views are folded separately by
:func:`projections.evolve_step`, so this reducer never touches a per-step collection: it is O(1)
per event, except ``step.declared``, which appends one id to ``step_ids`` (a copy of that list).
"""

from __future__ import annotations

from typing import assert_never

from msgspec.structs import replace

from events import (
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
    StepStarted,
    StepSucceeded,
    UnknownEvent,
)

from ._status import ExecutionStatus
from ._views import RunView

# Event types that never change a run-level field: the match below returns the view unchanged
# for each of them. Checked first, by exact type, because they are nearly every event of a run
# and the match tries its class patterns one by one. (MetadataLogged is not here: it changes the
# run when it names no step.)
_NEVER_RUN_LEVEL: frozenset[type] = frozenset(
    {
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
        HookStarted,
        HookSucceeded,
        HookFailed,
    }
)


def _created(rec: Recorded, event: RunCreated) -> RunView:
    return RunView(
        id=rec.stream,
        name=event.run_name,
        pipeline=event.pipeline,
        status=ExecutionStatus.INITIALIZING,
        created_at=rec.recorded_at,
        parameters=event.parameters,
        tags=event.tags,
        dynamic=event.dynamic,
        execution_mode=event.execution_mode,
        code=event.code,
        config=event.config,
        schedule_id=event.schedule_id,
        tick=event.tick,
        # dict.fromkeys: declaration order, and a repeated id (an invalid DAG) listed once.
        step_ids=list(dict.fromkeys(spec.id for spec in event.steps)),
        last_seq=rec.seq,
        version=rec.version,
    )


def evolve_run(view: RunView | None, rec: Recorded) -> RunView | None:
    """Fold one record into a run's view.

    Args:
        view: the run's view so far, or None before its ``run.created``.
        rec: the next record. Records of another stream leave the view as it is.

    Returns:
        The new view (the same object when nothing changed), or None while the run has not been
        created.
    """
    event = rec.event
    if view is None:
        return _created(rec, event) if isinstance(event, RunCreated) else None
    if type(event) in _NEVER_RUN_LEVEL or rec.stream != view.id:
        return view
    t = rec.recorded_at
    seen = {"last_seq": rec.seq, "version": rec.version}
    match event:
        case RunCreated():
            # A second run.created for the same stream cannot change what the run is.
            return view
        case RunStarted(owner=owner):
            started = view.started_at if view.started_at is not None else t
            return replace(
                view, status=ExecutionStatus.RUNNING, started_at=started, owner=owner, **seen
            )
        case RunResumed(owner=owner):
            return replace(
                view,
                status=ExecutionStatus.RUNNING,
                ended_at=None,
                error=None,
                failed_step=None,
                owner=owner or view.owner,
                **seen,
            )
        case RunSucceeded(outputs=outputs):
            return replace(
                view, status=ExecutionStatus.COMPLETED, ended_at=t, outputs=outputs, **seen
            )
        case RunFailed(error=error, failed_step=failed_step):
            return replace(
                view,
                status=ExecutionStatus.FAILED,
                ended_at=t,
                error=error or None,
                failed_step=failed_step,
                **seen,
            )
        case RunCancelled():
            return replace(view, status=ExecutionStatus.CANCELLED, ended_at=t, **seen)
        case RunCrashed(reason=reason):
            return replace(
                view, status=ExecutionStatus.CRASHED, ended_at=t, error=reason or None, **seen
            )
        case RunCancelRequested():
            return replace(view, cancel_requested=True, **seen)
        case StepDeclared(spec=spec):
            if spec.id in view.step_ids:
                return view
            return replace(view, step_ids=[*view.step_ids, spec.id], **seen)
        case MetadataLogged(step=None, metadata=metadata):
            return replace(view, metadata={**view.metadata, **metadata}, **seen)
        case (
            MetadataLogged()
            | StepReady()
            | StepStarted()
            | StepSucceeded()
            | StepFailed()
            | StepRetryScheduled()
            | StepCached()
            | StepSkipped()
            | StepCancelled()
            | StepLogs()
            | ArtifactStored()
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
            return view
        case _:
            assert_never(event)
