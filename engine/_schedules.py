"""Registering schedules and changing them: ``p.run(schedule=Schedule(...))``, pause, resume,
delete. Every change is an event on the schedule's own stream, ``schedule:<id>``.

Registering (``schedule.created``) records what a service needs to start each run without the
registering process: the pipeline's import path (``module:name``, or the file path of a script),
the call's parameters and the run configuration set with ``with_options`` (as
``PipelineRunConfiguration.to_dict()``). The pipeline is compiled once here, so a missing
parameter or an unknown option fails now, not at 2 AM.

Changes append with ``expected_version`` = the version folded: a pause committed before a
service claims a tick makes that claim fail, so no tick fires after ``pause`` returns.

Schedule names are unique among live schedules (checked when registering; two processes
registering the same name at the same instant may both succeed: then use the id).
"""

from __future__ import annotations

import contextvars
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import projections
from events import (
    AnyEvent,
    ConcurrencyError,
    Recorded,
    ScheduleCreated,
    ScheduleDeleted,
    SchedulePaused,
    ScheduleResumed,
    tag_of,
)

from ._cron import zone_name
from ._log import get_logger
from ._schedule_views import ScheduleView, find_state, last_run_status, read_states, view_of
from ._sync import run_sync
from .errors import ScheduleError

if TYPE_CHECKING:
    from ._engine import Engine
    from ._home import Home
    from ._pipeline import Pipeline
    from .config import Schedule

log = get_logger("evenflow.schedule")
T = TypeVar("T")
Action = Literal["pause", "resume", "delete"]

LOADING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "evenflow_loading_for_schedule", default=False
)
"""True while a service imports a pipeline's module to fire a tick: a module that registers a
schedule at import time (the seed does) must not register it again on every tick."""

_NOT_RECORDED = frozenset({"schedule", "raise_on_failure"})


def as_schedule(value: Any) -> Schedule:
    """A :class:`Schedule` from a Schedule or a mapping of its fields."""
    from .config import Schedule

    if isinstance(value, Schedule):
        return value
    if isinstance(value, Mapping):
        return Schedule.from_dict(value)
    raise ScheduleError(f"schedule must be a Schedule, got {type(value).__name__}: {value!r}")


def _check_code(pipe: Pipeline, code: str) -> None:
    """The service must be able to import the pipeline again from ``code``."""
    where, _, qualname = code.rpartition(":")
    owner = f"pipeline {pipe.name!r} cannot be scheduled"
    if "<" in qualname:
        raise ScheduleError(
            f"{owner}: it is defined inside a function ({code}), so a service cannot import "
            "it again; define it at module level"
        )
    if where.endswith(".py"):
        if not Path(where).is_file():
            raise ScheduleError(f"{owner}: its file {where} does not exist")
        return
    obj: Any = sys.modules.get(where)
    for attr in qualname.split("."):
        obj = getattr(obj, attr, None)
    if getattr(obj, "entrypoint", None) is not pipe.entrypoint:
        raise ScheduleError(
            f"{owner}: {code} does not name it (a service imports the pipeline by that path; "
            "assign the @pipeline to a module-level name equal to its function's name)"
        )


def _run_config(pipe: Pipeline) -> dict[str, Any]:
    """The ``with_options`` run configuration, as ``PipelineRunConfiguration.to_dict()``."""
    from .config import PipelineRunConfiguration

    options = {k: v for k, v in pipe._overrides.items() if k not in _NOT_RECORDED}
    unknown = sorted(set(options) - set(PipelineRunConfiguration._checks))
    if unknown:
        raise ScheduleError(
            f"pipeline {pipe.name!r}: option(s) {unknown} given to with_options() cannot be "
            "recorded with a schedule; set them in @pipeline(...) instead"
        )
    if options.get("config_path"):  # a service may run from another directory
        options["config_path"] = str(Path(options["config_path"]).resolve())
    return PipelineRunConfiguration(**options).to_dict()


def created_event(
    pipe: Pipeline, schedule: Schedule, args: tuple[Any, ...], params: Mapping[str, Any], now: float
) -> ScheduleCreated:
    """Validate a registration and build its ``schedule.created`` (with a new schedule id).

    Raises:
        ScheduleError: the pipeline cannot be imported again, or an option cannot be recorded.
        PipelineDefinitionError, ConfigurationError: the pipeline does not compile with these
            parameters and options.
    """
    from ._code import code_location

    code, root = code_location(pipe.entrypoint)
    _check_code(pipe, code)
    config = _run_config(pipe)
    if pipe._is_dynamic():
        pipe._dynamic_plan(args, params)
    else:
        pipe.compile(*args, **params)  # fails now on a missing or unencodable parameter
    parameters = dict(pipe._signature.bind_partial(*args, **params).arguments)
    schedule_id = str(uuid.uuid4())

    def ts(value: Any) -> float | None:
        return None if value is None else float(value.timestamp())

    return ScheduleCreated(
        schedule_id=schedule_id,
        name=schedule.name or f"{pipe.name}-{schedule_id[:8]}",
        pipeline=pipe.name,
        cron_expression=schedule.cron_expression,
        interval_second=schedule.interval_second,
        run_once_start_time=ts(schedule.run_once_start_time),
        start_time=ts(schedule.start_time),
        end_time=ts(schedule.end_time),
        catchup=schedule.catchup,
        timezone=schedule.timezone or zone_name(schedule.tzinfo),
        parameters=parameters,
        config=config,
        code=code,
        code_root=root,
        created_at=now,
    )


