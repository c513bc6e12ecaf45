"""Tick maths for schedules: when a cron, interval or run-once schedule fires. Pure functions.

A *tick* is an instant (UTC epoch seconds) at which a schedule is due. The ticks of a schedule:

* cron: every instant croniter yields for the expression, evaluated in the schedule's time
  zone (an IANA name; "" means the local zone of the machine evaluating it). Daylight saving
  time is handled as croniter handles it: a wall-clock time that does not exist (spring
  forward) fires at the first instant after the gap (02:30 -> 03:00), and a wall-clock time
  that happens twice (fall back) fires both times.
* interval: ``anchor + k * interval_second`` for k = 0, 1, ..., where the anchor is
  ``start_time``, else the time the schedule was registered (so it first fires at once).
* run-once: ``run_once_start_time`` only.

Every tick lies in the window ``[lower, end_time]``: ``lower`` is ``start_time``, else the
registration time (a cron schedule without ``start_time`` never fires for a time before it
existed); a run-once tick is its own lower bound. Ticks before the registration time but after
``start_time`` count as missed, as in Airflow, so ``start_time=now()`` fires at once. A window
that closed before the schedule was registered has no tick at all. A schedule whose end time
has passed is finished once its last tick in the window has fired (a tick missed during a
downtime just before the end still fires, as catchup says).

Which ticks are due at ``now``, given the newest tick already fired (:func:`due_ticks`): every
tick in ``(last fired, now]`` (from ``lower`` when none fired) with ``catchup=True``, oldest
first; only the newest of them with ``catchup=False``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from projections import ScheduleState

_EPSILON = 1e-6  # croniter starts strictly after its start time; step back this much first


@dataclass(frozen=True, slots=True)
class TickSpec:
    """What tick maths needs of a schedule (exactly one of the three kinds is set)."""

    cron_expression: str | None = None
    interval_second: float | None = None
    run_once_start_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    created_at: float = 0.0
    catchup: bool = False
    timezone: str = ""

    @classmethod
    def of(cls, state: ScheduleState) -> TickSpec:
        """The tick spec of a folded schedule."""
        return cls(
            cron_expression=state.cron_expression,
            interval_second=state.interval_second,
            run_once_start_time=state.run_once_start_time,
            start_time=state.start_time,
            end_time=state.end_time,
            created_at=state.created_at,
            catchup=state.catchup,
            timezone=state.timezone,
        )

    @property
    def lower(self) -> float:
        """The earliest instant a tick may be at."""
        if self.run_once_start_time is not None:
            return self.run_once_start_time
        return self.start_time if self.start_time is not None else self.created_at

    def zone(self) -> dt.tzinfo:
        """The zone cron is evaluated in."""
        from ._schedule_config import _local_zone

        if not self.timezone:
            return _local_zone()
        from zoneinfo import ZoneInfo

        try:
            return ZoneInfo(self.timezone)
        except (LookupError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
            from .errors import ScheduleError

            raise ScheduleError(
                f"time zone {self.timezone!r} is not known on this machine, so the schedule's "
                "ticks cannot be computed here; install the tzdata package (pip install tzdata) "
                "or register the schedule again with another timezone"
            ) from exc

    @property
    def empty(self) -> bool:
        """Whether the window closed before the schedule was registered (no tick at all)."""
        return self.end_time is not None and self.end_time < self.created_at

    def _in_window(self, tick: float | None) -> float | None:
        if tick is None or (self.end_time is not None and tick > self.end_time):
            return None
        return tick


def zone_name(zone: dt.tzinfo) -> str:
    """The IANA name to record for ``zone`` ("" when it has none, e.g. a fixed offset)."""
    key = getattr(zone, "key", None)
    return key if isinstance(key, str) else ""


def _cron_next(spec: TickSpec, after: float) -> float:
    from croniter import croniter

    zone = spec.zone()
    start = dt.datetime.fromtimestamp(after, zone)
    it = croniter(spec.cron_expression, start)
    while True:
        tick = float(it.get_next(dt.datetime).timestamp())
        if tick > after:
            return tick


def _cron_prev(spec: TickSpec, at: float) -> float:
    """The newest cron tick <= ``at``."""
    from croniter import croniter

    zone = spec.zone()
    it = croniter(spec.cron_expression, dt.datetime.fromtimestamp(at + 1.0, zone))
    while True:
        tick = float(it.get_prev(dt.datetime).timestamp())
        if tick <= at:
            return tick


def next_tick(spec: TickSpec, after: float | None) -> float | None:
    """The first tick strictly after ``after`` (the first tick at all when None), or None when
    there is none left in the window."""
    if spec.empty:
        return None
    lower = spec.lower
    floor = lower - _EPSILON if after is None or after < lower else after
    if spec.run_once_start_time is not None:
        once = spec.run_once_start_time
        return spec._in_window(once if once > floor else None)
    if spec.interval_second is not None:
        step = spec.interval_second
        if floor < lower:
            return spec._in_window(lower)
        k = math.floor((floor - lower) / step) + 1
        tick = lower + k * step
        while tick <= floor:  # float rounding
            k += 1
            tick = lower + k * step
        return spec._in_window(tick)
    return spec._in_window(_cron_next(spec, floor))


def prev_tick(spec: TickSpec, at: float) -> float | None:
    """The newest tick at or before ``at`` that lies in the window, or None."""
    if spec.empty:
        return None
    lower = spec.lower
    if spec.end_time is not None and at > spec.end_time:
        at = spec.end_time
    if at < lower:
        return None
    if spec.run_once_start_time is not None:
        return spec.run_once_start_time
    if spec.interval_second is not None:
        k = math.floor((at - lower) / spec.interval_second)
        tick = lower + k * spec.interval_second
        while tick > at and k > 0:  # float rounding
            k -= 1
            tick = lower + k * spec.interval_second
        return tick if tick <= at else None
    tick = _cron_prev(spec, at)
    return tick if tick >= lower else None


def ticks_between(spec: TickSpec, after: float | None, until: float) -> list[float]:
    """Every tick in ``(after, until]`` (``[lower, until]`` when ``after`` is None), oldest
    first."""
    out: list[float] = []
    tick = next_tick(spec, after)
    while tick is not None and tick <= until:
        out.append(tick)
        tick = next_tick(spec, tick)
    return out


def due_ticks(spec: TickSpec, last_fired: float | None, now: float) -> list[float]:
    """The ticks to fire at ``now`` when ``last_fired`` is the newest tick already fired.

    ``catchup=True``: every tick in ``(last_fired, now]``, oldest first. ``catchup=False``:
    only the newest of them (the others were missed and stay skipped).
    """
    if not spec.catchup:
        newest = prev_tick(spec, now)
        if newest is None or (last_fired is not None and newest <= last_fired):
            return []
        return [newest]
    return ticks_between(spec, last_fired, now)


def first_due(spec: TickSpec, last_fired: float | None, now: float) -> float | None:
    """``due_ticks(spec, last_fired, now)[0]`` (None when nothing is due), without listing
    the others: after a long downtime with ``catchup=True`` there may be thousands, and a
    service fires them one claim at a time."""
    if not spec.catchup:
        due = due_ticks(spec, last_fired, now)
        return due[0] if due else None
    tick = next_tick(spec, last_fired)
    return tick if tick is not None and tick <= now else None


def upcoming(spec: TickSpec, last_fired: float | None, now: float) -> float | None:
    """When the schedule fires next: its oldest due tick when it is overdue (a service will
    fire it as soon as it runs), else the first tick after ``now``; None when finished."""
    due = first_due(spec, last_fired, now)
    if due is not None:
        return due
    return next_tick(spec, max(now, last_fired) if last_fired is not None else now)


__all__ = [
    "TickSpec",
    "due_ticks",
    "first_due",
    "next_tick",
    "prev_tick",
    "ticks_between",
    "upcoming",
    "zone_name",
]
