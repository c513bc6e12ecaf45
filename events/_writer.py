"""The write side of the store: the code that runs on the writer connection's thread.

Invariants this module keeps, and the store relies on:

* Only the store's writer task submits work here, one batch at a time, and aiosqlite runs it as
  one call on the writer connection's single worker thread. So :class:`BatchWriter`'s state (the
  version cache) is only ever touched by one thread, between two batches.
* A batch is one ``BEGIN IMMEDIATE ... COMMIT``: read the chain head, check expected versions,
  insert rows, run the transaction hooks, commit. Any failure rolls all of it back, and the work
  may then be run again from scratch (busy retry, or the store splitting a failed batch), so the
  work writes its results into the requests only after resetting them.
* The chain head is re-read inside every write transaction, so writers in other processes extend
  one dense, valid chain. The version cache is trusted only when that head is the seq this writer
  committed last: then no one else has written since, and every cached version is still current.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Protocol, TypeVar

from ._chain import GENESIS, chain_stream_rows
from ._errors import ConcurrencyError, StoreBusyError, StoreError
from ._types import AnyEvent, Recorded

T = TypeVar("T")
Row = tuple[int, str, int, str, float, bytes, bytes]

_HEAD = "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
_VERSION = "SELECT MAX(version) FROM events WHERE stream = ?"
_TOP = "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
_COLUMNS = 7
_COLUMN_NAMES = "seq, stream, version, type, recorded_at, payload, hash"
_MAX_CHUNK = 256  # rows per INSERT statement (a power of two)
_VERSION_CACHE_MAX = 65_536  # streams; past this the cache starts over


@dataclass(slots=True, eq=False)
class Request:
    """One ``append`` call: filled in by the writer, then ``done`` is set.

    ``done`` is an :class:`asyncio.Event`, not an ``anyio.Event``: every append makes one, and
    anyio's looks its backend up on each creation, which cost W2 several microseconds per step.
    The store runs on asyncio only (aiosqlite), and sets it on the loop's thread only.
    """

    stream: str
    items: list[tuple[AnyEvent, bytes, str]]  # (event, payload, tag)
    expected_version: int | None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    seqs: list[int] = field(default_factory=list)
    error: BaseException | None = None


@dataclass(slots=True, eq=False)
class Written:
    """What one committed batch wrote, in seq order."""

    rows: list[Row]
    events: list[AnyEvent]
    recorded: list[Recorded] | None = None

    def records(self) -> list[Recorded]:
        """The batch as :class:`Recorded` envelopes (built once, on first use)."""
        if self.recorded is None:
            self.recorded = _records(self.rows, self.events)
        return self.recorded


def _records(rows: list[Row], events: list[AnyEvent]) -> list[Recorded]:
    return [
        Recorded(seq, stream, version, type_, at, event, hash_)
        for (seq, stream, version, type_, at, _, hash_), event in zip(rows, events, strict=True)
    ]


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite failed because another connection holds a lock (retrying may succeed)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def retry_busy(work: Callable[[], T], deadline_s: float, path: Path) -> T:
    """Run ``work``, retrying with jittered exponential backoff while another process holds the
    lock. A user never sees "database is locked"; past the deadline they see
    :class:`StoreBusyError` naming the database. Other SQLite errors become :class:`StoreError`.
    """
    deadline = time.monotonic() + deadline_s
    delay = 0.001
    while True:
        try:
            return work()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise StoreError(f"write to {path} failed: {exc}") from exc
            if time.monotonic() >= deadline:
                raise StoreBusyError(
                    f"{path} stayed locked by another process for {deadline_s:g} s"
                ) from exc
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.05)


def in_transaction(conn: sqlite3.Connection, work: Callable[[], T]) -> T:
    """Run ``work`` inside ``BEGIN IMMEDIATE ... COMMIT``; roll back if anything fails."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def current_version(conn: sqlite3.Connection, stream: str) -> int:
    """The stream's newest version in the table (0 if it has none)."""
    row = conn.execute(_VERSION, (stream,)).fetchone()
    return int(row[0] or 0)


def _insert_sql(rows: int) -> str:
    values = ",".join(["(?,?,?,?,?,?,?)"] * rows)
    return f"INSERT INTO events ({_COLUMN_NAMES}) VALUES {values}"


