"""The schedule service: each tick fired once (across restarts and racing services), catchup,
changes from other processes, bad pipelines, and a real ``evenflow serve``.

Time is a FakeClock everywhere except the one real ``evenflow serve`` test.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from engine import Client, ExecutionStatus, Schedule
from engine._cli import app
from engine._engine import Engine
from engine._retry import FakeClock
from engine._schedules import register
from engine._serve import ScheduleService
from events import RunSucceeded, ScheduleCreated, ScheduleTriggered, decode
from projections import schedule_stream
from tests.pipelines.scheduled import nightly, sleepy

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from engine._cli import main; main()"]
T0 = 1_700_000_000.0


@asynccontextmanager
async def service(clock: FakeClock) -> AsyncIterator[ScheduleService]:
    async with Engine.open(clock=clock) as engine:
        svc = ScheduleService(engine)
        await svc.load()
        yield svc


async def add(clock: FakeClock, schedule: Schedule, **params: object) -> str:
    async with Engine.open(clock=clock) as engine:
        return (await register(engine, nightly, schedule, (), params)).id


def triggered(home: Path) -> list[ScheduleTriggered]:
    with sqlite3.connect(home / "evenflow.db") as conn:
        rows = conn.execute(
            "SELECT payload FROM events WHERE type = 'schedule.triggered' ORDER BY seq"
        ).fetchall()
    return [decode(row[0]) for row in rows]  # type: ignore[misc]


def run_ticks(schedule_id: str) -> list[float]:
    runs = Client().list_pipeline_runs(schedule=schedule_id, sort_by="asc:created")
    return sorted(run.tick.timestamp() for run in runs if run.tick is not None)


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


# -- firing ----------------------------------------------------------------------------------


async def test_each_tick_fires_once_and_its_run_carries_schedule_and_tick() -> None:
    clock = FakeClock(T0)
    sid = await add(clock, Schedule(interval_second=60, name="minutely"), name="Ada")
    async with service(clock) as svc, anyio.create_task_group() as tg:
        assert [f[1] for f in await svc.fire_due(tg)] == [T0]
        assert await svc.fire_due(tg) == []  # same instant: nothing new
        clock.advance(59)
        assert await svc.fire_due(tg) == []
        clock.advance(1)
        assert [f[1] for f in await svc.fire_due(tg)] == [T0 + 60]
    runs = Client().list_pipeline_runs(schedule=sid)
    runs.sort(key=lambda r: r.tick.timestamp() if r.tick else 0.0)
    assert [r.status for r in runs] == [ExecutionStatus.COMPLETED] * 2
    assert [r.schedule_id for r in runs] == [sid, sid]
    assert run_ticks(sid) == [T0, T0 + 60]
    assert runs[0].parameters == {"name": "Ada"}
    assert runs[0].steps["greet"].output.load() == "hello Ada"
    view = Client().get_schedule("minutely")
    assert view.fired == 2
    assert view.last_run_id == runs[1].id
    assert view.last_run_status is ExecutionStatus.COMPLETED
    # `runs list` shows where a run came from
    lines = CliRunner().invoke(app, ["runs", "list", "--json"]).stdout.splitlines()
    assert {json.loads(line)["tick"] for line in lines} == {T0, T0 + 60}
    table = CliRunner().invoke(app, ["runs", "list"]).stdout
    assert "schedule" in table.splitlines()[0]
    assert sid[:8] in table


async def test_the_run_configuration_is_applied_to_each_run() -> None:
    clock = FakeClock(T0)
    async with Engine.open(clock=clock) as engine:
        configured = nightly.with_options(run_name="scheduled-{date}", tags=["cron"])
        await register(engine, configured, Schedule(interval_second=60), ())
        svc = ScheduleService(engine)
        await svc.load()
        async with anyio.create_task_group() as tg:
            await svc.fire_due(tg)
    (run,) = Client().list_pipeline_runs()
    assert run.name.startswith("scheduled-")
    assert run.tags == ["cron"]


@pytest.mark.parametrize(
    ("catchup", "expected"),
    [(True, [60.0, 120.0, 180.0, 240.0]), (False, [240.0])],
)
async def test_a_restart_runs_missed_ticks_by_catchup_and_never_refires(
    evenflow_home: Path, catchup: bool, expected: list[float]
) -> None:
    clock = FakeClock(T0)
    sid = await add(clock, Schedule(interval_second=60, catchup=catchup))
    async with service(clock) as svc, anyio.create_task_group() as tg:
        await svc.fire_due(tg)  # T0, then the service stops
    clock.advance(250)  # downtime: ticks T0+60 .. T0+240 are missed
    async with service(clock) as svc, anyio.create_task_group() as tg:
        fired = await svc.fire_due(tg)
        assert [tick - T0 for _, tick, _ in fired] == expected  # oldest first
    async with service(clock) as svc, anyio.create_task_group() as tg:
        assert await svc.fire_due(tg) == []  # another restart: nothing fires twice
    assert run_ticks(sid) == [T0 + t for t in [0.0, *expected]]
    ticks = [t.tick for t in triggered(evenflow_home)]
    assert len(ticks) == len(set(ticks))


async def test_two_services_on_one_home_fire_each_tick_once(evenflow_home: Path) -> None:
    clock = FakeClock(T0)
    ids = [
        await add(clock, Schedule(interval_second=30, catchup=True, name=f"s{i}")) for i in range(3)
    ]
    async with service(clock) as one, service(clock) as two:
        async with anyio.create_task_group() as tg:
            for round_ in range(4):
                if round_:
                    clock.advance(45)  # one or two ticks per schedule
                claims: list[list[tuple[str, float, str]]] = [[], []]

                async def race(svc: ScheduleService, out: list[tuple[str, float, str]]) -> None:
                    out.extend(await svc.fire_due(tg))

                async with anyio.create_task_group() as racers:
                    racers.start_soon(race, one, claims[0])
                    racers.start_soon(race, two, claims[1])
                won = claims[0] + claims[1]
                assert won  # every round has due ticks
                assert len(won) == len({(sid, tick) for sid, tick, _ in won})
        # the stale service learned of the other's claims: it fires nothing now
        async with anyio.create_task_group() as tg:
            assert await one.fire_due(tg) == []
            assert await two.fire_due(tg) == []
    events = triggered(evenflow_home)
    assert len(events) == len({(e.schedule_id, e.tick) for e in events})
    for sid in ids:
        ticks = run_ticks(sid)
        assert ticks == [T0 + 30 * k for k in range(len(ticks))]  # none skipped, none twice
        assert len(ticks) == 5  # rounds at T0, +45, +90, +135: ticks T0 .. T0+120


async def test_a_claimed_tick_without_a_run_is_started_by_the_next_service() -> None:
    clock = FakeClock(T0)
    sid = await add(clock, Schedule(interval_second=3600))
    async with Engine.open(clock=clock) as engine:
        # a service claimed T0 and stopped before starting the run
        event = ScheduleTriggered(schedule_id=sid, tick=T0, run_id="0" * 8 + "-orphan")
        await engine.store.append(schedule_stream(sid), [event], expected_version=1)
        svc = ScheduleService(engine)
        async with (
            engine.store.subscribe(0, stream=event.run_id) as sub,
            anyio.create_task_group() as tg,
        ):
            await tg.start(svc.serve)
            with anyio.fail_after(20):
                async for rec in sub:
                    if isinstance(rec.event, RunSucceeded):
                        break
            tg.cancel_scope.cancel()
    assert run_ticks(sid) == [T0]
    assert Client().get_pipeline_run(event.run_id).status is ExecutionStatus.COMPLETED


# -- bad input -------------------------------------------------------------------------------


async def test_a_pipeline_that_cannot_be_imported_fails_its_run_not_the_service() -> None:
    clock = FakeClock(T0)
    good = await add(clock, Schedule(interval_second=60, name="good"))
    async with Engine.open(clock=clock) as engine:
        gone = "gone-0000-0000"
        created = ScheduleCreated(
            schedule_id=gone,
            name="gone",
            pipeline="vanished",
            interval_second=60.0,
            code="tests.pipelines.no_such_module:vanished",
            created_at=T0,
        )
        await engine.store.append(schedule_stream(gone), [created], expected_version=0)
        svc = ScheduleService(engine)
        await svc.load()
        async with anyio.create_task_group() as tg:
            assert len(await svc.fire_due(tg)) == 2
            clock.advance(60)
            assert len(await svc.fire_due(tg)) == 2  # still serving both
    (failed, _) = Client().list_pipeline_runs(schedule=gone)
    assert failed.status is ExecutionStatus.FAILED
    assert failed.pipeline_name == "vanished"
    assert failed.error is not None
    assert "schedule 'gone' could not start pipeline 'vanished'" in failed.error
    assert "No module named 'tests.pipelines.no_such_module'" in failed.error
    assert failed.tick is not None
    assert [r.status for r in Client().list_pipeline_runs(schedule=good)] == [
        ExecutionStatus.COMPLETED
    ] * 2
    assert Client().get_schedule("gone").last_run_status is ExecutionStatus.FAILED


async def test_a_pipeline_module_calling_sys_exit_fails_its_run_not_the_service(
    tmp_path: Path,
) -> None:
    module = tmp_path / "exits_on_import.py"
    module.write_text("import sys\nsys.exit('needs a config file')\n")
    clock = FakeClock(T0)
    async with Engine.open(clock=clock) as engine:
        created = ScheduleCreated(
            schedule_id="exits-0000-0000",
            name="exits",
            pipeline="exits",
            interval_second=60.0,
            code=f"{module}:exits",
            created_at=T0,
        )
        await engine.store.append(schedule_stream("exits-0000-0000"), [created], expected_version=0)
        svc = ScheduleService(engine)
        await svc.load()
        async with anyio.create_task_group() as tg:
            assert len(await svc.fire_due(tg)) == 1
    (failed,) = Client().list_pipeline_runs(schedule="exits-0000-0000")
    assert failed.status is ExecutionStatus.FAILED
    assert failed.error is not None
    assert "called sys.exit('needs a config file')" in failed.error


async def test_a_schedule_whose_time_zone_is_unknown_here_is_skipped_not_the_service() -> None:
    # Registered on a machine whose tz database knows a zone this one does not.
    clock = FakeClock(T0)
    good = await add(clock, Schedule(interval_second=60, name="good"))
    async with Engine.open(clock=clock) as engine:
        created = ScheduleCreated(
            schedule_id="zone-0000-0000",
            name="elsewhere",
            pipeline="nightly",
            cron_expression="0 2 * * *",
            timezone="Mars/Olympus_Mons",
            code="tests.pipelines.scheduled:nightly",
            created_at=T0,
        )
        await engine.store.append(schedule_stream("zone-0000-0000"), [created], expected_version=0)
        svc = ScheduleService(engine)
        await svc.load()
        async with anyio.create_task_group() as tg:
            assert [sid for sid, _, _ in await svc.fire_due(tg)] == [good]
        assert svc.next_wake() == T0 + 60  # the good schedule's next tick
    views = {v.name: v for v in Client().list_schedules()}
    assert views["elsewhere"].status == "error"
    assert views["good"].status == "active"
    listed = CliRunner().invoke(app, ["schedule", "list"])
    assert listed.exit_code == 0
    assert "error" in listed.stdout


async def test_a_long_catchup_backlog_is_claimed_one_tick_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A month of per-second ticks is due. Claiming must not list the whole backlog for each
    # claim (that took seconds per claim and hundreds of MB).
    clock = FakeClock(T0)
    start = T0 - 30 * 86_400
    when = dt.datetime.fromtimestamp(start, dt.UTC)
    sid = await add(clock, Schedule(interval_second=1, catchup=True, start_time=when))
    claims: list[float] = []

    async def no_run(*_: object) -> None:
        return None

    async with service(clock) as svc:
        claim = svc._claim

        async def claim_three(state: object, tick: float) -> str | None:
            claims.append(tick)
            if len(claims) == 4:  # stop the backlog: a pause makes this claim conflict
                await anyio.to_thread.run_sync(Client().pause_schedule, sid)
            return await claim(state, tick)  # type: ignore[arg-type]

        monkeypatch.setattr(svc, "_claim", claim_three)
        monkeypatch.setattr(svc, "start_run", no_run)
        began = time.monotonic()
        async with anyio.create_task_group() as tg:
            fired = await svc.fire_due(tg)
        assert time.monotonic() - began < 5.0  # listing the backlog 4 times took ~7 s (generous:
        # a loaded CI machine must not fail this; the quadratic version grows far past it)
    assert [tick for _, tick, _ in fired] == [start, start + 1, start + 2]


SCRIPT = textwrap.dedent(
    """
    from engine import Schedule, pipeline, step


    @step
    def shout(word: str) -> str:
        return word.upper()


    @pipeline
    def from_file(word: str = "hi") -> None:
        shout(word=word)


    # The seed registers at import time, unguarded: a service importing this file to fire a
    # tick must not register it again.
    from_file.run(schedule=Schedule(interval_second=60, name="from-file"), word="yo")
    """
)


async def test_a_schedule_registered_by_a_script_imports_the_file_once_per_tick(
    tmp_path: Path,
) -> None:
    script = tmp_path / "flow_script.py"
    script.write_text(SCRIPT)
    await anyio.run_process([sys.executable, str(script)], env=subprocess_env(), check=True)
    view = Client().get_schedule("from-file")
    assert view.code == f"{script}:from_file"
    clock = FakeClock(view.created.timestamp() + 1)
    try:
        async with service(clock) as svc, anyio.create_task_group() as tg:
            assert len(await svc.fire_due(tg)) == 1
    finally:
        sys.modules.pop("flow_script", None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))
    (run,) = Client().list_pipeline_runs(schedule=view.id)
    assert run.status is ExecutionStatus.COMPLETED
    assert run.steps["shout"].output.load() == "YO"
    assert [s.name for s in Client().list_schedules()] == ["from-file"]  # not registered again


# -- changes from other processes ------------------------------------------------------------


async def test_create_pause_resume_delete_from_another_process_take_effect_live() -> None:
    clock = FakeClock(T0)
    sid = await add(clock, Schedule(interval_second=60, name="live"))

    async def cli(*args: str) -> None:
        await anyio.run_process([*CLI, *args], env=subprocess_env(), cwd=REPO, check=True)

    async with Engine.open(clock=clock) as engine, anyio.create_task_group() as tg:
        svc = ScheduleService(engine)
        await tg.start(svc.serve)
        with anyio.fail_after(30):
            await svc.wait_rounds(1)
            assert svc.schedules[sid].last_tick == T0
            await clock.wait_for_sleepers(1)  # the service waits for the next tick
            assert clock.next_deadline() == T0 + 60

            await cli("schedule", "pause", "live")
            while not svc.schedules[sid].paused:  # each change the tail folds is a round
                await svc.wait_rounds(svc.rounds + 1)
            assert clock.sleepers == 0  # nothing left to wake for
            clock.advance(130)  # T0+60 and T0+120 pass while paused
            async with anyio.create_task_group() as probe:
                assert await svc.fire_due(probe) == []

            await cli("schedule", "resume", "live")
            while svc.schedules[sid].paused:
                await svc.wait_rounds(svc.rounds + 1)
            assert svc.schedules[sid].last_tick == T0 + 120  # catchup=False: newest only

            await cli("schedule", "delete", "live")
            while not svc.schedules[sid].deleted:
                await svc.wait_rounds(svc.rounds + 1)
            assert clock.sleepers == 0

            code = (
                "from engine import Schedule\n"
                "from tests.pipelines.scheduled import nightly, sleepy\n"
                "nightly.run(schedule=Schedule(interval_second=60, name='late'))\n"
            )
            await anyio.run_process(
                [sys.executable, "-c", code], env=subprocess_env(), cwd=REPO, check=True
            )
            while not any(s.name == "late" for s in svc.schedules.values()):
                await svc.wait_rounds(svc.rounds + 1)
            (late,) = [s for s in svc.schedules.values() if s.name == "late"]
            await clock.wait_for_sleepers(1)
            assert clock.next_deadline() == late.created_at  # registered on the real clock
            rounds = svc.rounds
            clock.advance_to(late.created_at)
            await svc.wait_rounds(rounds + 1)
            assert svc.schedules[late.id].last_tick == late.created_at
        tg.cancel_scope.cancel()
    assert run_ticks(sid) == [T0, T0 + 120]


# -- the real command ------------------------------------------------------------------------


def test_two_real_serve_processes_fire_every_second_once_and_stop_on_sigterm(
    evenflow_home: Path,
) -> None:
    view = nightly.run(schedule=Schedule(interval_second=1, catchup=True, name="every-second"))
    procs = [
        subprocess.Popen(
            [*CLI, "serve"],
            cwd=REPO,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:  # the handshake: printed once signals are handled and serving
            assert proc.stdout is not None
            assert "serving schedules of" in proc.stdout.readline()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done = Client().list_pipeline_runs(schedule=view.id, status="completed")
            if len(done) >= 3:
                break
            time.sleep(0.1)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=20) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "stopped"
        assert "Traceback" not in err
    logs = "".join(err for _, err in outputs)
    assert "tick_fired" in logs
    assert "signal_received" in logs
    assert len(Client().list_pipeline_runs(schedule=view.id, status="completed")) >= 3
    events = triggered(evenflow_home)
    ticks = sorted(e.tick for e in events)
    assert ticks == [ticks[0] + k for k in range(len(ticks))]  # every second, none twice
    assert len({e.run_id for e in events}) == len(ticks)
    assert run_ticks(view.id) == pytest.approx(ticks, abs=1e-5)  # one run per tick


def test_serve_stopped_during_a_sync_step_says_it_waits_and_a_second_sigterm_exits(
    evenflow_home: Path,
) -> None:
    view = sleepy.run(schedule=Schedule(interval_second=3600, name="sleepy"), seconds=60.0)
    proc = subprocess.Popen(
        [*CLI, "serve"],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert "serving schedules of" in proc.stdout.readline()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            runs = Client().list_pipeline_runs(schedule=view.id)
            if runs and runs[0].steps.get("nap") and runs[0].steps["nap"].status.value == "running":
                break
            time.sleep(0.05)
        else:
            pytest.fail("the scheduled step never started")
        proc.send_signal(signal.SIGTERM)
        for line in proc.stderr:  # the runs are cancelled, then it says what it waits for
            if "waiting for 1 step thread" in line:
                break
        else:
            pytest.fail("serve exited without saying it waits for the step's thread")
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert time.monotonic() - began < 10  # not the step's 60 s
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert out.strip() == "stopped"
    (run,) = Client().list_pipeline_runs(schedule=view.id)
    assert run.status is ExecutionStatus.CANCELLED


async def test_a_pause_committed_before_a_claim_makes_the_claim_fail() -> None:
    clock = FakeClock(T0)
    sid = await add(clock, Schedule(interval_second=60, name="stale"))
    async with service(clock) as svc:  # folded while active
        await anyio.to_thread.run_sync(Client().pause_schedule, "stale")
        async with anyio.create_task_group() as tg:
            assert await svc.fire_due(tg) == []  # its claim conflicted: refolded, paused
        assert svc.schedules[sid].paused
    assert Client().list_pipeline_runs() == []
