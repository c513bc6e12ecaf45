"""Reading schedules from their streams' tails: the same states as a fold of every schedule
event, for work that does not grow with the ticks fired (loading states, ``schedule list``,
starting a service, finding claims without a run)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import events._codec
from engine import Client, Schedule
from engine._cli import app
from engine._engine import Engine
from engine._retry import FakeClock
from engine._schedule_views import read_states
from engine._schedules import register
from engine._serve import _RECENT, ScheduleService, _orphan_claims
from events import (
    AnyEvent,
    Recorded,
    RunCreated,
    ScheduleCreated,
    ScheduleDeleted,
    SchedulePaused,
    ScheduleResumed,
    ScheduleTriggered,
    UnknownEvent,
    decode,
    encode,
    tag_of,
)
from events._schema import DDL
from projections import fold_schedules, schedule_stream
from tests.pipelines.scheduled import nightly

T0 = 1_700_000_000.0
TICKS = 20_000


def full_fold(conn: sqlite3.Connection) -> dict[str, Any]:
    """What ``read_states`` computed before it read tails: every ``schedule.*`` event, folded."""
    rows = conn.execute(
        "SELECT seq, stream, version, type, recorded_at, payload, hash FROM events "
        "WHERE type >= 'schedule.' AND type < 'schedule.\U0010ffff' ORDER BY seq"
    ).fetchall()
    return fold_schedules(Recorded(r[0], r[1], r[2], r[3], r[4], decode(r[5]), r[6]) for r in rows)


def log_of(appends: list[tuple[str, AnyEvent]]) -> sqlite3.Connection:
    """An events table holding ``appends`` in order, versions numbered per stream as the
    store's writer numbers them."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(DDL)
    versions: dict[str, int] = {}
    for seq, (stream, event) in enumerate(appends, start=1):
        versions[stream] = versions.get(stream, 0) + 1
        conn.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, stream, versions[stream], tag_of(event), T0 + seq, encode(event), b""),
        )
    return conn


def created(sid: str, **kw: Any) -> ScheduleCreated:
    return ScheduleCreated(
        schedule_id=sid, name=f"n-{sid}", pipeline="p", interval_second=1.0, **kw
    )


# -- the same states as the full fold ----------------------------------------------------------

SIDS = ["a", "b", "c"]


@st.composite
def schedule_logs(draw: st.DrawFn) -> list[tuple[str, AnyEvent]]:
    """Interleaved schedule streams as the engine writes them: ``schedule.created`` first, then
    pauses, resumes, deletes and ticks in increasing order (equal ticks too, and empty run
    ids), plus what a later release may add (an unknown ``schedule.*`` type, a second
    ``schedule.created``) and events of other streams."""
    appends: list[tuple[str, AnyEvent]] = []
    live = draw(st.lists(st.sampled_from(SIDS), min_size=1, max_size=3, unique=True))
    ticks = dict.fromkeys(live, T0)
    started: list[str] = []
    for _ in range(draw(st.integers(min_value=0, max_value=40))):
        sid = draw(st.sampled_from(live))
        stream = schedule_stream(sid)
        if sid not in started:
            started.append(sid)
            appends.append((stream, created(sid, created_at=draw(st.sampled_from([None, T0])))))
            continue
        kind = draw(st.sampled_from(["tick", "tick", "tick", "pause", "resume", "delete", "other"]))
        event: AnyEvent
        if kind == "tick":
            ticks[sid] += draw(st.sampled_from([0.0, 1.0, 60.0]))
            run_id = draw(st.sampled_from(["", f"run-{len(appends)}"]))
            event = ScheduleTriggered(schedule_id=sid, tick=ticks[sid], run_id=run_id)
        elif kind == "pause":
            event = SchedulePaused(schedule_id=sid)
        elif kind == "resume":
            event = ScheduleResumed(schedule_id=sid)
        elif kind == "delete":
            event = ScheduleDeleted(schedule_id=sid)
        else:
            event = draw(
                st.sampled_from(
                    [
                        UnknownEvent(type="schedule.renamed", data={"schedule_id": sid}),
                        created(sid),
                        created("someone-else"),
                    ]
                )
            )
        appends.append((stream, event))
        if draw(st.booleans()):
            appends.append((f"run-{len(appends)}", RunCreated(pipeline="p", run_name="r")))
    return appends


@settings(max_examples=300, deadline=None)
@given(schedule_logs())
def test_tail_read_states_equal_the_full_fold(appends: list[tuple[str, AnyEvent]]) -> None:
    conn = log_of(appends)
    expected = full_fold(conn)
    # every field of every state, and the order schedules are met in
    assert list(read_states(conn).items()) == list(expected.items())


