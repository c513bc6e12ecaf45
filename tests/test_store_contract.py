"""The event store's contract: appends, reads, ordering, optimistic concurrency, group commit,
busy handling, append-only triggers, durability and errors."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

import events
from events import (
    ConcurrencyError,
    EventStore,
    MetadataLogged,
    Recorded,
    RunCreated,
    RunStarted,
    StepFailed,
    StepReady,
    StepStarted,
    StepSucceeded,
    StoreBusyError,
    StoreError,
    UnknownEvent,
    _writer,
)

pytestmark = pytest.mark.anyio

ROWS = "SELECT seq, stream, version, type, recorded_at, payload, hash FROM events ORDER BY seq"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["normal", "full"])
def durability(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store" / "evenflow.db"


@pytest.fixture
async def store(db: Path, durability: Any) -> AsyncIterator[EventStore]:
    async with EventStore.open(db, durability=durability) as s:
        yield s


def chain_rows(path: Path) -> list[events.ChainRow]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [events.ChainRow(*row) for row in conn.execute(ROWS)]


def assert_chain_valid(path: Path) -> int:
    problem, count, _ = events.verify_rows(chain_rows(path))
    assert problem is None
    return count


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Hold the database's write lock from another connection (as another process would)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    finally:
        conn.close()


@pytest.fixture
def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many requests each write transaction carried (inline or on the thread; a
    transaction body runs only once the write lock is held)."""
    sizes: list[int] = []
    original = _writer.BatchWriter._write

    def _write(
        self: _writer.BatchWriter, batch: Sequence[_writer.Request]
    ) -> tuple[int, dict[str, int], _writer.Written]:
        sizes.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(_writer.BatchWriter, "_write", _write)
    return sizes


SAMPLE: list[events.AnyEvent] = [
    RunCreated(pipeline="p", run_name="r", parameters={"a": 1, "b": [1, 2.5, "x", None]}),
    RunStarted(owner="me", pid=42),
    StepReady(step="load"),
    StepStarted(step="load", attempt=2),
    StepSucceeded(step="load", outputs={"output": "art-1"}, duration=0.25),
    StepFailed(step="train", error="boom", final=False),
    MetadataLogged(step=None, metadata={"nested": {"k": [True, False]}}),
    UnknownEvent(type="future.thing", data={"x": 1}),
]


# -- append and read -------------------------------------------------------------------------


async def test_append_returns_dense_seqs_after_commit(store: EventStore, db: Path) -> None:
    seqs = await store.append("run-1", SAMPLE[:3])
    assert seqs == [1, 2, 3]
    # Committed: visible to an unrelated connection as soon as append returns.
    assert [row.seq for row in chain_rows(db)] == [1, 2, 3]
    assert await store.append("run-2", SAMPLE[3:5]) == [4, 5]
    assert await store.append("run-1", []) == []
    assert await store.last_seq() == 5


async def test_read_stream_round_trips_every_field(store: EventStore) -> None:
    await store.append("run-1", SAMPLE)
    await store.append("other", [StepReady(step="x")])
    recs = await store.read_stream("run-1")
    assert [r.event for r in recs] == SAMPLE
    assert [r.version for r in recs] == list(range(1, len(SAMPLE) + 1))
    assert [r.type for r in recs] == [events.tag_of(e) for e in SAMPLE]
    assert all(r.stream == "run-1" for r in recs)
    assert all(isinstance(r.hash, bytes) and len(r.hash) == 32 for r in recs)
    assert recs == sorted(recs, key=lambda r: r.seq)
    assert len({r.recorded_at for r in recs}) == 1  # one commit, one timestamp
    assert [r.version for r in await store.read_stream("run-1", from_version=6)] == [7, 8]
    assert [r.seq for r in await store.read_stream("run-1", to_seq=2)] == [1, 2]


