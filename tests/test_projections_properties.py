"""Property tests of the projections: any prefix folds to a valid state, and the persisted
tables equal the pure fold, however the log is batched, and survive a rebuild byte for byte."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import events
import projections
from events import (
    ArtifactRef,
    ArtifactStored,
    HookStarted,
    HookSucceeded,
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
from projections import ExecutionStatus, Projector, RunState, fold_run

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ARTIFACT_NAMES = ("model", "data", "output")
Item = tuple[str, events.AnyEvent]


@dataclass
class StepPlan:
    id: str
    deps: list[str]
    outcome: str
    retries: int
    outputs: list[str]
    script: list[events.AnyEvent] = field(default_factory=list)


@st.composite
def step_plans(draw: st.DrawFn, run_id: str) -> list[StepPlan]:
    n = draw(st.integers(1, 5))
    plans = []
    for j in range(n):
        deps = [f"s{i}" for i in range(j) if draw(st.booleans())]
        outcome = draw(st.sampled_from(["succeed", "succeed", "fail", "cached", "skip", "cancel"]))
        outputs = draw(st.lists(st.sampled_from(["output", "x", "y"]), unique=True, max_size=2))
        plans.append(StepPlan(f"s{j}", deps, outcome, draw(st.integers(0, 2)), outputs))
    for plan in plans:
        plan.script = _script(run_id, plan)
    return plans


def _ref(run_id: str, step: str, output: str, k: int) -> ArtifactRef:
    name = ARTIFACT_NAMES[(len(step) + k + len(output)) % len(ARTIFACT_NAMES)]
    return ArtifactRef(
        id=f"{run_id}/{step}/{output}",
        name=name,
        content_hash=f"h{k}",
        uri=f"file:///{run_id}/{step}/{output}",
        materializer="builtin",
        type_name="int",
        size=k,
    )


def _script(run_id: str, plan: StepPlan) -> list[events.AnyEvent]:
    s = plan.id
    out: list[events.AnyEvent] = []
    if plan.outcome == "skip":
        return [StepSkipped(step=s, reason="upstream failed")]
    out.append(StepReady(step=s))
    if plan.outcome == "cached":
        refs = {o: _ref("src", s, o, i) for i, o in enumerate(plan.outputs)}
        return [
            *out,
            StepCached(step=s, cache_key="k", source_run="src", source_step=s, outputs=refs),
        ]
    for attempt in range(1, plan.retries + 1):
        out.append(StepStarted(step=s, attempt=attempt))
        out.append(StepFailed(step=s, attempt=attempt, error="boom", error_type="E", final=False))
        out.append(StepRetryScheduled(step=s, attempt=attempt + 1, due_at=1e9))
    attempt = plan.retries + 1
    out.append(StepStarted(step=s, attempt=attempt))
    if plan.outcome == "fail":
        out.append(StepFailed(step=s, attempt=attempt, error="final", error_type="E"))
    elif plan.outcome == "cancel":
        out.append(StepCancelled(step=s))
    else:
        stored = [_ref(run_id, s, o, i) for i, o in enumerate(plan.outputs)]
        out += [ArtifactStored(step=s, artifact=ref) for ref in stored]
        outputs = {o: ref.id for o, ref in zip(plan.outputs, stored, strict=True)}
        out.append(StepSucceeded(step=s, attempt=attempt, outputs=outputs, cache_key=f"key-{s}"))
    return out


def _noise(rnd: random.Random, run_id: str, steps: Sequence[str]) -> events.AnyEvent:
    step = rnd.choice([None, *steps])
    kind = rnd.randrange(6)
    if kind == 0:
        return HookStarted(hook="on_start", step=step)
    if kind == 1:
        return HookSucceeded(hook="on_end", step=step)
    if kind == 2:
        return MetadataLogged(step=step, metadata={f"m{rnd.randrange(3)}": rnd.randrange(9)})
    if kind == 3:
        return UnknownEvent(type="future.event", data={"run": run_id})
    if kind == 4 and step is not None:
        return StepLogs(step=step, uri=f"file:///logs/{step}")
    return RunCancelRequested(requested_by="test")


@st.composite
def run_events(draw: st.DrawFn, run_id: str, name: str) -> list[Item]:
    """One run's events in a causally valid order: a step starts once its upstreams are done."""
    plans = draw(step_plans(run_id))
    dynamic = draw(st.booleans())
    rnd = random.Random(draw(st.integers(0, 2**32)))
    specs = [StepSpec(id=p.id, name=f"fn_{p.id}", after=p.deps) for p in plans]
    created = RunCreated(
        pipeline=draw(st.sampled_from(["p1", "p2"])),
        run_name=name,
        steps=[] if dynamic else specs,
        dynamic=dynamic,
        tags=draw(st.lists(st.sampled_from(["a", "b", "c"]), unique=True)),
    )
    out: list[Item] = [(run_id, created), (run_id, RunStarted(owner="o1"))]
    pos = dict.fromkeys((p.id for p in plans), 0)
    declared: list[str] = []
    crash_at = rnd.randrange(40) if draw(st.booleans()) else -1
    while True:
        done = {p.id for p in plans if pos[p.id] == len(p.script)}
        ready = [p for p in plans if p.id not in done and set(p.deps) <= done]
        if not ready:
            break
        plan = rnd.choice(ready)
        if dynamic and plan.id not in declared:
            declared.append(plan.id)
            out.append((run_id, StepDeclared(spec=specs[int(plan.id[1:])])))
        out.append((run_id, plan.script[pos[plan.id]]))
        pos[plan.id] += 1
        if rnd.random() < 0.3:
            out.append(
                (run_id, _noise(rnd, run_id, declared if dynamic else [p.id for p in plans]))
            )
        if len(out) == crash_at:
            out += [
                (run_id, RunCrashed(owner="o1", reason="lost")),
                (run_id, RunResumed(owner="o2")),
            ]
    outcomes = {p.outcome for p in plans}
    if outcomes <= {"succeed", "cached"}:
        out.append((run_id, RunSucceeded()))
    elif "cancel" in outcomes:
        out.append((run_id, RunCancelled(reason="cancelled")))
    else:
        failed = next((p.id for p in plans if p.outcome == "fail"), None)
        out.append((run_id, RunFailed(error="failed", failed_step=failed)))
    return out


