"""Unit tests of the projections: status rules, the persisted tables, catch-up and queries."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

import events
import projections
from events import (
    ArtifactRef,
    ArtifactStored,
    HookFailed,
    HookStarted,
    InputRef,
    MetadataLogged,
    Recorded,
    RunCancelled,
    RunCancelRequested,
    RunCrashed,
    RunCreated,
    RunFailed,
    RunResumed,
    RunStarted,
    RunSucceeded,
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
    _schema,
)
from projections import ExecutionStatus as S
from projections import Projector, RunState, fold_run

RUN = "0a1b2c3d-0000-4000-8000-000000000001"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Log:
    """Hand-made records: dense seqs, per-stream versions, a clock one second per event."""

    def __init__(self, start: float = 1000.0) -> None:
        self.records: list[Recorded] = []
        self.versions: dict[str, int] = {}
        self.t = start

    def add(self, stream: str, *evs: events.AnyEvent, dt: float = 1.0) -> list[Recorded]:
        out = []
        for ev in evs:
            self.t += dt
            v = self.versions[stream] = self.versions.get(stream, 0) + 1
            rec = Recorded(len(self.records) + 1, stream, v, events.tag_of(ev), self.t, ev)
            self.records.append(rec)
            out.append(rec)
        return out

    def state(self) -> RunState:
        state = fold_run(self.records)
        assert state is not None
        return state


def art(aid: str, name: str = "output", content: str = "h") -> ArtifactRef:
    return ArtifactRef(
        id=aid,
        name=name,
        content_hash=content,
        uri=f"file:///{aid}",
        materializer="m",
        type_name="int",
    )


def created(*step_ids: str, run_name: str = "r1", **kw: Any) -> RunCreated:
    steps = [StepSpec(id=s, name=f"fn_{s}") for s in step_ids]
    return RunCreated(pipeline="p", run_name=run_name, steps=steps, **kw)


# ---------------------------------------------------------------------------------------------
# ExecutionStatus
# ---------------------------------------------------------------------------------------------


def test_execution_status_values_and_properties() -> None:
    assert [s.value for s in S] == [
        "initializing", "pending", "queued", "running", "retrying", "completed", "cached",
        "failed", "skipped", "cancelled", "crashed", "stopped",
    ]  # fmt: skip
    assert str(S.COMPLETED) == "completed"
    assert S("failed") is S.FAILED
    assert isinstance(S.RUNNING, str)
    finished = {"completed", "cached", "failed", "skipped", "cancelled", "crashed", "stopped"}
    assert {s.value for s in S if s.is_finished} == finished
    assert {s.value for s in S if s.is_successful} == {"completed", "cached"}
    assert {s.value for s in S if s.is_failed} == {"failed", "crashed"}


# ---------------------------------------------------------------------------------------------
# Status rules
# ---------------------------------------------------------------------------------------------


def test_run_created_and_started() -> None:
    log = Log()
    assert fold_run(log.records) is None
    log.add(RUN, created("a", "b", tags=["x"], parameters={"n": 1}, code="mod:p"))
    state = log.state()
    assert state.run.status is S.INITIALIZING
    assert state.run.created_at == 1001.0
    assert state.run.step_ids == ["a", "b"]
    assert (state.run.name, state.run.pipeline, state.run.tags) == ("r1", "p", ["x"])
    assert list(state.steps) == ["a", "b"]
    assert all(s.status is S.PENDING for s in state.steps.values())
    assert state.steps["a"].name == "fn_a"
    assert state.steps["a"].spec.id == "a"
    assert state.steps["a"].step_run_id == f"{RUN}/a"
    log.add(RUN, RunStarted(owner="me"))
    state = log.state()
    assert (state.run.status, state.run.started_at, state.run.owner) == (S.RUNNING, 1002.0, "me")
    assert (state.run.last_seq, state.run.version) == (2, 2)


def test_step_lifecycle_success_with_artifacts() -> None:
    log = Log()
    log.add(RUN, created("a"), RunStarted(), StepReady(step="a"))
    assert log.state().steps["a"].status is S.QUEUED
    assert log.state().steps["a"].queued_at == 1003.0
    log.add(RUN, StepStarted(step="a"))
    step = log.state().steps["a"]
    assert (step.status, step.attempt, step.start_time) == (S.RUNNING, 1, 1004.0)
    log.add(
        RUN,
        ArtifactStored(step="a", artifact=art("art-1", "x")),
        ArtifactStored(step="a", artifact=art("art-2", "y")),
        StepSucceeded(step="a", outputs={"x": "art-1", "y": "art-2"}, cache_key="k1"),
    )
    step = log.state().steps["a"]
    assert step.status is S.COMPLETED
    assert step.outputs == {"x": [art("art-1", "x")], "y": [art("art-2", "y")]}
    assert (step.cache_key, step.end_time, step.duration) == ("k1", 1007.0, 3.0)
    log.add(RUN, RunSucceeded(outputs=[InputRef("a", "x")]))
    run = log.state().run
    assert (run.status, run.ended_at, run.outputs) == (S.COMPLETED, 1008.0, [InputRef("a", "x")])


def test_step_succeeded_duration_and_empty_cache_key() -> None:
    log = Log()
    log.add(RUN, created("a"), StepStarted(step="a"), StepSucceeded(step="a", duration=0.25))
    step = log.state().steps["a"]
    assert (step.duration, step.cache_key, step.outputs) == (0.25, None, {})


def test_step_retry_then_final_failure() -> None:
    log = Log()
    log.add(RUN, created("a"), RunStarted(), StepReady(step="a"), StepStarted(step="a"))
    log.add(RUN, StepFailed(step="a", final=False, error="boom", error_type="ValueError"))
    step = log.state().steps["a"]
    assert (step.status, step.error, step.error_type) == (S.RETRYING, "boom", "ValueError")
    log.add(RUN, StepRetryScheduled(step="a", attempt=2, due_at=2000.0))
    assert log.state().steps["a"].retry_due_at == 2000.0
    log.add(RUN, StepStarted(step="a", attempt=2))
    step = log.state().steps["a"]
    assert (step.status, step.attempt, step.retry_due_at, step.end_time) == (
        S.RUNNING,
        2,
        None,
        None,
    )
    log.add(RUN, StepFailed(step="a", attempt=2, final=True, error="again"))
    step = log.state().steps["a"]
    assert (step.status, step.error, step.attempt) == (S.FAILED, "again", 2)
    assert step.status.is_failed
    assert step.status.is_finished
    log.add(RUN, RunFailed(error="a failed", failed_step="a"))
    run = log.state().run
    assert (run.status, run.error, run.failed_step) == (S.FAILED, "a failed", "a")
    assert run.ended_at == log.t


def test_step_cached() -> None:
    log = Log()
    ref = art("art-9")
    log.add(RUN, created("a"), StepReady(step="a"))
    log.add(
        RUN,
        StepCached(
            step="a", cache_key="k", source_run="r0", source_step="a", outputs={"output": ref}
        ),
    )
    step = log.state().steps["a"]
    assert (step.status, step.cache_key, step.original_step_run_id) == (S.CACHED, "k", "r0/a")
    assert step.outputs == {"output": [ref]}
    assert step.status.is_successful
    assert step.end_time is not None
    assert step.start_time is not None
    assert step.end_time >= step.start_time


def test_step_skipped_cancelled_logs_metadata() -> None:
    log = Log()
    log.add(RUN, created("a", "b", "c"), StepSkipped(step="a", reason="upstream failed"))
    log.add(
        RUN, StepStarted(step="b"), StepCancelled(step="b"), StepLogs(step="c", uri="file:///l")
    )
    log.add(
        RUN,
        MetadataLogged(step="c", metadata={"k": 1}),
        MetadataLogged(step="c", metadata={"j": 2}),
    )
    log.add(RUN, MetadataLogged(metadata={"run": True}))
    state = log.state()
    assert state.steps["a"].status is S.SKIPPED
    assert state.steps["b"].status is S.CANCELLED
    assert state.steps["c"].logs_uri == "file:///l"
    assert state.steps["c"].metadata == {"k": 1, "j": 2}
    assert state.run.metadata == {"run": True}
    assert state.steps["a"].metadata == {}


def test_run_cancel_requested_cancelled_crashed_resumed() -> None:
    log = Log()
    log.add(RUN, created("a"), RunStarted(owner="o1"), RunCancelRequested(requested_by="cli"))
    state = log.state()
    assert (state.run.status, state.run.cancel_requested) == (S.RUNNING, True)
    log.add(RUN, RunCancelled(reason="asked"))
    assert log.state().run.status is S.CANCELLED
    log2 = Log()
    log2.add(RUN, created("a"), RunStarted(owner="o1"), RunCrashed(owner="o1", reason="lost"))
    run = log2.state().run
    assert (run.status, run.error) == (S.CRASHED, "lost")
    assert run.status.is_failed
    log2.add(RUN, RunResumed(owner="o2"))
    run = log2.state().run
    assert (run.status, run.owner, run.ended_at, run.error) == (S.RUNNING, "o2", None, None)
    assert run.started_at == 1002.0


def test_dynamic_steps_are_declared_in_order() -> None:
    log = Log()
    log.add(RUN, RunCreated(pipeline="p", run_name="dyn", dynamic=True), RunStarted())
    assert log.state().steps == {}
    log.add(RUN, StepDeclared(spec=StepSpec(id="b", name="fb")))
    log.add(RUN, StepDeclared(spec=StepSpec(id="a", name="fa")), StepReady(step="a"))
    log.add(RUN, StepDeclared(spec=StepSpec(id="b", name="other")))  # declared twice: first stands
    state = log.state()
    assert state.run.step_ids == ["b", "a"]
    assert list(state.steps) == ["b", "a"]
    assert (state.steps["b"].status, state.steps["b"].name) == (S.PENDING, "fb")
    assert state.steps["a"].status is S.QUEUED


def test_noise_changes_no_status_and_other_streams_are_ignored() -> None:
    log = Log()
    log.add(RUN, created("a"), RunStarted())
    before = log.state()
    log.add(RUN, HookStarted(hook="on_start", step="a"), HookFailed(hook="on_start", step="a"))
    log.add(RUN, UnknownEvent(type="future.thing", data={"x": 1}))
    log.add("schedule:s1", ScheduleTriggered(schedule_id="s1", tick=1.0))
    log.add("other-run", created("a", run_name="other"), StepStarted(step="a"))
    after = log.state()
    assert after == before  # last_seq/version included: only changes advance them
    rec = log.records[-3]
    assert projections.evolve_run(before.run, rec) is before.run
    other = fold_run(log.records, run_id="other-run")
    assert other is not None
    assert other.steps["a"].status is S.RUNNING


def test_reducers_are_pure_and_ignore_unknown_steps() -> None:
    log = Log()
    recs = log.add(RUN, created("a"), StepReady(step="zzz"))
    run = projections.evolve_run(None, recs[0])
    assert run is not None
    step = projections.evolve_step(None, recs[0], StepSpec(id="a", name="fa"))
    assert step is not None
    assert projections.evolve_step(step, recs[1]) is step  # another step's event
    assert projections.evolve_step(None, recs[1]) is None  # an undeclared step
    assert projections.evolve_run(None, recs[1]) is None
    ready = log.add(RUN, StepReady(step="a"))[0]
    queued = projections.evolve_step(step, ready)
    assert queued is not None
    assert queued.status is S.QUEUED
    assert step.status is S.PENDING
    assert log.state().steps.keys() == {"a"}


def test_time_travel_prefix() -> None:
    log = Log()
    log.add(RUN, created("a"), RunStarted(), StepStarted(step="a"), StepSucceeded(step="a"))
    log.add(RUN, RunSucceeded())
    at_3 = fold_run(r for r in log.records if r.seq <= 3)
    assert at_3 is not None
    assert (at_3.run.status, at_3.steps["a"].status) == (S.RUNNING, S.RUNNING)


# ---------------------------------------------------------------------------------------------
# Persisted projection
# ---------------------------------------------------------------------------------------------


def open_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    _schema.initialise_in_tx(conn)
    conn.execute("COMMIT")
    return conn


def append(
    conn: sqlite3.Connection, records: Sequence[Recorded], projector: Projector | None
) -> list[Recorded]:
    """Insert records as the store does (hash-chained), then run the hook, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    head = conn.execute("SELECT hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    prev = bytes(head[0]) if head else events.GENESIS
    out = []
    for r in records:
        payload = events.encode(r.event)
        prev = events.row_hash(prev, r.stream, r.version, r.type, r.recorded_at, payload)
        conn.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
            (r.seq, r.stream, r.version, r.type, r.recorded_at, payload, prev),
        )
        out.append(msgspec.structs.replace(r, hash=prev))
    if projector is not None:
        projector.apply(conn, out)
    conn.execute("COMMIT")
    return out