async def test_read_range_bounds_and_limit(store: EventStore) -> None:
    for i in range(10):
        await store.append(f"s{i % 3}", [StepReady(step=str(i))])
    assert [r.seq for r in await store.read_range()] == list(range(1, 11))
    assert [r.seq for r in await store.read_range(3)] == list(range(4, 11))
    assert [r.seq for r in await store.read_range(3, 6)] == [4, 5, 6]
    assert [r.seq for r in await store.read_range(3, limit=2)] == [4, 5]
    assert await store.read_range(10) == []


async def test_read_by_type_prefix_and_exact(store: EventStore) -> None:
    await store.append("run-1", SAMPLE)
    step = await store.read_by_type("step.")
    assert [r.type for r in step] == ["step.ready", "step.started", "step.succeeded", "step.failed"]
    assert [r.type for r in await store.read_by_type("run.started")] == ["run.started"]
    assert [r.seq for r in await store.read_by_type("step.", after_seq=3, limit=2)] == [4, 5]
    assert [r.type for r in await store.read_by_type("future.")] == ["future.thing"]
    assert await store.read_by_type("schedule.") == []


async def test_read_latest_is_newest_first(store: EventStore) -> None:
    for i in range(6):
        await store.append("a" if i % 2 else "b", [StepReady(step=str(i))])
    assert [r.seq for r in await store.read_latest(3)] == [6, 5, 4]
    assert [r.seq for r in await store.read_latest(10)] == [6, 5, 4, 3, 2, 1]
    latest_a = await store.read_latest(2, stream="a")
    assert [(r.seq, r.version) for r in latest_a] == [(6, 3), (4, 2)]


async def test_versions_and_run_read(store: EventStore) -> None:
    assert await store.last_seq() == 0
    assert await store.stream_version("s") == 0
    await store.append("s", [StepReady(step="a"), StepReady(step="b")])
    await store.append("t", [StepReady(step="c")])
    assert await store.stream_version("s") == 2
    assert await store.stream_version("t") == 1

    def count_rows(conn: sqlite3.Connection, stream: str) -> int:
        row = conn.execute("SELECT COUNT(*) FROM events WHERE stream = ?", (stream,)).fetchone()
        return int(row[0])

    assert await store.run_read(count_rows, "s") == 2


async def test_concurrent_appenders_get_dense_seqs_and_versions(
    store: EventStore, db: Path
) -> None:
    results: dict[str, list[int]] = {}

    async def producer(name: str) -> None:
        seqs: list[int] = []
        for i in range(20):
            seqs += await store.append(name, [StepReady(step=f"{name}-{i}")] * (1 + i % 3))
        results[name] = seqs

    async with anyio.create_task_group() as tg:
        for p in range(8):
            tg.start_soon(producer, f"p{p}")

    every = sorted(seq for seqs in results.values() for seq in seqs)
    assert every == list(range(1, len(every) + 1))
    for name, seqs in results.items():
        assert seqs == sorted(seqs)  # a producer's appends commit in the order it made them
        recs = await store.read_stream(name)
        assert [r.version for r in recs] == list(range(1, len(seqs) + 1))
        assert [r.seq for r in recs] == seqs
    assert assert_chain_valid(db) == len(every)


async def test_reopen_continues_seqs_versions_and_chain(db: Path) -> None:
    async with EventStore.open(db) as store:
        await store.append("s", [StepReady(step="a")])
    async with EventStore.open(db) as store:
        assert await store.stream_version("s") == 1
        assert await store.append("s", [StepReady(step="b")], expected_version=1) == [2]
    assert assert_chain_valid(db) == 2


# -- optimistic concurrency and group commit ---------------------------------------------------


async def test_expected_version(store: EventStore) -> None:
    assert await store.append("s", [StepReady(step="a")], expected_version=0) == [1]
    assert await store.append("s", [StepReady(step="b")], expected_version=1) == [2]
    with pytest.raises(ConcurrencyError) as info:
        await store.append("s", [StepReady(step="c")], expected_version=1)
    assert (info.value.stream, info.value.expected, info.value.actual) == ("s", 1, 2)
    assert "'s'" in str(info.value)
    with pytest.raises(ConcurrencyError):
        await store.append("new", [StepReady(step="c")], expected_version=3)
    assert await store.stream_version("s") == 2
    assert await store.last_seq() == 2  # a rejected append writes nothing


