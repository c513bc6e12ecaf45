"""The persisted step rows: their layout, the steps that have none, the fast paths of the fold."""

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
    MetadataLogged,
    Recorded,
    RunCreated,
    RunStarted,
    StepCached,
    StepDeclared,
    StepReady,
    StepSpec,
    StepStarted,
    StepSucceeded,
    _schema,
)
from projections import ExecutionStatus, Projector, StepView, fold_run
from projections._step_reducer import HOT, transition
from projections._tables import CHECKPOINT
from projections._views import STEP_FIXED_FIELDS, StoredStep, decode_step, encode_step

RUN = "0a1b2c3d-0000-4000-8000-000000000001"


def ref(aid: str) -> ArtifactRef:
    return ArtifactRef(
        id=aid,
        name="output",
        content_hash=f"h{aid}",
        uri=f"u/{aid}",
        materializer="m",
        type_name="t",
    )


class Log:
    """Hand-made records with dense seqs and per-stream versions."""

    def __init__(self) -> None:
        self.records: list[Recorded] = []
        self.versions: dict[str, int] = {}

    def add(self, stream: str, *evs: events.AnyEvent) -> list[Recorded]:
        out = []
        for ev in evs:
            v = self.versions[stream] = self.versions.get(stream, 0) + 1
            seq = len(self.records) + 1
            rec = Recorded(seq, stream, v, events.tag_of(ev), 1000.0 + seq, ev)
            self.records.append(rec)
            out.append(rec)
        return out


def open_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    _schema.initialise_in_tx(conn)
    conn.execute("COMMIT")
    return conn


def append(
    conn: sqlite3.Connection, records: Sequence[Recorded], projector: Projector | None
) -> None:
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


def install(conn: sqlite3.Connection, projector: Projector) -> None:
    conn.execute("BEGIN IMMEDIATE")
    projector.install(conn)
    conn.execute("COMMIT")


def dump(conn: sqlite3.Connection) -> list[list[Any]]:
    return [
        conn.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid").fetchall()
        for table in ("runs", "step_runs", "artifacts", "projection_checkpoints")
    ] + [conn.execute("SELECT * FROM cache_entries ORDER BY run_id, step_id").fetchall()]


def full_view() -> StepView:
    spec = StepSpec(id="s", name="fn", inputs={"x": events.InputRef("a")}, parameters={"k": 1})
    return StepView(
        run_id=RUN,
        id="s",
        name="fn",
        spec=spec,
        status=ExecutionStatus.FAILED,
        attempt=3,
        queued_at=1.0,
        start_time=2.0,
        end_time=3.5,
        duration=1.5,
        outputs={"output": [ref("a1")]},
        cache_key="ck",
        original_step_run_id="r/s",
        error="boom",
        error_type="ValueError",
        retry_due_at=9.0,
        logs_uri="file:///log",
        metadata={"m": [1, 2]},
        artifacts={"a1": ref("a1")},
        last_seq=42,
    )


# ---------------------------------------------------------------------------------------------
# The row layout
# ---------------------------------------------------------------------------------------------


def test_a_stored_step_is_the_view_without_its_fixed_fields() -> None:
    fields = StepView.__struct_fields__
    assert fields[: len(STEP_FIXED_FIELDS)] == STEP_FIXED_FIELDS
    assert StoredStep.__struct_fields__ == ("spec_seq", *fields[len(STEP_FIXED_FIELDS) :])
    view = full_view()
    stored = decode_step(encode_step(view, 7))
    assert stored.spec_seq == 7
    assert stored.view(RUN, view.spec) == view
    assert b"inputs" not in encode_step(view, 7)  # the spec is not in the row


def test_a_stored_step_keeps_each_artifact_ref_once() -> None:
    view = msgspec.structs.replace(
        full_view(),
        outputs={"output": [ref("a1")], "other": [ref("a2"), ref("a1")]},
        artifacts={"a1": ref("a1"), "a2": ref("a2")},
    )
    blob = encode_step(view, 3)
    assert blob.count(b"ha1") == 1
    assert blob.count(b"ha2") == 1
    assert decode_step(blob).outputs == {"output": ["a1"], "other": ["a2", "a1"]}
    assert decode_step(blob).view(RUN, view.spec) == view


