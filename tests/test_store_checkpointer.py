"""The store's background checkpointer: committed WAL pages reach the database file without the
writer copying them, the thread stops with the store, and a failing checkpoint harms nothing."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

import anyio
import pytest

from events import EventStore, StepReady
from events._checkpointer import Checkpointer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def rows_in_database_file(path: Path) -> int:
    """Events in the database file alone: ``immutable=1`` makes SQLite ignore the WAL."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError:  # the events table itself is still only in the WAL
        return 0
    finally:
        conn.close()


def checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "evenflow-checkpoint"]


async def wait_until(predicate: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await anyio.sleep(0.01)


async def test_committed_rows_reach_the_database_file_while_the_store_is_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "evenflow.db"
    async with EventStore.open(path) as store:
        # Twenty small commits: a few dozen WAL pages, far below SQLite's automatic
        # checkpoint (1,000 pages), so only the background checkpointer copies them.
        for i in range(20):
            await store.append("s", [StepReady(step=f"a{i}")], eager=True)
        await wait_until(lambda: rows_in_database_file(path) == 20)
        assert store.checkpointer is not None
        assert store.checkpointer.checkpoints >= 1
        seqs = await store.append("s", [StepReady(step="last")])
        assert seqs == [21]  # the writer goes on as before
    assert rows_in_database_file(path) == 21  # closing checkpoints the rest


async def test_the_thread_stops_with_the_store(tmp_path: Path) -> None:
    before = len(checkpoint_threads())
    async with EventStore.open(tmp_path / "evenflow.db") as store:
        await store.append("s", [StepReady(step="a")])
        assert len(checkpoint_threads()) == before + 1
    assert len(checkpoint_threads()) == before


async def test_a_store_closed_by_cancellation_still_stops_the_thread(tmp_path: Path) -> None:
    before = len(checkpoint_threads())
    with anyio.move_on_after(0.2):
        async with EventStore.open(tmp_path / "evenflow.db") as store:
            await store.append("s", [StepReady(step="a")])
            await anyio.sleep(5)
    assert len(checkpoint_threads()) == before


async def test_a_failing_checkpoint_is_reported_once_and_appends_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def broken(self: Checkpointer) -> None:
        nonlocal calls
        calls += 1
        self._report(sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(Checkpointer, "_checkpoint", broken)
    path = tmp_path / "evenflow.db"
    with caplog.at_level(logging.WARNING, logger="events._checkpointer"):
        async with EventStore.open(path) as store:
            for i in range(5):
                await store.append("s", [StepReady(step=f"a{i}")], eager=True)
                await wait_until(lambda i=i: calls > i)  # type: ignore[misc]
            assert [e.seq for e in await store.read_stream("s")] == [1, 2, 3, 4, 5]
    warnings = [r for r in caplog.records if "background checkpoint" in r.getMessage()]
    assert len(warnings) == 1
    assert "disk I/O error" in warnings[0].getMessage()
    assert rows_in_database_file(path) == 5  # the last connection's checkpoint still ran


def test_a_database_it_cannot_open_means_no_checkpointer_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "evenflow.db"
    with caplog.at_level(logging.WARNING, logger="events._checkpointer"):
        assert Checkpointer.start(missing, "NORMAL") is None
    assert not missing.exists()  # mode=rw: it never creates the file
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"no background checkpoints for {missing}")


async def test_a_database_renamed_while_open_keeps_its_rows_and_no_file_appears(
    tmp_path: Path,
) -> None:
    path, moved = tmp_path / "evenflow.db", tmp_path / "moved.db"
    async with EventStore.open(path) as store:
        path.rename(moved)
        for i in range(5):
            await store.append("s", [StepReady(step=f"a{i}")], eager=True)
        assert store.checkpointer is not None
        await wait_until(lambda: store.checkpointer.checkpoints >= 1)  # type: ignore[union-attr]
    # The checkpointer never reopened the old name: an empty file there next to the live WAL
    # would have made SQLite discard the WAL, and the rows with it.
    assert not path.exists()
    wal = tmp_path / "evenflow.db-wal"
    if wal.exists():  # the WAL keeps the name it was opened under
        wal.rename(tmp_path / "moved.db-wal")
    conn = sqlite3.connect(moved)
    try:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 5
    finally:
        conn.close()


def test_close_does_not_wait_out_the_pause_between_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "evenflow.db"
    sqlite3.connect(path).close()
    checkpointer = Checkpointer.start(path, "NORMAL", pause_s=60)
    assert checkpointer is not None
    checkpointer.poke()
    deadline = time.monotonic() + 10
    while not checkpointer.checkpoints and time.monotonic() < deadline:
        time.sleep(0.01)
    assert checkpointer.checkpoints == 1  # now in its 60 s pause
    began = time.monotonic()
    checkpointer.close()
    assert time.monotonic() - began < 5
