"""What users see of a schedule (:class:`ScheduleView`), and reading schedules from a home.

A schedule's state is its own stream folded (``projections.evolve_schedule``), read from the
stream's tail (``projections.fold_schedule_tail``): a stream gains one ``schedule.triggered``
per fired tick, so reading costs a few indexed queries per schedule, not one decoded row per
tick ever fired. The view adds what depends on the time it is looked at: its status and when it
fires next. Its last run's status comes from the runs projection.

Statuses: ``active`` (will fire), ``paused``, ``finished`` (no tick left: its end time has
passed, or its run-once tick has fired), ``deleted``, and ``error`` (its ticks cannot be
computed on this machine, e.g. its time zone is unknown here; ``evenflow serve`` logs why).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import projections
from events import COLD_TYPES, Recorded, decode

from ._cron import TickSpec, upcoming
from .enums import ExecutionStatus
from .errors import ScheduleError, ScheduleNotFoundError

_COLUMNS = "seq, stream, version, type, recorded_at, payload, hash"
_PREFIX = "schedule."
_END = "schedule.\U0010ffff"
_TICK = "schedule.triggered"
# Every schedule event but the ticks: two ranges of the events_by_type index, on either side of
# schedule.triggered (created, paused, resumed, deleted: a few rows per schedule).
_NOT_TICKS = (
    f"SELECT {_COLUMNS} FROM events WHERE type >= ? AND type < ? AND {COLD_TYPES} UNION ALL "
    f"SELECT {_COLUMNS} FROM events WHERE type > ? AND type < ? AND {COLD_TYPES} ORDER BY seq"
)
_HEAD = f"SELECT {_COLUMNS} FROM events WHERE stream = ? ORDER BY version DESC LIMIT 1"
# ``+type`` keeps SQLite on UNIQUE(stream, version), walking down from the stream's head (past
# a few pauses or resumes at most), instead of the type index (every tick of every schedule).
_NEWEST_TICK = (
    f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND +type = ? ORDER BY version DESC LIMIT 1"
)
_WHOLE_STREAM = (
    f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND +type >= ? AND +type < ? ORDER BY version"
)


def _utc(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)


@dataclass(frozen=True, slots=True)
class ScheduleView:
    """A registered schedule (``Client().get_schedule(name)``). Datetimes are aware UTC.

    Attributes:
        id: the schedule's id (its events are on stream ``schedule:<id>``).
        name: its unique name.
        pipeline_name: the pipeline it runs.
        code: how the pipeline is imported when a tick fires (``module:name`` or a file path).
        cron_expression, interval_second, run_once_start_time: what kind of schedule it is.
        start_time, end_time: the window its ticks fall in.
        catchup: whether every missed tick runs after a downtime (else only the newest).
        timezone: the zone cron is evaluated in ("" = the serving machine's local zone).
        parameters, config: what each run gets (parameters and run configuration).
        created: when it was registered.
        status: ``active``, ``paused``, ``finished``, ``deleted`` or ``error``.
        next_fire_time: when it fires next (in the past when overdue: the next ``serve`` fires
            it at once); None unless active.
        last_tick: the newest tick fired; last_run_id and last_run_status: its run.
        fired: how many ticks have fired.
    """

    id: str
    name: str
    pipeline_name: str
    code: str
    cron_expression: str | None
    interval_second: float | None
    run_once_start_time: dt.datetime | None
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    catchup: bool
    timezone: str
    parameters: Mapping[str, Any]
    config: Mapping[str, Any]
    created: dt.datetime
    status: str
    next_fire_time: dt.datetime | None
    last_tick: dt.datetime | None
    last_run_id: str | None
    last_run_status: ExecutionStatus | None
    fired: int

    @property
    def active(self) -> bool:
        """Whether the schedule will fire (ZenML's ``active``)."""
        return self.status == "active"

    @property
    def expression(self) -> str:
        """A short description: the cron expression, ``every 30s`` or ``once at <time>``."""
        if self.cron_expression is not None:
            return self.cron_expression
        if self.interval_second is not None:
            return f"every {self.interval_second:g}s"
        assert self.run_once_start_time is not None
        return f"once at {self.run_once_start_time.isoformat()}"


def schedule_status(state: projections.ScheduleState, now: float) -> tuple[str, float | None]:
    """``(status, next fire time)`` of a schedule at ``now``."""
    if state.deleted:
        return "deleted", None
    if state.paused:
        return "paused", None
    try:
        when = upcoming(TickSpec.of(state), state.last_tick, now)
    except ScheduleError:  # e.g. its time zone is unknown here: list it anyway
        return "error", None
    return ("finished", None) if when is None else ("active", when)


def view_of(
    state: projections.ScheduleState, now: float, last_run_status: str | None = None
) -> ScheduleView:
    """The view of a folded schedule at time ``now``."""
    status, when = schedule_status(state, now)
    return ScheduleView(
        id=state.id,
        name=state.name,
        pipeline_name=state.pipeline,
        code=state.code,
        cron_expression=state.cron_expression,
        interval_second=state.interval_second,
        run_once_start_time=_utc(state.run_once_start_time),
        start_time=_utc(state.start_time),
        end_time=_utc(state.end_time),
        catchup=state.catchup,
        timezone=state.timezone,
        parameters=dict(state.parameters),
        config=dict(state.config),
        created=_utc(state.created_at) or dt.datetime.fromtimestamp(0, dt.UTC),
        status=status,
        next_fire_time=_utc(when),
        last_tick=_utc(state.last_tick),
        last_run_id=state.last_run_id,
        last_run_status=None if last_run_status is None else ExecutionStatus(last_run_status),
        fired=state.fired,
    )


def _record(row: tuple[Any, ...]) -> Recorded:
    return Recorded(row[0], row[1], row[2], row[3], row[4], decode(row[5]), row[6])


def _tail_state(
    conn: sqlite3.Connection, schedule_id: str, records: list[Recorded]
) -> projections.ScheduleState:
    """The state of a schedule from ``records`` (its stream's events but the ticks) and the
    stream's tail: its head row and its newest tick (one or two indexed queries)."""
    stream = projections.schedule_stream(schedule_id)
    head = conn.execute(_HEAD, (stream,)).fetchone()
    state: projections.ScheduleState | None
    if _PREFIX <= head[3] < _END:
        tick = head if head[3] == _TICK else conn.execute(_NEWEST_TICK, (stream, _TICK)).fetchone()
        state = projections.fold_schedule_tail(
            records,
            None if tick is None else _record(tick),
            version=head[2],
            last_seq=head[0],
        )
    else:  # something else was appended to the stream: fold it whole, as it always was
        rows = conn.execute(_WHOLE_STREAM, (stream, _PREFIX, _END)).fetchall()
        state = projections.fold_schedules(map(_record, rows)).get(schedule_id)
    assert state is not None  # records hold its schedule.created
    return state


def read_states(conn: sqlite3.Connection) -> dict[str, projections.ScheduleState]:
    """Every schedule of the database, as folding its ``schedule.*`` events would give.

    Reads the events that are not ticks (a few per schedule), then each stream's head and
    newest tick, so the cost does not grow with the ticks fired. Schedules come in the order
    of their ``schedule.created``, as a fold of the whole log would meet them.
    """
    rows = conn.execute(_NOT_TICKS, (_PREFIX, _TICK, _TICK, _END)).fetchall()
    records = [_record(row) for row in rows]
    by_stream: dict[str, list[Recorded]] = {}
    for rec in records:
        by_stream.setdefault(rec.stream, []).append(rec)
    created = projections.fold_schedules(records)  # ignores ticks: only which schedules exist
    return {
        sid: _tail_state(conn, sid, by_stream[projections.schedule_stream(sid)]) for sid in created
    }


def find_state(
    states: Mapping[str, projections.ScheduleState], ref: str, where: object = "this home"
) -> projections.ScheduleState:
    """The live (not deleted) schedule whose id, name or id prefix (8+ characters) is ``ref``.

    Raises:
        ScheduleNotFoundError: nothing matches, or a prefix matches several schedules.
    """
    live = [s for s in states.values() if not s.deleted]
    exact = [s for s in live if ref in (s.id, s.name)]
    if len(exact) == 1:
        return exact[0]
    matches = exact or (
        [s for s in live if s.id.startswith(ref)] if len(ref) >= projections.MIN_PREFIX else []
    )
    if not matches:
        known = ", ".join(sorted(s.name for s in live)) or "none"
        raise ScheduleNotFoundError(
            f"no schedule named {ref!r} (or with that id) in {where}; schedules: {known}"
        )
    if len(matches) > 1:
        ids = ", ".join(s.id for s in matches[:5])
        raise ScheduleNotFoundError(f"{ref!r} matches {len(matches)} schedules ({ids})")
    return matches[0]


def last_run_status(conn: sqlite3.Connection, run_id: str | None) -> str | None:
    """The status of a schedule's last run (None when it has none, or it has not started)."""
    if run_id is None:
        return None
    run = projections.get_run(conn, run_id)
    return None if run is None else str(run.status.value)


def views_from(
    conn: sqlite3.Connection,
    now: float,
    *,
    pipeline: str | None = None,
    include_deleted: bool = False,
) -> list[ScheduleView]:
    """Schedules of the database as views, oldest first."""
    states = sorted(read_states(conn).values(), key=lambda s: (s.created_at, s.name))
    return [
        view_of(state, now, last_run_status(conn, state.last_run_id))
        for state in states
        if (include_deleted or not state.deleted) and (pipeline in (None, state.pipeline))
    ]


__all__ = [
    "ScheduleView",
    "find_state",
    "last_run_status",
    "read_states",
    "schedule_status",
    "view_of",
    "views_from",
]