@pytest.mark.parametrize(
    ("tail", "fields"),
    [
        pytest.param([], {"fired": 0, "last_tick": None, "version": 1}, id="never-fired"),
        pytest.param(
            [SchedulePaused(schedule_id="a"), ("tick", T0), ("tick", T0 + 1)],
            {"paused": True, "fired": 2, "last_tick": T0 + 1, "version": 4},
            id="ticks-after-a-pause",
        ),
        pytest.param(
            [("tick", T0), SchedulePaused(schedule_id="a"), ScheduleResumed(schedule_id="a")],
            {"paused": False, "fired": 1, "last_tick": T0, "last_run_id": "r2", "version": 4},
            id="resumed-after-the-newest-tick",
        ),
        pytest.param(
            [("tick", T0), ScheduleDeleted(schedule_id="a"), SchedulePaused(schedule_id="a")],
            {"deleted": True, "paused": False, "fired": 1},
            id="paused-after-delete",
        ),
        pytest.param(
            [("tick", T0), RunCreated(pipeline="p", run_name="r")],
            {"fired": 1, "version": 2},
            id="a-non-schedule-event-at-the-head",
        ),
    ],
)
def test_tail_read_table(tail: list[Any], fields: dict[str, Any]) -> None:
    stream = schedule_stream("a")
    appends: list[tuple[str, AnyEvent]] = [(stream, created("a"))]
    for item in tail:
        if isinstance(item, tuple):
            event: AnyEvent = ScheduleTriggered(
                schedule_id="a", tick=item[1], run_id=f"r{len(appends) + 1}"
            )
        else:
            event = item
        appends.append((stream, event))
    conn = log_of(appends)
    (state,) = read_states(conn).values()
    assert state == full_fold(conn)["a"]
    assert {name: getattr(state, name) for name in fields} == fields


# -- bounded work ----------------------------------------------------------------------------


class _Counting:
    """Wraps the codec's decoder and counts the payloads it decodes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.count = 0

    def decode(self, body: Any) -> Any:
        self.count += 1
        return self.inner.decode(body)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> _Counting:
    counting = _Counting(events._codec._decoder)
    monkeypatch.setattr(events._codec, "_decoder", counting)
    return counting


@contextmanager
def vm_steps(conn: sqlite3.Connection) -> Iterator[list[int]]:
    """Counts SQLite VM instructions (in hundreds) run on ``conn``: the work queries do."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(tick, 100)
    try:
        yield steps
    finally:
        conn.set_progress_handler(None, 0)


async def _many_ticks(run_id: str = "run-0") -> str:
    """A schedule with ``TICKS`` ticks, appended through the store in a few big appends, all
    pointing at a run that exists."""
    async with Engine.open(clock=FakeClock(T0)) as engine:
        sid = (await register(engine, nightly, Schedule(interval_second=1, name="busy"), ())).id
        await engine.store.append(run_id, [RunCreated(pipeline="nightly", run_name="r0")])
        for start in range(0, TICKS, 5_000):
            ticks = [
                ScheduleTriggered(schedule_id=sid, tick=T0 + i, run_id=run_id)
                for i in range(start, start + 5_000)
            ]
            await engine.store.append(schedule_stream(sid), ticks)
    return sid


@pytest.mark.anyio
async def test_loading_listing_and_serving_do_not_read_every_tick(
    evenflow_home: Path, decodes: _Counting
) -> None:
    sid = await _many_ticks()
    with sqlite3.connect(evenflow_home / "evenflow.db") as conn:
        decodes.count = 0
        with vm_steps(conn) as steps:
            states = read_states(conn)
        assert decodes.count <= 2  # schedule.created and the newest tick
        assert steps[0] * 100 < TICKS  # fewer VM instructions than ticks: no scan
        assert states == full_fold(conn)
        (state,) = states.values()
        assert (state.fired, state.last_tick, state.version) == (TICKS, T0 + TICKS - 1, TICKS + 1)
        with vm_steps(conn) as steps:
            assert _orphan_claims(conn, [schedule_stream(sid)]) == []
        assert steps[0] * 100 < TICKS

    decodes.count = 0
    result = CliRunner().invoke(app, ["schedule", "list"])
    assert result.exit_code == 0, result.output
    assert "busy" in result.stdout
    assert Client().get_schedule("busy").fired == TICKS
    assert decodes.count < 10

    async with Engine.open(clock=FakeClock(T0 + TICKS - 1)) as engine:
        decodes.count = 0
        svc = ScheduleService(engine)
        await svc.load()
        async with anyio.create_task_group() as tg:
            await svc._recover(tg)
            assert await svc.fire_due(tg) == []  # the newest tick has fired
        assert decodes.count <= 2 + _RECENT  # load, and one page of recent claims
        assert svc.schedules[sid].fired == TICKS


def test_claims_without_a_run_are_found_among_the_newest_claims() -> None:
    stream = schedule_stream("a")
    appends: list[tuple[str, AnyEvent]] = [(stream, created("a"))]

    def claim(n: int) -> None:
        appends.append((stream, ScheduleTriggered(schedule_id="a", tick=T0 + n, run_id=f"r{n}")))

    def start(n: int) -> None:
        appends.append((f"r{n}", RunCreated(pipeline="p", run_name=f"r{n}")))

    for n in range(300):  # 300 ticks whose runs started
        claim(n)
        start(n)
    # a catchup burst, and its service stopped: runs r300..r399 claimed, some started out of
    # order (a newer run started, an older one did not)
    for n in range(300, 400):
        claim(n)
    for n in range(300, 400):
        if n % 3:
            start(n)
    conn = log_of(appends)
    found = _orphan_claims(conn, [stream])
    assert [rec.event.run_id for rec in found] == [  # type: ignore[union-attr]
        f"r{n}" for n in range(300, 400) if n % 3 == 0
    ]
    assert [rec.seq for rec in found] == sorted(rec.seq for rec in found)
    assert _orphan_claims(conn, [schedule_stream("none")]) == []
