"""Tick maths (cron, interval, run-once, windows, catchup, time zones, DST) and the schedule
reducer. Pure functions: no store, no clock."""

from __future__ import annotations

import datetime as dt

import pytest

from engine._cron import (
    TickSpec,
    due_ticks,
    first_due,
    next_tick,
    prev_tick,
    ticks_between,
    upcoming,
)
from events import (
    Recorded,
    RunCreated,
    ScheduleCreated,
    ScheduleDeleted,
    SchedulePaused,
    ScheduleResumed,
    ScheduleTriggered,
    tag_of,
)
from projections import ScheduleState, evolve_schedule, fold_schedules, schedule_stream

UTC = dt.UTC


def ts(*args: int, tz: dt.tzinfo = UTC) -> float:
    return dt.datetime(*args, tzinfo=tz).timestamp()  # type: ignore[misc]


def cron(expr: str, created: float, **kw: object) -> TickSpec:
    return TickSpec(cron_expression=expr, created_at=created, timezone="UTC", **kw)  # type: ignore[arg-type]


# -- cron ------------------------------------------------------------------------------------


def test_cron_next_tick_is_strictly_after_and_the_first_is_not_before_registration() -> None:
    spec = cron("0 2 * * *", created=ts(2024, 1, 1, 12))
    assert next_tick(spec, None) == ts(2024, 1, 2, 2)  # 2 AM on Jan 1 was before it existed
    assert next_tick(spec, ts(2024, 1, 2, 2)) == ts(2024, 1, 3, 2)
    assert next_tick(spec, ts(2024, 1, 2, 1, 59)) == ts(2024, 1, 2, 2)


def test_cron_registered_exactly_on_a_tick_fires_it() -> None:
    spec = cron("*/5 * * * *", created=ts(2024, 1, 1, 0, 10))
    assert next_tick(spec, None) == ts(2024, 1, 1, 0, 10)


def test_cron_is_evaluated_in_the_schedule_time_zone() -> None:
    spec = TickSpec(cron_expression="0 2 * * *", created_at=ts(2024, 1, 1), timezone="Asia/Tokyo")
    # 02:00 in Tokyo (UTC+9) is 17:00 UTC the day before.
    assert next_tick(spec, None) == ts(2024, 1, 1, 17)


def test_cron_daylight_saving_time_follows_croniter() -> None:
    berlin = "Europe/Berlin"
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(berlin)
    spring = TickSpec(cron_expression="30 2 * * *", created_at=ts(2024, 3, 30, 12), timezone=berlin)
    # 02:30 does not exist on 2024-03-31 (clocks jump 02:00 -> 03:00): it fires at 03:00.
    assert next_tick(spring, None) == ts(2024, 3, 31, 3, 0, tz=zone)
    autumn = TickSpec(
        cron_expression="30 2 * * *", created_at=ts(2024, 10, 26, 12), timezone=berlin
    )
    # 02:30 happens twice on 2024-10-27 (CEST, then CET): it fires both times, an hour apart.
    first = next_tick(autumn, None)
    second = next_tick(autumn, first)
    assert first is not None
    assert second is not None
    assert second - first == 3600
    assert dt.datetime.fromtimestamp(first, zone).strftime("%H:%M") == "02:30"


def test_cron_window_start_and_end_are_inclusive() -> None:
    spec = cron(
        "0 * * * *",
        created=ts(2024, 1, 1),
        start_time=ts(2024, 1, 1, 3),
        end_time=ts(2024, 1, 1, 5),
    )
    assert ticks_between(spec, None, ts(2024, 1, 2)) == [
        ts(2024, 1, 1, 3),
        ts(2024, 1, 1, 4),
        ts(2024, 1, 1, 5),
    ]
    assert next_tick(spec, ts(2024, 1, 1, 5)) is None
    assert prev_tick(spec, ts(2024, 1, 9)) == ts(2024, 1, 1, 5)
    assert prev_tick(spec, ts(2024, 1, 1, 2, 59)) is None