async def _race_in_one_batch(
    store: EventStore, db: Path, appends: list[tuple[str, list[events.AnyEvent], int | None]]
) -> list[list[int] | BaseException]:
    """Run ``appends`` concurrently while another connection holds the write lock, so that they
    queue up and the writer commits them together in one batch."""
    outcomes: list[list[int] | BaseException] = [[] for _ in appends]

    async def one(i: int) -> None:
        stream, evs, expected = appends[i]
        try:
            outcomes[i] = await store.append(stream, evs, expected_version=expected)
        except (ConcurrencyError, StoreError) as exc:
            outcomes[i] = exc

    with write_lock(db) as lock:
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.append, "blocker", [StepReady(step="blocker")])
            await anyio.wait_all_tasks_blocked()  # the writer now waits for the lock
            for i in range(len(appends)):
                tg.start_soon(one, i)
            await anyio.wait_all_tasks_blocked()  # every request is queued behind the blocker
            lock.execute("ROLLBACK")
    return outcomes


async def test_same_expected_version_in_one_batch_commits_exactly_one(
    store: EventStore, db: Path, batch_sizes: list[int]
) -> None:
    await store.append("s", [StepReady(step="first")])
    batch_sizes.clear()
    outcomes = await _race_in_one_batch(
        store,
        db,
        [("s", [StepReady(step="a")], 1), ("s", [StepReady(step="b")], 1)],
    )
    assert batch_sizes == [1, 2]  # the blocker, then both racers in one transaction
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    committed = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], ConcurrencyError)
    assert (errors[0].expected, errors[0].actual) == (1, 2)
    assert committed == [[3]]
    assert [r.version for r in await store.read_stream("s")] == [1, 2]