@st.composite
def logs(draw: st.DrawFn, max_runs: int = 3) -> tuple[list[str], list[Recorded]]:
    """Several runs' events interleaved (each run's order kept), plus schedule events."""
    n = draw(st.integers(1, max_runs))
    run_ids = [
        f"{i:08x}-run"
        for i in draw(st.lists(st.integers(0, 2**20), min_size=n, max_size=n, unique=True))
    ]
    queues = [draw(run_events(rid, f"run-{k}")) for k, rid in enumerate(run_ids)]
    rnd = random.Random(draw(st.integers(0, 2**32)))
    items: list[Item] = []
    while any(queues):
        q = rnd.choice([q for q in queues if q])
        items.append(q.pop(0))
        if rnd.random() < 0.05:
            items.append(("schedule:s", ScheduleTriggered(schedule_id="s", tick=1.0)))
    return run_ids, _record(items, rnd)


def _record(items: Sequence[Item], rnd: random.Random) -> list[Recorded]:
    versions: dict[str, int] = {}
    t = 1000.0
    out = []
    for seq, (stream, ev) in enumerate(items, start=1):
        t += rnd.choice([0.0, 0.5, 1.0])
        v = versions[stream] = versions.get(stream, 0) + 1
        out.append(Recorded(seq, stream, v, events.tag_of(ev), t, ev))
    return out


# ---------------------------------------------------------------------------------------------
# The pure fold
# ---------------------------------------------------------------------------------------------


def check_valid(state: RunState, prefix: Sequence[Recorded]) -> None:
    run = state.run
    own = [r for r in prefix if r.stream == run.id]
    assert isinstance(run.status, ExecutionStatus)
    versions = {r.seq: r.version for r in own}
    assert versions[run.last_seq] == run.version
    assert list(state.steps) == run.step_ids
    assert len(set(run.step_ids)) == len(run.step_ids)
    if run.status.is_finished:
        assert run.ended_at is not None
        assert run.ended_at >= run.created_at
    succeeded = {r.event.step: r.event for r in own if isinstance(r.event, StepSucceeded)}
    for sid, step in state.steps.items():
        assert (step.run_id, step.id, step.spec.id) == (run.id, sid, sid)
        assert isinstance(step.status, ExecutionStatus)
        assert step.attempt >= 0
        assert step.last_seq in versions
        if step.status.is_finished:
            assert step.end_time is not None
            if step.start_time is not None:
                assert step.end_time >= step.start_time
        if step.status is ExecutionStatus.RUNNING:
            assert step.end_time is None
            assert step.start_time is not None
        if step.status is ExecutionStatus.COMPLETED:
            ev = succeeded[sid]
            assert {k: [r.id for r in v] for k, v in step.outputs.items()} == {
                k: [aid] for k, aid in ev.outputs.items()
            }
            assert all(ref.uri for refs in step.outputs.values() for ref in refs)
        if step.status is ExecutionStatus.CACHED:
            assert step.original_step_run_id == f"src/{sid}"
    roundtrip = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=RunState)
    assert roundtrip == state