# -- interval and run-once -------------------------------------------------------------------


def test_interval_ticks_from_registration_then_every_interval() -> None:
    created = 1_000.0
    spec = TickSpec(interval_second=60.0, created_at=created)
    assert next_tick(spec, None) == created  # fires at once
    assert next_tick(spec, created) == created + 60
    assert next_tick(spec, created + 59.5) == created + 60
    assert ticks_between(spec, created, created + 200) == [
        created + 60,
        created + 120,
        created + 180,
    ]
    assert prev_tick(spec, created + 179.9) == created + 120
    assert prev_tick(spec, created - 1) is None


def test_interval_is_anchored_on_start_time() -> None:
    spec = TickSpec(interval_second=10.0, created_at=100.0, start_time=205.0, end_time=230.0)
    assert ticks_between(spec, None, 1_000.0) == [205.0, 215.0, 225.0]


def test_interval_with_a_fractional_period_never_returns_a_tick_at_or_before_after() -> None:
    spec = TickSpec(interval_second=0.1, created_at=0.0)
    tick: float | None = 0.0
    for _ in range(1000):
        assert tick is not None
        following = next_tick(spec, tick)
        assert following is not None
        assert following > tick
        tick = following


def test_run_once_has_one_tick_even_when_registered_late() -> None:
    spec = TickSpec(run_once_start_time=500.0, created_at=600.0)
    assert next_tick(spec, None) == 500.0
    assert next_tick(spec, 500.0) is None
    assert due_ticks(spec, None, 400.0) == []
    assert due_ticks(spec, None, 700.0) == [500.0]
    assert due_ticks(spec, 500.0, 700.0) == []


# -- catchup ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("catchup", "expected"),
    [(True, [160.0, 220.0, 280.0]), (False, [280.0])],
)
def test_due_ticks_after_a_downtime(catchup: bool, expected: list[float]) -> None:
    spec = TickSpec(interval_second=60.0, created_at=100.0, catchup=catchup)
    # ticks 100, 160, 220, 280, 340; 100 was fired, then nothing until t=300
    assert due_ticks(spec, 100.0, 300.0) == expected
    assert due_ticks(spec, 280.0, 300.0) == []


def test_catchup_counts_ticks_since_start_time_before_registration() -> None:
    spec = TickSpec(interval_second=60.0, created_at=200.0, start_time=0.0, catchup=True)
    assert due_ticks(spec, None, 200.0) == [0.0, 60.0, 120.0, 180.0]
    no_catchup = TickSpec(interval_second=60.0, created_at=200.0, start_time=0.0)
    assert due_ticks(no_catchup, None, 200.0) == [180.0]


@pytest.mark.parametrize("catchup", [True, False])
@pytest.mark.parametrize("last", [None, 100.0, 220.0, 280.0, 400.0])
def test_first_due_is_the_first_of_due_ticks(catchup: bool, last: float | None) -> None:
    spec = TickSpec(interval_second=60.0, created_at=100.0, end_time=350.0, catchup=catchup)
    for now in (50.0, 100.0, 159.0, 300.0, 1_000.0):
        due = due_ticks(spec, last, now)
        assert first_due(spec, last, now) == (due[0] if due else None)


def test_a_long_catchup_backlog_costs_one_tick_not_all_of_them() -> None:
    # Five years of minutely ticks missed: listing them all takes minutes (the service used to
    # list them again for every claim, and `schedule list` once per schedule).
    now = ts(2024, 1, 1)
    spec = cron("* * * * *", created=now, start_time=ts(2019, 1, 1), catchup=True)
    assert first_due(spec, None, now) == ts(2019, 1, 1)
    assert first_due(spec, ts(2019, 1, 1), now) == ts(2019, 1, 1, 0, 1)
    assert upcoming(spec, ts(2019, 1, 1), now) == ts(2019, 1, 1, 0, 1)