def dump(conn: sqlite3.Connection) -> dict[str, list[Any]]:
    return {
        "runs": conn.execute("SELECT * FROM runs ORDER BY id").fetchall(),
        "step_runs": conn.execute("SELECT * FROM step_runs ORDER BY run_id, step_id").fetchall(),
        "artifacts": conn.execute("SELECT * FROM artifacts ORDER BY id").fetchall(),
        "checkpoint": conn.execute("SELECT * FROM projection_checkpoints").fetchall(),
    }


def install(conn: sqlite3.Connection, projector: Projector) -> None:
    conn.execute("BEGIN IMMEDIATE")
    projector.install(conn)
    conn.execute("COMMIT")


def test_persisted_views_match_fold_and_rebuild(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db")
    proj = Projector()
    install(conn, proj)
    log = Log()
    append(conn, log.add(RUN, created("a", "b"), RunStarted()), proj)
    append(
        conn,
        log.add(RUN, StepStarted(step="a"), ArtifactStored(step="a", artifact=art("x1"))),
        proj,
    )
    append(conn, log.add(RUN, StepSucceeded(step="a", outputs={"output": "x1"})), proj)
    state = fold_run(log.records)
    assert projections.get_run_state(conn, RUN) == state
    assert projections.checkpoint(conn) == 5
    before = dump(conn)
    assert projections.rebuild(conn) == 5
    assert dump(conn) == before
    assert not conn.in_transaction


def test_apply_catches_up_a_gap_and_skips_folded_events(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db")
    proj = Projector()
    install(conn, proj)
    log = Log()
    append(conn, log.add(RUN, created("a"), RunStarted()), proj)
    append(conn, log.add(RUN, StepStarted(step="a")), None)  # another process, no projection
    append(conn, log.add(RUN, StepFailed(step="a")), proj)
    assert projections.get_steps(conn, RUN)["a"].status is S.FAILED
    assert projections.get_steps(conn, RUN)["a"].start_time == 1003.0
    conn.execute("BEGIN IMMEDIATE")
    proj.apply(conn, log.records[-1:])  # already folded: nothing changes
    conn.execute("COMMIT")
    assert projections.get_run_state(conn, RUN) == fold_run(log.records)
    # A second projector (another process) writes rows: our cache must not be trusted.
    other = Projector()
    append(conn, log.add(RUN, RunFailed(error="e", failed_step="a")), other)
    append(conn, log.add(RUN, MetadataLogged(metadata={"m": 1})), proj)
    assert projections.get_run_state(conn, RUN) == fold_run(log.records)


def test_rolled_back_batch_does_not_poison_the_cache(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db")
    proj = Projector()
    install(conn, proj)
    log = Log()
    append(conn, log.add(RUN, created("a"), RunStarted()), proj)
    conn.execute("BEGIN IMMEDIATE")
    proj.apply(conn, Log().add(RUN, RunCreated(pipeline="p", run_name="zz")))  # wrong, but...
    conn.execute("ROLLBACK")
    ghost = Log()
    ghost.records = list(log.records)
    ghost.versions = dict(log.versions)
    ghost.t = log.t
    conn.execute("BEGIN IMMEDIATE")
    proj.apply(conn, ghost.add(RUN, RunCancelled()))
    conn.execute("ROLLBACK")
    append(conn, log.add(RUN, StepReady(step="a")), proj)
    assert projections.get_run_state(conn, RUN) == fold_run(log.records)


def test_duplicate_run_names_get_a_suffix(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db")
    proj = Projector()
    install(conn, proj)
    log = Log()
    ids = [f"run-{i}" for i in range(4)]
    append(conn, log.add(ids[0], created(run_name="n")), proj)
    append(
        conn, log.add(ids[1], created(run_name="n")) + log.add(ids[2], created(run_name="n")), proj
    )
    append(conn, log.add(ids[3], created(run_name="n_2")), proj)
    names = [projections.get_run(conn, i).name for i in ids]  # type: ignore[union-attr]
    assert names == ["n", "n_2", "n_3", "n_2_2"]
    append(conn, log.add(ids[1], RunStarted()), proj)
    assert projections.get_run(conn, ids[1]).name == "n_2"  # type: ignore[union-attr]
    assert projections.find_runs(conn, "n_3")[0].id == ids[2]
    before = dump(conn)
    projections.rebuild(conn)
    assert dump(conn) == before


def test_rebuild_on_a_plain_connection(tmp_path: Path) -> None:
    path = tmp_path / "db"
    conn = open_db(path)
    proj = Projector()
    install(conn, proj)
    log = Log()
    append(conn, log.add(RUN, created("a"), RunStarted()), proj)
    conn.close()
    plain = sqlite3.connect(path)  # the default (legacy) transaction mode
    assert projections.rebuild(plain) == 2
    plain.close()
    again = sqlite3.connect(path)
    assert projections.get_run(again, RUN) is not None
    assert projections.checkpoint(again) == 2
    again.close()


def test_install_refolds_rows_without_a_checkpoint(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db")
    install(conn, Projector())
    log = Log()
    append(conn, log.add(RUN, created("a"), RunStarted(), StepStarted(step="a")), Projector())
    before = dump(conn)
    conn.execute("DELETE FROM projection_checkpoints")
    install(conn, Projector())
    assert dump(conn) == before


def test_checkpoint_without_tables(tmp_path: Path) -> None:
    assert projections.checkpoint(open_db(tmp_path / "db")) == 0


# ---------------------------------------------------------------------------------------------
# Through a real EventStore
# ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_store_catch_up_on_open(tmp_path: Path) -> None:
    path = tmp_path / "evenflow.db"
    async with events.EventStore.open(path) as store:
        await store.append(RUN, [created("a"), RunStarted(), StepReady(step="a")])
        await store.append("r2", [created("a", run_name="second")])
    async with events.EventStore.open(path, hooks=[Projector()]) as store:
        assert await store.run_read(projections.checkpoint) == 4
        state = await store.run_read(projections.get_run_state, RUN)
        assert state is not None
        assert state.steps["a"].status is S.QUEUED
        await store.append(RUN, [StepStarted(step="a")])
        await store.append(
            RUN,
            [
                ArtifactStored(step="a", artifact=art("x")),
                StepSucceeded(step="a", outputs={"output": "x"}),
            ],
        )
        steps = await store.run_read(projections.get_steps, RUN)
        assert steps["a"].outputs == {"output": [art("x")]}
        runs = await store.run_read(lambda c: projections.list_runs(c))
        assert [r.name for r in runs] == ["second", "r1"]
        recs = await store.read_range()
    assert state == fold_run(recs[:3])
    conn = sqlite3.connect(path)
    assert projections.get_run_state(conn, RUN) == fold_run(recs)
    assert projections.get_artifact_version(conn, "output") is not None
    conn.close()


@pytest.mark.anyio
async def test_store_apply_folds_what_another_process_appended(tmp_path: Path) -> None:
    path = tmp_path / "evenflow.db"
    async with (
        events.EventStore.open(path, hooks=[Projector()]) as store,
        events.EventStore.open(path) as bare,  # another process, without projections
    ):
        await store.append(RUN, [created("a"), RunStarted()])
        await bare.append(RUN, [StepReady(step="a"), StepStarted(step="a")])
        await store.append(RUN, [StepFailed(step="a", error="x")])
        await bare.append("r2", [created(run_name="r2")])
        await store.append(RUN, [RunFailed(error="x", failed_step="a")])
        state = await store.run_read(projections.get_run_state, RUN)
        recs = await store.read_range()
        assert await store.run_read(projections.checkpoint) == len(recs) == 7
        assert await store.run_read(projections.get_run, "r2") is not None
    assert state == fold_run(recs)
    assert state is not None
    assert state.steps["a"].status is S.FAILED


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def populated(tmp_path: Path) -> sqlite3.Connection:
    conn = open_db(tmp_path / "db")
    proj = Projector()
    install(conn, proj)
    log = Log()
    specs = [
        ("aaaaaaaa-1111", "first", "p1", ["x"], None),
        ("aaaaaaaa-2222", "second", "p1", ["x", "y"], "sch"),
        ("bbbbbbbb-3333", "third", "p2", ["y"], "sch"),
    ]
    for rid, name, pipe, tags, sched in specs:
        ev = RunCreated(pipeline=pipe, run_name=name, tags=tags, schedule_id=sched)
        append(conn, log.add(rid, ev, RunStarted()), proj)
    append(conn, log.add("aaaaaaaa-1111", RunSucceeded()), proj)
    return conn


def test_find_runs(populated: sqlite3.Connection) -> None:
    conn = populated
    assert [r.name for r in projections.find_runs(conn, "aaaaaaaa-1111")] == ["first"]
    assert [r.name for r in projections.find_runs(conn, "third")] == ["third"]
    assert [r.name for r in projections.find_runs(conn, "aaaaaaaa")] == ["first", "second"]
    assert [r.name for r in projections.find_runs(conn, "bbbbbbbb-3")] == ["third"]
    assert projections.find_runs(conn, "aaaa") == []  # prefixes shorter than 8 do not match
    assert projections.find_runs(conn, "nothing-here") == []
    assert projections.get_run(conn, "nope") is None
    assert projections.get_steps(conn, "nope") == {}
    assert projections.get_run_state(conn, "nope") is None


def test_list_runs_filters_and_sort(populated: sqlite3.Connection) -> None:
    conn = populated

    def names(**kw: Any) -> list[str]:
        return [r.name for r in projections.list_runs(conn, **kw)]

    assert names() == ["third", "second", "first"]
    assert names(sort_by="created") == ["first", "second", "third"]
    assert names(sort_by="desc:created", size=2) == ["third", "second"]
    assert names(sort_by="name") == ["first", "second", "third"]
    assert names(pipeline="p1") == ["second", "first"]
    assert names(status=S.COMPLETED) == ["first"]
    assert names(status="running") == ["third", "second"]
    assert names(tags=["x"]) == ["second", "first"]
    assert names(tags=["x", "y"]) == ["second"]
    assert names(tags=[]) == ["third", "second", "first"]
    assert names(since=1003.0) == ["third", "second"]
    assert names(schedule_id="sch", pipeline="p2") == ["third"]
    assert names(size=0) == []
    with pytest.raises(ValueError, match="'newest'"):
        projections.list_runs(conn, sort_by="newest")
    with pytest.raises(ValueError, match="'bogus'"):
        projections.list_runs(conn, status="bogus")
    with pytest.raises(ValueError, match="size"):
        projections.list_runs(conn, size=-1)


def test_artifact_versions(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db")
    proj = Projector()
    install(conn, proj)
    log = Log()
    append(conn, log.add(RUN, created("a", "b")), proj)
    append(
        conn,
        log.add(
            RUN,
            ArtifactStored(step="a", artifact=art("m1", "model")),
            ArtifactStored(step="b", artifact=art("d1", "data")),
        ),
        proj,
    )
    append(conn, log.add(RUN, ArtifactStored(step="b", artifact=art("m2", "model"))), proj)
    append(conn, log.add(RUN, ArtifactStored(step="a", artifact=art("m1", "model"))), proj)  # again
    versions = projections.list_artifact_versions(conn, "model")
    assert [(v.id, v.version, v.step_id) for v in versions] == [("m1", 1, "a"), ("m2", 2, "b")]
    latest = projections.get_artifact_version(conn, "model")
    assert latest is not None
    assert (latest.id, latest.version) == ("m2", 2)
    assert latest.ref == art("m2", "model")
    assert latest.run_id == RUN
    first = projections.get_artifact_version(conn, "model", 1)
    assert first is not None
    assert first.id == "m1"
    assert projections.get_artifact_version(conn, "model", 3) is None
    assert projections.get_artifact_version(conn, "nothing") is None
    assert projections.list_artifact_versions(conn, "data")[0].version == 1


def test_exported_names() -> None:
    assert set(projections.__all__) == {
        "ExecutionStatus", "RunView", "StepView", "RunState", "ArtifactView", "evolve_run",
        "evolve_step", "step_of", "fold_run", "Projector", "rebuild", "get_run", "find_runs",
        "list_runs", "get_steps", "get_run_state", "list_artifact_versions",
        "get_artifact_version", "checkpoint", "MIN_PREFIX", "CacheEntry", "cache_entries",
        "cache_entries_of_pipeline", "ScheduleState", "evolve_schedule", "fold_schedules",
        "fold_schedule_tail", "schedule_stream", "SCHEDULE_STREAM_PREFIX", "runs_created_before",
        "ARTIFACTS_STREAM",
        "artifacts_of_runs", "artifacts_with_content",
    }  # fmt: skip
    for name in projections.__all__:
        obj = getattr(projections, name)
        constant = name in ("MIN_PREFIX", "SCHEDULE_STREAM_PREFIX", "ARTIFACTS_STREAM")
        assert constant or obj.__module__.startswith("projections.")


@pytest.mark.parametrize(
    "cls",
    [
        projections.RunView,
        projections.StepView,
        projections.RunState,
        projections.ArtifactView,
        projections.CacheEntry,
    ],
    ids=lambda c: c.__name__,
)
def test_views_are_not_tracked_by_the_garbage_collector(cls: type[Any]) -> None:
    assert cls.__struct_config__.gc is False
