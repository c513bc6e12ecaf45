"""The schedule reducer: ``evolve_schedule(state, record) -> state``, one schedule at a time.

Each schedule has its own stream, ``schedule:<id>``: ``schedule.created``, then any number of
``schedule.paused`` / ``schedule.resumed`` / ``schedule.triggered``, and finally, perhaps,
``schedule.deleted``. The state is folded from that stream alone, so its ``version`` is the
stream's version: a service claims a tick by appending ``schedule.triggered`` with
``expected_version=state.version``, and a stale state makes that append fail instead of firing
twice.

Pure and idempotent: a record of another stream, or one whose version the state has already
folded, returns the same state object, so records may be delivered more than once (a service
folds its own claim at once and sees it again when it tails the log).

A stream gains one ``schedule.triggered`` per fired tick (86,400 a day for an every-second
schedule), so readers do not fold it whole: :func:`fold_schedule_tail` computes the same state
from the stream's other events, its newest tick and its head.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, assert_never

import msgspec
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

SCHEDULE_STREAM_PREFIX = "schedule:"


def schedule_stream(schedule_id: str) -> str:
    """The stream of the schedule with this id: ``schedule:<id>``."""
    return f"{SCHEDULE_STREAM_PREFIX}{schedule_id}"


class ScheduleState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A schedule folded from its stream. Times are UTC epoch seconds.

    Attributes:
        id: the schedule id (its stream is ``schedule:<id>``).
        name: the schedule's name.
        pipeline: the pipeline's name.
        code: how to import the pipeline again (``module:qualname`` or ``/path/file.py:name``).
        code_root: where that module was imported from (``RunCreated.code_root``).
        cron_expression, interval_second, run_once_start_time: exactly one is set.
        start_time, end_time: the window ticks must fall in (inclusive), if any.
        catchup: run every missed tick after a downtime (else only the most recent one).
        timezone: the IANA zone cron is evaluated in ("" = the serving machine's local zone).
        parameters: the pipeline parameters each run gets.
        config: the run configuration (``PipelineRunConfiguration.to_dict()``) of each run.
        created_at: when it was registered, by the registering clock.
        paused: no tick fires while paused.
        deleted: deleted; nothing fires again.
        last_tick: the newest tick claimed (fired), if any.
        last_run_id: the run started for ``last_tick``.
        fired: how many ticks were claimed.
        version: the stream version folded so far.
        last_seq: the seq of the newest record folded.
    """

    id: str
    name: str
    pipeline: str
    code: str = ""
    code_root: str = ""
    cron_expression: str | None = None
    interval_second: float | None = None
    run_once_start_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    catchup: bool = False
    timezone: str = ""
    parameters: dict[str, Any] = {}
    config: dict[str, Any] = {}
    created_at: float = 0.0
    paused: bool = False
    deleted: bool = False
    last_tick: float | None = None
    last_run_id: str | None = None
    fired: int = 0
    version: int = 0
    last_seq: int = 0


def _created(rec: Recorded, event: ScheduleCreated) -> ScheduleState:
    return ScheduleState(
        id=event.schedule_id,
        name=event.name,
        pipeline=event.pipeline,
        code=event.code,
        code_root=event.code_root,
        cron_expression=event.cron_expression,
        interval_second=event.interval_second,
        run_once_start_time=event.run_once_start_time,
        start_time=event.start_time,
        end_time=event.end_time,
        catchup=event.catchup,
        timezone=event.timezone,
        parameters=event.parameters,
        config=event.config,
        created_at=event.created_at if event.created_at is not None else rec.recorded_at,
        version=rec.version,
        last_seq=rec.seq,
    )