@SETTINGS
@given(logs(max_runs=1))
def test_every_prefix_folds_to_a_valid_state(log: tuple[list[str], list[Recorded]]) -> None:
    (run_id,), records = log
    before = msgspec.msgpack.encode(records)
    for k in range(len(records) + 1):
        state = fold_run(records[:k])
        if state is None:
            assert not any(isinstance(r.event, RunCreated) for r in records[:k])
            continue
        assert state.run.id == run_id
        check_valid(state, records[:k])
    assert msgspec.msgpack.encode(records) == before  # the fold mutated no event
    final = fold_run(records)
    assert final is not None
    assert final.run.status.is_finished
    assert all(s.status.is_finished for s in final.steps.values())


# ---------------------------------------------------------------------------------------------
# The persisted projection
# ---------------------------------------------------------------------------------------------


def _db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("BEGIN")
    _schema.initialise_in_tx(conn)
    conn.execute("COMMIT")
    return conn


def _insert(conn: sqlite3.Connection, batch: Sequence[Recorded]) -> list[Recorded]:
    head = conn.execute("SELECT hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    prev = bytes(head[0]) if head else events.GENESIS
    out = []
    for r in batch:
        payload = events.encode(r.event)
        prev = events.row_hash(prev, r.stream, r.version, r.type, r.recorded_at, payload)
        conn.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
            (r.seq, r.stream, r.version, r.type, r.recorded_at, payload, prev),
        )
        out.append(msgspec.structs.replace(r, hash=prev))
    return out


def _dump(conn: sqlite3.Connection) -> list[Any]:
    return [
        conn.execute("SELECT rowid, * FROM runs ORDER BY id").fetchall(),
        conn.execute("SELECT rowid, * FROM step_runs ORDER BY run_id, step_id").fetchall(),
        conn.execute("SELECT rowid, * FROM artifacts ORDER BY id").fetchall(),
        conn.execute("SELECT * FROM projection_checkpoints").fetchall(),
    ]


@SETTINGS
@given(
    logs(),
    st.lists(st.integers(1, 12), min_size=1, max_size=40),
    st.lists(st.sampled_from(["main", "main", "main", "none", "other", "rollback"]), max_size=40),
)
def test_persisted_tables_equal_the_fold_and_rebuild(
    log: tuple[list[str], list[Recorded]], sizes: list[int], modes: list[str]
) -> None:
    run_ids, records = log
    conn = _db()
    main, other = Projector(cache_size=4), Projector()
    conn.execute("BEGIN IMMEDIATE")
    main.install(conn)
    conn.execute("COMMIT")
    i, last = 0, "main"
    for n, mode in enumerate(modes + ["main"] * len(records)):
        if i >= len(records):
            break
        last = mode
        batch = records[i : i + sizes[n % len(sizes)]]
        conn.execute("BEGIN IMMEDIATE")
        stored = _insert(conn, batch)
        if mode == "rollback":
            main.apply(conn, stored)
            conn.execute("ROLLBACK")
            continue
        if mode != "none":
            (main if mode == "main" else other).apply(conn, stored)
        conn.execute("COMMIT")
        i += len(batch)
    if last == "none":
        conn.execute("BEGIN IMMEDIATE")
        main.install(conn)  # a reopened store catches up
        conn.execute("COMMIT")
    assert projections.checkpoint(conn) == len(records)

    for rid in run_ids:
        assert projections.get_run_state(conn, rid) == fold_run(records, run_id=rid)
    expected: dict[str, list[str]] = {}
    for r in records:
        if isinstance(r.event, ArtifactStored):
            ids = expected.setdefault(r.event.artifact.name, [])
            if r.event.artifact.id not in ids:
                ids.append(r.event.artifact.id)
    for name, ids in expected.items():
        versions = projections.list_artifact_versions(conn, name)
        assert [(v.id, v.version) for v in versions] == [(a, k + 1) for k, a in enumerate(ids)]

    before = _dump(conn)
    assert projections.rebuild(conn) == len(records)
    assert _dump(conn) == before
