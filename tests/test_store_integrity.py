"""The log stays readable and its audit stays exact whatever is appended or edited by hand:
an event that would not decode back is refused at append, an edit that changes a column's
type is reported as an edit, and a run's deleted last event is seen by the run's own audit.
Each test was a bug found in review."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

import events
import projections._tables
from engine import Client, log_metadata, pipeline, step
from engine.errors import EngineError, MetadataError
from events import ConcurrencyError, EventStore, MetadataLogged, StepReady, StoreError, UnknownEvent

COLUMNS = "seq, stream, version, type, recorded_at, payload, hash"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store" / "evenflow.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[EventStore]:
    async with EventStore.open(db) as s:
        yield s


def fill(path: Path, appends: list[tuple[str, str]]) -> None:
    """Append one StepReady per (stream, step), each in its own commit."""

    async def go() -> None:
        async with EventStore.open(path) as s:
            for stream, name in appends:
                await s.append(stream, [StepReady(step=name)])

    anyio.run(go, backend="asyncio")


@contextlib.contextmanager
def tamper(path: Path) -> Iterator[sqlite3.Connection]:
    """Drop the append-only triggers, let the caller edit, then put the triggers back exactly as
    evenflow creates them (a careful tamperer leaves no trigger problem behind)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for name in events._schema.TRIGGERS:
            conn.execute(f"DROP TRIGGER {name}")
        yield conn
        for statement in events._schema._statements(events._schema.DDL):
            if "CREATE TRIGGER" in statement:
                conn.execute(statement)
    finally:
        conn.close()


# -- audit verify ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE events SET payload = 'forged' WHERE seq = 3",  # what the sqlite3 shell stores
        "UPDATE events SET hash = 'forged' WHERE seq = 3",
        "UPDATE events SET recorded_at = 'yesterday' WHERE seq = 3",
    ],
)
def test_audit_reports_an_edit_that_changes_a_column_type(db: Path, edit: str) -> None:
    fill(db, [("a", f"s{i}") for i in range(5)])
    with tamper(db) as conn:
        conn.execute(edit)
    # Expected: a report naming seq 3 as edited. Observed: TypeError / struct.error escapes
    # (the CLI then exits 2 with "error: TypeError: ..." instead of exit 1 "audit ... failed").
    report = events.audit_database(db)
    assert not report.ok
    assert report.problems[0].seq == 3
    assert report.problems[0].kind == "edited"


def test_run_scoped_audit_sees_the_runs_last_event_deleted(db: Path) -> None:
    # Run "a" ends at seq 2; another run's event follows it, so seq 2 is not the log's head.
    fill(db, [("a", "first"), ("a", "last"), ("b", "other")])
    with tamper(db) as conn:
        conn.execute("DELETE FROM events WHERE seq = 2")
    assert not events.audit_database(db).ok  # the whole-log audit sees the gap
    # Expected: the run-scoped audit (`evenflow audit verify --run a`) fails too.
    # Observed: ok, 1 event checked: the run's final event vanished without a trace.
    report = events.audit_database(db, stream="a")
    assert not report.ok
    assert report.problems[0].kind == "missing"


# -- appends that commit an undecodable payload --------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        MetadataLogged(metadata={1: "x"}),  # type: ignore[dict-item]  # dict[str, Any] field
        UnknownEvent(type="step.ready", data={}),  # a known tag, not its schema
    ],
    ids=["non-str-metadata-key", "unknown-event-with-known-tag"],
)
@pytest.mark.anyio
async def test_an_event_that_does_not_decode_back_is_rejected(
    store: EventStore, event: events.AnyEvent
) -> None:
    # Expected: a StoreError at append, nothing written. Observed: committed as seq 1, and every
    # later read of the log (read_stream, read_range, tail, projections rebuild) raises
    # StoreCorruptedError "does not match its schema" forever.
    with pytest.raises(StoreError):
        await store.append("run-1", [event])
    assert await store.read_range() == []
    await store.append("run-1", [StepReady(step="after")])
    assert [r.event for r in await store.read_stream("run-1")] == [StepReady(step="after")]


@step
def _logs_int_key() -> int:
    log_metadata({1: "x"})  # type: ignore[dict-item]
    return 1


@pipeline
def _int_key_pipeline() -> None:
    _logs_int_key()


def test_log_metadata_with_a_non_string_key_does_not_break_the_home() -> None:
    with pytest.raises(EngineError) as raised:
        _int_key_pipeline()
    cause = raised.value.__cause__
    assert isinstance(cause, MetadataError)
    assert "step '_logs_int_key'" in str(cause)
    assert "keys must be strings, got 1 (int)" in str(cause)
    # Observed: the run "completed", then list_pipeline_runs raises msgspec.ValidationError
    # (`evenflow runs list` prints "error: ValidationError: ..."), rebuild raises
    # StoreCorruptedError, and `evenflow tail` fails: the home stays broken for good.
    client = Client()
    assert len(client.list_pipeline_runs()) == 1
    assert client.rebuild_projections() >= 1


@step
def _logs_an_object() -> int:
    log_metadata({"model": object()})
    return 1


@pipeline
def _object_pipeline() -> None:
    _logs_an_object()


def test_log_metadata_names_the_value_it_cannot_record() -> None:
    with pytest.raises(EngineError) as raised:
        _object_pipeline()
    cause = raised.value.__cause__
    assert isinstance(cause, MetadataError)
    assert "metadata 'model' (object) cannot be recorded" in str(cause)
    (run,) = Client().list_pipeline_runs()
    assert run.steps["_logs_an_object"].status.value == "failed"


@pytest.mark.anyio
async def test_an_empty_append_still_checks_its_expected_version(store: EventStore) -> None:
    """Nothing to write, but ``expected_version`` is still a promise about the stream: an
    empty append is how a caller checks a stream it decided nothing about has not moved."""
    await store.append("run-1", [StepReady(step="a")])
    assert await store.append("run-1", [], expected_version=1) == []
    with pytest.raises(ConcurrencyError) as raised:
        await store.append("run-1", [], expected_version=0)
    assert "run-1" in str(raised.value)
    assert await store.append("never-written", [], expected_version=0) == []


def test_a_payload_that_does_not_decode_is_named_by_its_seq_when_folded(db: Path) -> None:
    fill(db, [("a", f"s{i}") for i in range(4)])
    with tamper(db) as conn:
        conn.execute("UPDATE events SET payload = x'01c1' WHERE seq = 3")  # 0xc1: never msgpack
    conn = events.connect_database(db)
    try:
        rows = conn.execute("SELECT seq, stream, version, type, recorded_at, payload FROM events")
        with pytest.raises(events.StoreCorruptedError, match="event seq 3: "):
            projections._tables.records(rows.fetchall())
    finally:
        conn.close()