def evolve_schedule(state: ScheduleState | None, rec: Recorded) -> ScheduleState | None:
    """Fold one record of a schedule's stream into its state.

    Args:
        state: the schedule so far, or None before its ``schedule.created``.
        rec: the next record. A record of another stream, or of a version already folded,
            leaves the state as it is.

    Returns:
        The new state (the same object when nothing changed), or None before the schedule
        was created.
    """
    event = rec.event
    if state is None:
        if isinstance(event, ScheduleCreated) and rec.stream == schedule_stream(event.schedule_id):
            return _created(rec, event)
        return None
    if rec.stream != schedule_stream(state.id) or rec.version <= state.version:
        return state
    seen = {"version": rec.version, "last_seq": rec.seq}
    match event:
        case ScheduleTriggered(tick=tick, run_id=run_id):
            newest = state.last_tick is None or tick >= state.last_tick
            return replace(
                state,
                last_tick=tick if newest else state.last_tick,
                last_run_id=(run_id or None) if newest else state.last_run_id,
                fired=state.fired + 1,
                **seen,
            )
        case SchedulePaused():
            return replace(state, paused=not state.deleted, **seen)
        case ScheduleResumed():
            return replace(state, paused=False, **seen)
        case ScheduleDeleted():
            return replace(state, deleted=True, paused=False, **seen)
        case ScheduleCreated():
            return replace(state, **seen)  # a second created cannot change what it is
        case (
            RunCreated()
            | RunStarted()
            | RunSucceeded()
            | RunFailed()
            | RunCancelled()
            | RunCancelRequested()
            | RunCrashed()
            | RunResumed()
            | StepDeclared()
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
            | MetadataLogged()
            | HookStarted()
            | HookSucceeded()
            | HookFailed()
            | ModelVersionCreated()
            | ModelStageSet()
            | ModelArtifactLinked()
            | RunsDeleted()
            | UnknownEvent()
        ):
            return replace(state, **seen)  # not a schedule event: only the version moves
        case _:
            assert_never(event)


def fold_schedule_tail(
    records: Sequence[Recorded], newest_tick: Recorded | None, *, version: int, last_seq: int
) -> ScheduleState | None:
    """A schedule's state from the few records that decide it: equal to folding its stream.

    Exact for streams as the engine writes them, whose invariants it relies on:

    * versions are dense (the writer numbers them, the table is append-only), so the ticks
      fired are the versions after ``schedule.created`` that are not one of ``records``;
    * ticks are claimed in increasing order (a claim is computed after the folded last tick
      and appended at the folded version), so the newest ``schedule.triggered`` carries the
      newest tick and its run;
    * the stream holds only ``schedule.*`` events (nothing else appends to ``schedule:<id>``).

    Args:
        records: every record of the stream but its ``schedule.triggered`` ones, in version
            order (one ``schedule.created``, and the pauses, resumes and deletes).
        newest_tick: the stream's newest ``schedule.triggered``, if any.
        version: the version of the stream's newest record.
        last_seq: the seq of the stream's newest record.

    Returns:
        The state, or None when ``records`` hold no ``schedule.created`` of this stream.
    """
    ordered = sorted(
        [*records, *([] if newest_tick is None else [newest_tick])], key=lambda rec: rec.version
    )
    state: ScheduleState | None = None
    created = 0
    for rec in ordered:
        if state is None:
            state = evolve_schedule(None, rec)
            created = 0 if state is None else state.version
        else:
            state = evolve_schedule(state, rec)
    if state is None:
        return None
    others = sum(1 for rec in records if created < rec.version <= version)
    return replace(state, fired=version - created - others, version=version, last_seq=last_seq)


def fold_schedules(
    records: Iterable[Recorded], into: dict[str, ScheduleState] | None = None
) -> dict[str, ScheduleState]:
    """Fold records (of any streams, in seq order) into ``{schedule id: state}``.

    Records of streams that are not schedules' are skipped. ``into`` is updated in place and
    returned (a new dict when it is None), so a tail can keep folding into the same mapping.
    """
    states = {} if into is None else into
    for rec in records:
        if not rec.stream.startswith(SCHEDULE_STREAM_PREFIX):
            continue
        sid = rec.stream[len(SCHEDULE_STREAM_PREFIX) :]
        new = evolve_schedule(states.get(sid), rec)
        if new is not None:
            states[sid] = new
    return states