def test_an_output_that_is_not_among_the_artifacts_is_stored_whole() -> None:
    stray = msgspec.structs.replace(ref("a1"), uri="elsewhere")  # same id, another ref
    view = msgspec.structs.replace(
        full_view(), outputs={"output": [stray], "b": [ref("b1")]}, artifacts={"a1": ref("a1")}
    )
    stored = decode_step(encode_step(view, 0))
    assert stored.outputs == {"output": [stray], "b": [ref("b1")]}
    assert stored.view(RUN, view.spec) == view


def test_a_row_written_with_whole_output_refs_still_reads() -> None:
    view = full_view()
    old_layout = msgspec.msgpack.encode(
        (7, *msgspec.structs.astuple(view)[len(STEP_FIXED_FIELDS) :])
    )
    assert old_layout != encode_step(view, 7)
    assert old_layout.count(b"ha1") == 2
    assert decode_step(old_layout).view(RUN, view.spec) == view


def test_a_row_naming_an_output_it_does_not_hold_is_a_clear_error() -> None:
    view = full_view()
    blob = encode_step(msgspec.structs.replace(view, artifacts={"a1": ref("a1")}), 0)
    broken = msgspec.structs.replace(decode_step(blob), artifacts={})
    with pytest.raises(msgspec.ValidationError, match="output artifact 'a1' is not among"):
        broken.view(RUN, view.spec)


def test_hot_transitions_are_the_ones_the_match_picks() -> None:
    view = full_view()
    samples = {
        StepReady: StepReady(step="s"),
        StepStarted: StepStarted(step="s", attempt=4),
        ArtifactStored: ArtifactStored(step="s", artifact=ref("a2")),
        StepSucceeded: StepSucceeded(step="s", outputs={"output": "a1"}, cache_key="k2"),
        StepCached: StepCached(
            step="s", cache_key="k", source_run="r0", source_step="s0", outputs={"o": ref("x")}
        ),
    }
    assert set(samples) == set(HOT)
    for cls, event in samples.items():
        assert HOT[cls](view, event, 50.0, 60) == transition(view, event, 50.0, 60)


# ---------------------------------------------------------------------------------------------
# Steps without a row
# ---------------------------------------------------------------------------------------------