class PoisonHook:
    """A transaction hook that fails any transaction carrying a ``poison`` metadata event."""

    def __init__(self) -> None:
        self.applied: list[int] = []

    def install(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS hook_seen (seq INTEGER PRIMARY KEY)")

    def apply(self, conn: sqlite3.Connection, batch: Sequence[Recorded]) -> None:
        for rec in batch:
            if isinstance(rec.event, MetadataLogged) and rec.event.metadata.get("poison"):
                raise RuntimeError("poisoned batch")
        conn.executemany("INSERT INTO hook_seen VALUES (?)", [(r.seq,) for r in batch])


async def test_a_failing_request_does_not_fail_the_rest_of_its_batch(
    db: Path, batch_sizes: list[int]
) -> None:
    async with EventStore.open(db, hooks=[PoisonHook()]) as store:
        batch_sizes.clear()
        outcomes = await _race_in_one_batch(
            store,
            db,
            [
                ("a", [StepReady(step="a")], None),
                ("p", [MetadataLogged(metadata={"poison": True})], None),
                ("c", [StepReady(step="c1"), StepReady(step="c2")], 0),
            ],
        )
        assert batch_sizes[:2] == [1, 3]  # the racers were tried together first
        ok_a, poisoned, ok_c = outcomes
        assert isinstance(poisoned, StoreError)
        assert str(db) in str(poisoned)
        assert "poisoned batch" in str(poisoned)
        assert isinstance(ok_a, list)
        assert isinstance(ok_c, list)
        assert sorted(ok_a + ok_c) == [2, 3, 4]  # no seq was burnt by the failed request
        assert await store.read_stream("p") == []
        assert await store.append("a", [StepReady(step="again")], expected_version=1) == [5]

        def seen(conn: sqlite3.Connection) -> list[int]:
            return [r[0] for r in conn.execute("SELECT seq FROM hook_seen ORDER BY seq")]

        assert await store.run_read(seen) == [1, 2, 3, 4, 5]  # hook rows commit with events
    assert assert_chain_valid(db) == 5


async def test_version_cache_sees_writes_from_another_writer(db: Path) -> None:
    async with EventStore.open(db) as a, EventStore.open(db) as b:
        await a.append("s", [StepReady(step="a1")])
        await a.append("s", [StepReady(step="a2")], expected_version=1)
        await b.append("s", [StepReady(step="b3")], expected_version=2)
        with pytest.raises(ConcurrencyError) as info:
            await a.append("s", [StepReady(step="a3")], expected_version=2)
        assert info.value.actual == 3
        assert await a.append("s", [StepReady(step="a4")], expected_version=3) == [4]
        assert await b.append("t", [StepReady(step="t1")]) == [5]
        assert await a.append("s", [StepReady(step="a5")]) == [6]
    recs = chain_rows(db)
    assert [(r.stream, r.version) for r in recs] == [
        ("s", 1),
        ("s", 2),
        ("s", 3),
        ("s", 4),
        ("t", 1),
        ("s", 5),
    ]
    assert assert_chain_valid(db) == 6


async def test_large_appends_span_many_insert_statements(store: EventStore, db: Path) -> None:
    sizes = [1, 2, 3, 255, 256, 257, 1000, 9000]  # 9000 exceeds one batch's row budget
    expected = 0
    for n in sizes:
        seqs = await store.append(f"s{n}", [StepReady(step=str(i)) for i in range(n)])
        assert seqs == list(range(expected + 1, expected + n + 1))
        expected += n
    assert assert_chain_valid(db) == expected


# -- cancellation ----------------------------------------------------------------------------


async def test_cancelled_producers_leave_a_consistent_log(store: EventStore, db: Path) -> None:
    returned: list[int] = []

    async def producer(name: str) -> None:
        for i in range(10_000):
            returned.extend(await store.append(name, [StepReady(step=str(i))] * 3))

    async with anyio.create_task_group() as tg:
        for p in range(6):
            tg.start_soon(producer, f"p{p}")
        await anyio.sleep(0.1)
        tg.cancel_scope.cancel()
    # A request the writer had already received still commits, though its producer was
    # cancelled; it is ahead of this one in the queue, so it has committed when this returns.
    (last,) = await store.append("after", [StepReady(step="x")])
    assert set(returned) <= set(range(1, last))
    assert len(returned) >= 3
    assert assert_chain_valid(db) == last
    for p in range(6):
        versions = [r.version for r in await store.read_stream(f"p{p}")]
        assert versions == list(range(1, len(versions) + 1))


async def test_shielded_append_in_a_cancelled_scope_commits(store: EventStore) -> None:
    with anyio.CancelScope() as scope:
        scope.cancel()
        with anyio.CancelScope(shield=True):
            assert await store.append("s", [StepReady(step="bookkeeping")]) == [1]
    assert scope.cancel_called


# -- other processes holding the lock ------------------------------------------------------------


async def test_append_waits_while_another_connection_holds_the_lock(
    store: EventStore, db: Path
) -> None:
    with write_lock(db) as lock:
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.append, "s", [StepReady(step="a")])
            await anyio.sleep(0.2)  # the writer keeps retrying meanwhile, with backoff
            assert await store.last_seq() == 0
            lock.execute("ROLLBACK")
    assert await store.last_seq() == 1


async def test_busy_past_the_deadline_is_a_store_busy_error(db: Path) -> None:
    async with EventStore.open(db, busy_deadline=0.2) as store:
        with write_lock(db), pytest.raises(StoreBusyError) as info:
            await store.append("s", [StepReady(step="a")])
        assert str(db) in str(info.value)
        assert "database is locked" not in str(info.value)
        assert await store.append("s", [StepReady(step="a")]) == [1]  # usable afterwards


# -- the table is append-only and hash-chained ---------------------------------------------------


async def test_triggers_reject_update_and_delete(store: EventStore, db: Path) -> None:
    await store.append("s", [StepReady(step="a")])
    with contextlib.closing(sqlite3.connect(db)) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE events SET payload = x'00' WHERE seq = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM events WHERE seq = 1")
        conn.rollback()
    assert [r.event for r in await store.read_stream("s")] == [StepReady(step="a")]