class TransactionHook(Protocol):
    """Work that must commit atomically with the events that cause it (persisted projections).

    Both methods run on the writer's thread with the raw ``sqlite3`` connection, inside an open
    transaction; they must not commit or roll back.
    """

    def install(self, conn: sqlite3.Connection) -> None:
        """Create the hook's tables if they are missing and catch up with the log."""

    def apply(self, conn: sqlite3.Connection, batch: Sequence[Recorded]) -> None:
        """Fold a batch of just-inserted events (in seq order) into the hook's tables."""


class BatchWriter:
    """Writes batches of requests through the store's one write connection (its thread only)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        hooks: Sequence[TransactionHook],
        busy_deadline: float,
        durability: str = "normal",
    ) -> None:
        self.durability = durability
        self._conn = conn
        self._path = path
        self._hooks = tuple(hooks)
        self._busy_deadline = busy_deadline
        # Multi-row INSERTs: one statement step (one GIL release) per chunk instead of per row.
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // _COLUMNS
        self._chunk = 1 << max(0, min(_MAX_CHUNK, limit).bit_length() - 1)
        self._insert_sql = {1 << n: _insert_sql(1 << n) for n in range(self._chunk.bit_length())}
        self._versions: dict[str, int] = {}  # stream -> version as of self._last_seq
        self._last_seq = -1  # the head this writer committed last (-1: none yet)
        self.after_commit: Callable[[], None] | None = None  # called after a commit with rows

    def write(self, batch: Sequence[Request]) -> Written:
        """Commit ``batch`` in one transaction (retrying while busy); fill in each request."""
        head, versions, written = retry_busy(
            lambda: in_transaction(self._conn, lambda: self._write(batch)),
            self._busy_deadline,
            self._path,
        )
        return self._committed(head, versions, written)

    def try_inline(self, batch: Sequence[Request]) -> Written | None:
        """Commit ``batch`` once, without waiting for a lock (the caller's thread must not
        block: the connection's busy timeout is 0). None when another process holds the write
        lock: nothing was written, and the caller retries with :meth:`write` on the thread."""
        try:
            head, versions, written = in_transaction(self._conn, lambda: self._write(batch))
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                return None
            raise StoreError(f"write to {self._path} failed: {exc}") from exc
        return self._committed(head, versions, written)

    def _committed(self, head: int, versions: dict[str, int], written: Written) -> Written:
        # Committed: the versions just read or written are current as of the new head.
        if head != self._last_seq or len(self._versions) > _VERSION_CACHE_MAX:
            self._versions = versions
        else:
            self._versions.update(versions)
        self._last_seq = written.rows[-1][0] if written.rows else head
        if written.rows and self.after_commit is not None:
            self.after_commit()
        return written

    def _write(self, batch: Sequence[Request]) -> tuple[int, dict[str, int], Written]:
        conn = self._conn
        found = conn.execute(_HEAD).fetchone()
        head, prev = (int(found[0]), bytes(found[1])) if found else (0, GENESIS)
        cached = self._versions if head == self._last_seq else {}
        now = time.time()
        # New seqs continue after the highest seq ever assigned (AUTOINCREMENT's record), not
        # after the newest row: if the newest rows were deleted behind our back, the gap stays
        # visible to `audit verify` instead of being papered over by reused seqs.
        top = conn.execute(_TOP).fetchone()
        seq = max(head, int(top[0]) if top else 0)
        versions: dict[str, int] = {}
        rows: list[Row] = []
        events: list[AnyEvent] = []
        for req in batch:
            req.error = None
            stream = req.stream
            version = versions.get(stream)
            if version is None:
                version = cached.get(stream)
                if version is None:
                    version = current_version(conn, stream)
                versions[stream] = version
            if req.expected_version is not None and req.expected_version != version:
                req.seqs = []
                req.error = ConcurrencyError(stream, req.expected_version, version)
                continue
            first = seq + 1
            prev, seq, version = chain_stream_rows(prev, seq, stream, version, now, req.items, rows)
            events.extend([item[0] for item in req.items])
            req.seqs = list(range(first, seq + 1))
            versions[stream] = version
        written = Written(rows, events)
        if rows:
            self._insert(rows)
            if self._hooks:
                recorded = written.records()
                for hook in self._hooks:
                    hook.apply(conn, recorded)
        return head, versions, written

    def _insert(self, rows: list[Row]) -> None:
        """Insert rows in statements of a power-of-two row count (a handful of cached SQL)."""
        conn = self._conn
        start, total, size = 0, len(rows), self._chunk
        while start < total:
            while size > total - start:
                size >>= 1
            end = start + size
            conn.execute(self._insert_sql[size], list(chain.from_iterable(rows[start:end])))
            start = end
