"""Opening files that are not (or not yet, or no longer) evenflow databases.

A file that is not an evenflow database of a schema this version reads fails with one
:class:`StoreError` naming the path, and is left exactly as it was: same bytes, same mtime, and
no ``-wal``/``-shm`` file beside it.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from events import SCHEMA_VERSION, EventStore, StepReady, StoreCorruptedError, StoreError, _schema

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(8192))


def _short_garbage(path: Path) -> None:
    path.write_bytes(b"x")  # SQLite alone would take a file this short for an empty database


def _text(path: Path) -> None:
    path.write_text("name,value\na,1\n")


def _sqlite_header_then_garbage(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + random.Random(3).randbytes(4096))


def _foreign(path: Path, *, wal: bool = False) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        if wal:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
        conn.commit()


def _foreign_wal(path: Path) -> None:
    _foreign(path, wal=True)


def _foreign_app_id(path: Path) -> None:
    _foreign(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA application_id = 1234")
        conn.commit()


async def _evenflow_then(path: Path, sql: str) -> None:
    async with EventStore.open(path) as store:
        await store.append("s", [StepReady(step="a")])
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(sql)
        conn.commit()


async def _newer_schema(path: Path) -> None:
    await _evenflow_then(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


async def _no_events_table(path: Path) -> None:
    await _evenflow_then(path, f"PRAGMA application_id = {_schema.APPLICATION_ID}")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for name in ("events_no_update", "events_no_delete"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE events")
        conn.commit()


BAD: dict[str, tuple[Callable[[Path], Awaitable[None] | None], str]] = {
    "garbage": (_garbage, "not an evenflow database"),
    "short garbage": (_short_garbage, "not an evenflow database"),
    "text": (_text, "not an evenflow database"),
    "sqlite header then garbage": (_sqlite_header_then_garbage, "not an evenflow database"),
    "foreign schema": (_foreign, "another application"),
    "foreign schema in WAL mode": (_foreign_wal, "another application"),
    "foreign application id": (_foreign_app_id, "another application"),
    "newer schema version": (_newer_schema, "newer evenflow"),
    "evenflow without events table": (_no_events_table, "without an events table"),
}


def _state(path: Path) -> tuple[bytes, int, list[str]]:
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))


@pytest.mark.parametrize("kind", list(BAD))
async def test_bad_file_is_one_store_error_and_left_untouched(tmp_path: Path, kind: str) -> None:
    make, reason = BAD[kind]
    path = tmp_path / "evenflow.db"
    made = make(path)
    if made is not None:
        await made
    before = _state(path)
    assert before[2] == ["evenflow.db"]
    with pytest.raises(StoreError) as info:
        async with EventStore.open(path):
            pytest.fail("a bad file was opened")
    assert str(path) in str(info.value)
    assert reason in str(info.value)
    assert _state(path) == before


async def test_corrupted_is_a_store_error_subclass(tmp_path: Path) -> None:
    path = tmp_path / "evenflow.db"
    await _no_events_table(path)
    with pytest.raises(StoreCorruptedError):
        async with EventStore.open(path):
            pass


async def test_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=str(tmp_path)):
        async with EventStore.open(tmp_path):
            pass


@pytest.mark.parametrize("content", [b"", None], ids=["empty file", "missing file"])
async def test_empty_or_missing_file_becomes_a_store(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "sub" / "evenflow.db"
    if content is not None:
        path.parent.mkdir()
        path.write_bytes(content)
    async with EventStore.open(path) as store:
        assert await store.append("s", [StepReady(step="a")]) == [1]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_blank_sqlite_database_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "evenflow.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")  # writes a header, but no table
    assert path.stat().st_size > 0
    async with EventStore.open(path) as store:
        assert await store.append("s", [StepReady(step="a")]) == [1]


async def test_a_store_open_in_another_connection_can_be_opened(tmp_path: Path) -> None:
    """The header check must not reject a live store whose header is still in the WAL."""
    path = tmp_path / "evenflow.db"
    async with EventStore.open(path) as first:
        await first.append("s", [StepReady(step="a")])
        async with EventStore.open(path) as second:
            assert await second.append("s", [StepReady(step="b")], expected_version=1) == [2]