async def _chained_db(db: Path) -> None:
    async with EventStore.open(db) as store:
        for i in range(5):
            await store.append(f"s{i % 2}", [StepReady(step=f"step-{i}")])
    with contextlib.closing(sqlite3.connect(db)) as conn:
        for trigger in events._schema.TRIGGERS:
            conn.execute(f"DROP TRIGGER {trigger}")
        conn.commit()


async def test_chain_detects_an_edited_payload(db: Path) -> None:
    await _chained_db(db)
    assert_chain_valid(db)
    edited = events.encode(StepReady(step="forged"))
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE events SET payload = ? WHERE seq = 3", (edited,))
        conn.commit()
    problem, _, _ = events.verify_rows(chain_rows(db))
    assert problem is not None
    assert problem.seq == 3


async def test_chain_detects_a_deleted_row(db: Path) -> None:
    await _chained_db(db)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("DELETE FROM events WHERE seq = 2")
        conn.commit()
    problem, _, _ = events.verify_rows(chain_rows(db))
    assert problem is not None
    assert problem.seq == 3
    assert "missing" in problem.problem


async def test_chain_detects_a_deleted_row_renumbered(db: Path) -> None:
    await _chained_db(db)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("DELETE FROM events WHERE seq = 2")
        conn.execute("UPDATE events SET seq = seq - 1 WHERE seq > 2")
        conn.commit()
    problem, _, _ = events.verify_rows(chain_rows(db))
    assert problem is not None
    assert problem.seq == 2


async def test_chain_detects_swapped_rows(db: Path) -> None:
    await _chained_db(db)
    rows = chain_rows(db)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        # Swap the whole content of rows 2 and 3 (hashes included), keeping seq order.
        conn.execute("DELETE FROM events WHERE seq IN (2, 3)")
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(2, *rows[2][1:]), (3, *rows[1][1:])],
        )
        conn.commit()
    problem, _, _ = events.verify_rows(chain_rows(db))
    assert problem is not None
    assert problem.seq == 2


# -- durability ------------------------------------------------------------------------------


async def test_durability_full_commits_and_reopens(db: Path) -> None:
    async with EventStore.open(db, durability="full") as store:
        assert await store.append("s", [StepReady(step="a")]) == [1]

        def mode(conn: sqlite3.Connection) -> str:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0])

        assert await store.run_read(mode) == "wal"
    async with EventStore.open(db) as store:
        assert [r.seq for r in await store.read_stream("s")] == [1]


async def test_unknown_durability_is_a_store_error(db: Path) -> None:
    with pytest.raises(StoreError, match="durability"):
        async with EventStore.open(db, durability="sometimes"):  # type: ignore[arg-type]
            pass
    assert not db.exists()  # noqa: ASYNC240  (a test's stat, not a hot path)


# -- errors ----------------------------------------------------------------------------------


async def test_closed_store_raises_store_error(db: Path) -> None:
    async with EventStore.open(db) as store:
        await store.append("s", [StepReady(step="a")])
    with pytest.raises(StoreError, match="closed"):
        await store.append("s", [StepReady(step="b")])
    with pytest.raises(StoreError, match="closed"):
        await store.read_stream("s")
    with pytest.raises(StoreError, match="closed"):
        await store.last_seq()
    with pytest.raises(StoreError, match="closed"):
        async with store.subscribe():
            pass


async def test_encode_failure_names_the_stream(store: EventStore) -> None:
    bad = MetadataLogged(metadata={"x": object()})
    with pytest.raises(StoreError) as info:
        await store.append("run-7", [StepReady(step="ok"), bad])
    assert "'run-7'" in str(info.value)
    assert "MetadataLogged" in str(info.value)
    assert await store.last_seq() == 0  # nothing of the failed append was written
    assert await store.append("run-7", [StepReady(step="ok")]) == [1]


async def test_non_event_is_a_store_error(store: EventStore) -> None:
    with pytest.raises(StoreError, match="'s'"):
        await store.append("s", [object()])  # type: ignore[list-item]


async def test_errors_in_the_body_are_not_wrapped_in_groups(db: Path) -> None:
    with pytest.raises(ConcurrencyError):
        async with EventStore.open(db) as store:
            await store.append("s", [StepReady(step="a")], expected_version=5)