def test_steps_run_created_declared_have_no_row_until_they_change(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db")
    proj = Projector()
    install(conn, proj)
    log = Log()
    specs = [StepSpec(id=s, name=f"fn_{s}") for s in ("a", "b", "c")]
    append(conn, log.add(RUN, RunCreated(pipeline="p", run_name="r", steps=specs)), proj)
    assert conn.execute("SELECT COUNT(*) FROM step_runs").fetchone() == (0,)
    state = projections.get_run_state(conn, RUN)
    assert state == fold_run(log.records)
    assert state is not None
    assert [s.status for s in state.steps.values()] == [ExecutionStatus.PENDING] * 3
    append(conn, log.add(RUN, RunStarted(), StepReady(step="b")), proj)
    assert conn.execute("SELECT step_id, status FROM step_runs").fetchall() == [("b", "queued")]
    (blob,) = conn.execute("SELECT view FROM step_runs").fetchone()
    assert decode_step(blob).spec_seq == 0  # the run's run.created declared it
    assert projections.get_run_state(conn, RUN) == fold_run(log.records)
    # A projector with an empty cache (another process) finds the pending steps too.
    append(conn, log.add(RUN, StepStarted(step="a"), StepReady(step="b")), Projector())
    assert projections.get_run_state(conn, RUN) == fold_run(log.records)


def test_declared_steps_are_read_back_from_their_event(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db")
    proj = Projector()
    install(conn, proj)
    log = Log()
    spec = StepSpec(id="d", name="fn_d", parameters={"n": 3})
    append(conn, log.add(RUN, RunCreated(pipeline="p", run_name="r", dynamic=True)), proj)
    append(conn, log.add(RUN, StepDeclared(spec=spec), StepReady(step="d")), proj)
    fresh = Projector()  # cold cache: the spec comes from the step.declared event
    append(conn, log.add(RUN, StepStarted(step="d"), MetadataLogged(step="d")), fresh)
    state = projections.get_run_state(conn, RUN)
    assert state == fold_run(log.records)
    assert state is not None
    assert state.steps["d"].spec == spec
    (blob,) = conn.execute("SELECT view FROM step_runs WHERE step_id = 'd'").fetchone()
    assert decode_step(blob).spec_seq == 2  # the step.declared's seq


def test_a_row_naming_no_declaring_event_is_a_clear_error(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db")
    proj = Projector()
    install(conn, proj)
    log = Log()
    created = RunCreated(pipeline="p", run_name="r", steps=[StepSpec(id="a", name="fn")])
    append(conn, log.add(RUN, created, StepReady(step="a")), proj)
    (blob,) = conn.execute("SELECT view FROM step_runs").fetchone()
    stored = msgspec.structs.replace(decode_step(blob), spec_seq=2)  # seq 2 is step.ready
    conn.execute("UPDATE step_runs SET view = ?", (msgspec.msgpack.encode(stored),))
    with pytest.raises(events.StoreCorruptedError, match="projections rebuild"):
        projections.get_steps(conn, RUN)


# ---------------------------------------------------------------------------------------------
# Big batches, a small cache, an older layout
# ---------------------------------------------------------------------------------------------


def w2_log(n: int) -> Log:
    """A W2-shaped log: n steps declared by run.created, each ready, started, stored, done."""
    log = Log()
    specs = [StepSpec(id=f"s{i}", name="noop") for i in range(n)]
    log.add(RUN, RunCreated(pipeline="p", run_name="r", steps=specs), RunStarted())
    log.add(RUN, *(StepReady(step=s.id) for s in specs))
    for i, s in enumerate(specs):
        log.add(
            RUN,
            StepStarted(step=s.id),
            ArtifactStored(step=s.id, artifact=ref(f"x{i}")),
            StepSucceeded(step=s.id, outputs={"output": f"x{i}"}, cache_key=f"k{i % 7}"),
        )
    return log


@pytest.mark.parametrize(("batch", "cache_size"), [(700, 32_768), (333, 40), (1, 3)])
def test_batches_and_cache_sizes_give_the_fold_and_the_rebuild(
    tmp_path: Path, batch: int, cache_size: int
) -> None:
    n = 600 if batch > 1 else 60
    log = w2_log(n)
    conn = open_db(tmp_path / "db")
    proj = Projector(cache_size=cache_size)
    install(conn, proj)
    for start in range(0, len(log.records), batch):
        append(conn, log.records[start : start + batch], proj)
    assert projections.get_run_state(conn, RUN) == fold_run(log.records)
    assert projections.checkpoint(conn) == len(log.records)
    before = dump(conn)
    assert len(before[1]) == n  # one row per step: none was written at run.created
    assert len(before[2]) == n
    assert [row[3] for row in before[2]] == list(range(1, n + 1))  # versions in log order
    assert projections.rebuild(conn) == len(log.records)
    assert dump(conn) == before


def test_rows_of_an_older_layout_are_dropped_and_refolded(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "db")
    log = w2_log(3)
    append(conn, log.records, None)
    # What the first layout left: its checkpoint name, and a step row this one cannot read.
    conn.execute("CREATE TABLE step_runs (run_id TEXT, step_id TEXT, status TEXT, view BLOB)")
    conn.execute("INSERT INTO step_runs VALUES (?, 's0', 'completed', x'80')", (RUN,))
    conn.execute("CREATE TABLE projection_checkpoints (name TEXT PRIMARY KEY, seq INTEGER)")
    conn.execute("INSERT INTO projection_checkpoints VALUES ('core', ?)", (len(log.records),))
    install(conn, Projector())
    assert conn.execute("SELECT * FROM projection_checkpoints").fetchall() == [
        (CHECKPOINT, len(log.records))
    ]
    assert projections.get_run_state(conn, RUN) == fold_run(log.records)