def _applied(state: projections.ScheduleState, seq: int, event: AnyEvent, now: float) -> Any:
    stream = projections.schedule_stream(state.id)
    rec = Recorded(seq, stream, state.version + 1, tag_of(event), now, event)
    return projections.evolve_schedule(state, rec)


async def register(
    engine: Engine,
    pipe: Pipeline,
    schedule: Schedule,
    args: tuple[Any, ...] = (),
    params: Mapping[str, Any] | None = None,
) -> ScheduleView:
    """Register ``pipe`` to run on ``schedule`` with these parameters; returns its view.

    Raises:
        ScheduleError: the name is taken, or see :func:`created_event`.
    """
    now = engine.clock.now()
    event = created_event(pipe, schedule, args, dict(params or {}), now)
    states = await engine.store.run_read(read_states)
    if any(s.name == event.name and not s.deleted for s in states.values()):
        raise ScheduleError(
            f"a schedule named {event.name!r} already exists in {engine.home.db}; pick another "
            f"name or delete it first (evenflow schedule delete {event.name})"
        )
    stream = projections.schedule_stream(event.schedule_id)
    seqs = await engine.store.append(stream, [event], expected_version=0)
    state = projections.evolve_schedule(
        None, Recorded(seqs[0], stream, 1, tag_of(event), now, event)
    )
    assert state is not None
    log.info("schedule_created", schedule=event.name, pipeline=pipe.name, code=event.code)
    return view_of(state, now)


async def change(engine: Engine, ref: str, action: Action) -> ScheduleView:
    """Pause, resume or delete the live schedule named (or with id or id prefix) ``ref``.

    Pausing a paused schedule, or resuming an active one, changes nothing.

    Raises:
        ScheduleNotFoundError: no live schedule matches ``ref``.
    """
    for _ in range(50):
        state = find_state(await engine.store.run_read(read_states), ref, engine.home.db)
        now = engine.clock.now()
        event: AnyEvent
        if action == "pause":
            event = SchedulePaused(schedule_id=state.id)
        elif action == "resume":
            event = ScheduleResumed(schedule_id=state.id)
        else:
            event = ScheduleDeleted(schedule_id=state.id)
        if (action == "pause" and state.paused) or (action == "resume" and not state.paused):
            new = state
        else:
            stream = projections.schedule_stream(state.id)
            try:
                seqs = await engine.store.append(stream, [event], expected_version=state.version)
            except ConcurrencyError:
                continue  # a service fired a tick meanwhile: fold again and decide again
            new = _applied(state, seqs[0], event, now)
            log.info(f"schedule_{action}d", schedule=state.name)
        status = await engine.store.run_read(last_run_status, new.last_run_id)
        return view_of(new, now, status)
    raise ScheduleError(f"schedule {ref!r}: could not {action} it (too many concurrent changes)")


def register_sync(
    pipe: Pipeline, schedule: Any, args: tuple[Any, ...], params: Mapping[str, Any]
) -> ScheduleView | None:
    """``p.run(schedule=...)``: register on the default home. Returns None, registering
    nothing, while a service imports the pipeline's module to fire one of its ticks."""
    if LOADING.get():
        log.debug("schedule_registration_skipped", pipeline=pipe.name)
        return None
    from ._engine import Engine

    checked = as_schedule(schedule)

    async def go() -> ScheduleView:
        async with Engine.open() as engine:
            return await register(engine, pipe, checked, args, params)

    return run_sync(go)


def change_sync(home: Home, ref: str, action: Action) -> ScheduleView:
    """:func:`change` on the home at ``home`` (the Client and the CLI)."""
    from ._engine import Engine
    from .errors import ScheduleNotFoundError

    if not home.db.exists():
        raise ScheduleNotFoundError(f"no schedule {ref!r}: {home.db} does not exist")

    async def go() -> ScheduleView:
        async with Engine.open(home.root) as engine:
            return await change(engine, ref, action)

    return run_sync(go)


__all__ = [
    "LOADING",
    "as_schedule",
    "change",
    "change_sync",
    "created_event",
    "register",
    "register_sync",
]