def test_upcoming_is_the_overdue_tick_or_the_next_one_or_none_when_finished() -> None:
    spec = TickSpec(interval_second=60.0, created_at=100.0, end_time=250.0)
    assert upcoming(spec, 100.0, 130.0) == 160.0
    assert upcoming(spec, 100.0, 170.0) == 160.0  # overdue: the next serve fires it at once
    assert upcoming(spec, 220.0, 300.0) is None  # the end time has passed: finished


# -- the reducer -----------------------------------------------------------------------------


def _rec(version: int, event: object, sid: str = "s1", seq: int | None = None) -> Recorded:
    return Recorded(
        seq or version,
        schedule_stream(sid),
        version,
        tag_of(event),
        10.0 * version,
        event,  # type: ignore[arg-type]
    )


def _created(sid: str = "s1") -> ScheduleCreated:
    return ScheduleCreated(
        schedule_id=sid,
        name="nightly",
        pipeline="p",
        interval_second=60.0,
        code="pkg.mod:p",
        code_root="/srv/project",
        created_at=5.0,
        parameters={"n": 1},
    )


def test_reducer_folds_a_schedule_stream() -> None:
    state = evolve_schedule(None, _rec(1, _created()))
    assert state is not None
    assert (state.name, state.code, state.code_root, state.created_at, state.version) == (
        "nightly",
        "pkg.mod:p",
        "/srv/project",
        5.0,
        1,
    )
    state = evolve_schedule(
        state, _rec(2, ScheduleTriggered(schedule_id="s1", tick=60.0, run_id="r1"))
    )
    state = evolve_schedule(state, _rec(3, SchedulePaused(schedule_id="s1")))
    assert state is not None
    assert (state.last_tick, state.last_run_id, state.fired, state.paused) == (60.0, "r1", 1, True)
    state = evolve_schedule(state, _rec(4, ScheduleResumed(schedule_id="s1")))
    assert state is not None
    assert not state.paused
    state = evolve_schedule(state, _rec(5, ScheduleDeleted(schedule_id="s1")))
    assert state is not None
    assert state.deleted
    assert state.version == 5


def test_reducer_is_idempotent_and_ignores_other_streams() -> None:
    state = evolve_schedule(None, _rec(1, _created()))
    trigger = _rec(2, ScheduleTriggered(schedule_id="s1", tick=60.0, run_id="r1"))
    once = evolve_schedule(state, trigger)
    assert evolve_schedule(once, trigger) is once  # delivered twice: folded once
    assert once is not None
    assert once.fired == 1
    other = Recorded(9, "run-1", 1, "run.created", 1.0, RunCreated(pipeline="p", run_name="r"))
    assert evolve_schedule(once, other) is once
    assert evolve_schedule(None, other) is None


def test_fold_schedules_keeps_one_state_per_stream() -> None:
    records = [
        _rec(1, _created("a"), sid="a", seq=1),
        _rec(1, _created("b"), sid="b", seq=2),
        _rec(2, SchedulePaused(schedule_id="b"), sid="b", seq=3),
        Recorded(4, "run-1", 1, "run.created", 1.0, RunCreated(pipeline="p", run_name="r")),
    ]
    states = fold_schedules(records)
    assert set(states) == {"a", "b"}
    assert isinstance(states["a"], ScheduleState)
    assert not states["a"].paused
    assert states["b"].paused


def test_a_window_that_closed_before_registration_has_no_tick() -> None:
    spec = TickSpec(interval_second=60.0, created_at=1_000.0, start_time=0.0, end_time=500.0)
    assert next_tick(spec, None) is None
    assert due_ticks(spec, None, 2_000.0) == []
    assert upcoming(spec, None, 2_000.0) is None


def test_a_tick_missed_just_before_the_end_still_fires_after_a_downtime() -> None:
    spec = TickSpec(interval_second=60.0, created_at=0.0, end_time=130.0)
    assert due_ticks(spec, 60.0, 1_000.0) == [120.0]
    assert upcoming(spec, 120.0, 1_000.0) is None
