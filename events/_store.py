"""The SQLite event store: one append-only, hash-chained table, one writer task, group commit.

Invariants the rest of evenflow relies on:

* The writer task is the only holder of the write connection. Producers hand it requests through
  a bounded memory stream and await their commit; ``append`` returns seqs only after COMMIT.
* A batch is one ``BEGIN IMMEDIATE ... COMMIT`` run as a single call on the connection's worker
  thread: read the chain head, check expected versions, insert rows, run the transaction hooks
  (persisted projections), commit. A crash at any point leaves either all of it or none of it.
* Seqs are dense and increase in commit order, across processes too: the chain head is re-read
  inside every write transaction, so interleaved writers extend one valid chain.
* Subscribers receive committed events in seq order, with no gap and no duplicate.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import aiosqlite
import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import _codec, _schema
from ._chain import GENESIS, row_hash
from ._errors import ConcurrencyError, StoreBusyError, StoreCorruptedError, StoreError
from ._subscription import Subscription
from ._types import AnyEvent, Recorded, tag_of

Durability = Literal["normal", "full"]
_SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}
_MAX_BATCH_ROWS = 8192
_INSERT = (
    "INSERT INTO events (seq, stream, version, type, recorded_at, payload, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = "seq, stream, version, type, recorded_at, payload, hash"
T = TypeVar("T")


class TransactionHook(Protocol):
    """Work that must commit atomically with the events that cause it (persisted projections).

    Both methods run on the writer's thread with the raw ``sqlite3`` connection, inside an open
    transaction; they must not commit or roll back.
    """

    def install(self, conn: sqlite3.Connection) -> None:
        """Create the hook's tables if they are missing and catch up with the log."""

    def apply(self, conn: sqlite3.Connection, batch: Sequence[Recorded]) -> None:
        """Fold a batch of just-inserted events (in seq order) into the hook's tables."""


@dataclass(slots=True)
class _Request:
    stream: str
    items: list[tuple[AnyEvent, bytes, str]]
    expected_version: int | None
    done: anyio.Event = field(default_factory=anyio.Event)
    seqs: list[int] = field(default_factory=list)
    error: BaseException | None = None


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def _with_busy_retry(
    conn: sqlite3.Connection, work: Callable[[], T], deadline_s: float, path: Path
) -> T:
    """Run ``work`` in a write transaction, retrying with jittered backoff while another process
    holds the lock. A user never sees "database is locked"; past the deadline they see
    :class:`StoreBusyError` naming the database."""
    deadline = time.monotonic() + deadline_s
    delay = 0.001
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work()
                conn.execute("COMMIT")
                return result
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise StoreError(f"write to {path} failed: {exc}") from exc
            if time.monotonic() >= deadline:
                raise StoreBusyError(
                    f"{path} stayed locked by another process for {deadline_s:.0f} s"
                ) from exc
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.05)


def _current_version(conn: sqlite3.Connection, stream: str) -> int:
    row = conn.execute("SELECT MAX(version) FROM events WHERE stream = ?", (stream,)).fetchone()
    return int(row[0] or 0)


def _write_batch(
    conn: sqlite3.Connection, batch: list[_Request], hooks: Sequence[TransactionHook]
) -> list[Recorded]:
    """The body of one write transaction (runs on the writer thread, lock held)."""
    head = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (int(head[0]), bytes(head[1])) if head else (0, GENESIS)
    now = time.time()
    versions: dict[str, int] = {}
    rows: list[tuple[int, str, int, str, float, bytes, bytes]] = []
    recorded: list[Recorded] = []
    for req in batch:
        req.seqs = []
        req.error = None
        stream = req.stream
        version = versions.get(stream)
        if version is None:
            version = _current_version(conn, stream)
        if req.expected_version is not None and req.expected_version != version:
            req.error = ConcurrencyError(stream, req.expected_version, version)
            versions[stream] = version
            continue
        for event, payload, tag in req.items:
            version += 1
            seq += 1
            prev = row_hash(prev, stream, version, tag, now, payload)
            rows.append((seq, stream, version, tag, now, payload, prev))
            recorded.append(Recorded(seq, stream, version, tag, now, event, prev))
            req.seqs.append(seq)
        versions[stream] = version
    if rows:
        conn.executemany(_INSERT, rows)
        for hook in hooks:
            hook.apply(conn, recorded)
    return recorded


def _fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Recorded]:
    rows = conn.execute(sql, params).fetchall()
    out = []
    for seq, stream, version, type_, recorded_at, payload, hash_ in rows:
        try:
            event = _codec.decode(payload)
        except StoreCorruptedError as exc:
            raise StoreCorruptedError(f"event seq {seq}: {exc}") from exc
        out.append(Recorded(seq, stream, version, type_, recorded_at, event, hash_))
    return out


def _connect_raw(path: Path, durability: Durability, *, writer: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 50" if writer else "PRAGMA busy_timeout = 5000")
    conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[durability]}")
    return conn


class EventStore:
    """An open event store. Create it with :meth:`EventStore.open` (an async context manager).

    Args to ``open``:
        path: the database file (``$EVENFLOW_HOME/evenflow.db`` by convention).
        durability: ``"normal"`` (default; WAL with synchronous=NORMAL: a commit survives a
            process crash, the last commits may be lost on power loss) or ``"full"`` (every
            commit is fsynced before ``append`` returns).
        hooks: :class:`TransactionHook` s run inside every write transaction.
        busy_deadline: seconds to keep retrying while another process holds the write lock.
    """

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        send: MemoryObjectSendStream[_Request],
        hooks: Sequence[TransactionHook],
        busy_deadline: float,
    ) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._send = send
        self._hooks = tuple(hooks)
        self._busy_deadline = busy_deadline
        self._subscribers: set[Subscription] = set()
        self._failure: BaseException | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        path: str | Path,
        *,
        durability: Durability = "normal",
        hooks: Iterable[TransactionHook] = (),
        busy_deadline: float = 60.0,
    ) -> AsyncIterator[EventStore]:
        path = Path(path)
        if durability not in _SYNCHRONOUS:
            raise StoreError(
                f"unknown durability {durability!r} for {path}: use 'normal' or 'full'"
            )
        hooks = tuple(hooks)
        fresh = await anyio.to_thread.run_sync(_schema.inspect, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = aiosqlite.connect(path, isolation_level=None)
        try:
            await writer
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path}: {exc}") from exc
        try:
            await writer._execute(cls._prepare_writer, writer._conn, path, durability, fresh, hooks)
            async with aiosqlite.connect(path, isolation_level=None) as reader:
                await reader.execute("PRAGMA busy_timeout = 5000")
                await reader.execute("PRAGMA query_only = 1")
                send, recv = anyio.create_memory_object_stream[_Request](4096)
                store = cls(path, writer, reader, send, hooks, busy_deadline)
                try:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(store._run_writer, recv)
                        try:
                            yield store
                        finally:
                            store._closed = True
                            send.close()
                finally:
                    for sub in list(store._subscribers):
                        sub._close()
        finally:
            with anyio.CancelScope(shield=True):
                await writer.close()

    @staticmethod
    def _prepare_writer(
        conn: sqlite3.Connection,
        path: Path,
        durability: Durability,
        fresh: bool,
        hooks: Sequence[TransactionHook],
    ) -> None:
        try:
            conn.execute("PRAGMA busy_timeout = 50")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{path}: cannot switch to WAL journal mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[durability]}")
            conn.execute("PRAGMA journal_size_limit = 67108864")
            if fresh:
                _with_busy_retry(conn, lambda: _schema.initialise_in_tx(conn), 60.0, path)
            if hooks:
                _with_busy_retry(
                    conn, lambda: [h.install(conn) for h in hooks], 60.0, path
                )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot prepare {path}: {exc}") from exc

    # -- writing ---------------------------------------------------------------------------

    async def append(
        self, stream: str, events: Sequence[AnyEvent], expected_version: int | None = None
    ) -> list[int]:
        """Append ``events`` to ``stream`` atomically; return their seqs once committed.

        Raises:
            ConcurrencyError: ``expected_version`` is given and the stream is not at it.
            StoreError: the store is closed or the write failed.
        """
        if self._failure is not None:
            raise StoreError(f"the writer of {self.path} stopped: {self._failure}")
        if self._closed:
            raise StoreError(f"the event store {self.path} is closed")
        items = []
        for event in events:
            try:
                payload = _codec.encode(event)
            except (msgspec.EncodeError, TypeError, OverflowError) as exc:
                raise StoreError(
                    f"cannot encode {type(event).__name__} for stream {stream!r}: {exc}"
                ) from exc
            items.append((event, payload, tag_of(event)))
        if not items:
            return []
        req = _Request(stream, items, expected_version)
        await self._send.send(req)
        await req.done.wait()
        if req.error is not None:
            raise req.error
        return req.seqs

    async def _run_writer(self, recv: MemoryObjectReceiveStream[_Request]) -> None:
        async with recv:
            async for first in recv:
                batch = [first]
                rows = len(first.items)
                while rows < _MAX_BATCH_ROWS:
                    try:
                        req = recv.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    batch.append(req)
                    rows += len(req.items)
                # A batch in flight always completes and reports: the thread commits regardless.
                with anyio.CancelScope(shield=True):
                    await self._commit(batch)

    async def _commit(self, batch: list[_Request]) -> None:
        conn = self._writer._conn
        hooks = self._hooks
        try:
            recorded = await self._writer._execute(
                _with_busy_retry,
                conn,
                lambda: _write_batch(conn, batch, hooks),
                self._busy_deadline,
                self.path,
            )
        except Exception as exc:
            if len(batch) > 1:
                # Isolate the request that failed: commit the others one by one.
                for req in batch:
                    await self._commit([req])
                return
            batch[0].error = exc if isinstance(exc, StoreError) else StoreError(
                f"append to {self.path} failed: {exc}"
            )
            if not isinstance(exc, StoreError):
                batch[0].error.__cause__ = exc
            batch[0].done.set()
            return
        if recorded:
            for sub in self._subscribers:
                sub._deliver(recorded)
        for req in batch:
            req.done.set()

    # -- reading ---------------------------------------------------------------------------

    async def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Recorded]:
        return await self._reader._execute(_fetch, self._reader._conn, sql, params)

    async def read_stream(
        self, stream: str, *, from_version: int = 0, to_seq: int | None = None
    ) -> list[Recorded]:
        """The stream's events with version > ``from_version`` (and seq <= ``to_seq``)."""
        sql = f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND version > ?"
        params: list[Any] = [stream, from_version]
        if to_seq is not None:
            sql += " AND seq <= ?"
            params.append(to_seq)
        return await self._query(sql + " ORDER BY version", params)

    async def read_range(
        self, after_seq: int = 0, to_seq: int | None = None, *, limit: int | None = None
    ) -> list[Recorded]:
        """Events with ``after_seq < seq <= to_seq``, oldest first, at most ``limit``."""
        sql = f"SELECT {_COLUMNS} FROM events WHERE seq > ?"
        params: list[Any] = [after_seq]
        if to_seq is not None:
            sql += " AND seq <= ?"
            params.append(to_seq)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return await self._query(sql, params)

    async def read_by_type(
        self, type_prefix: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Recorded]:
        """Events whose type starts with ``type_prefix`` (``"step."``) or equals it, oldest first."""
        sql = f"SELECT {_COLUMNS} FROM events WHERE type >= ? AND type < ? AND seq > ? ORDER BY seq"
        params: list[Any] = [type_prefix, type_prefix + "\U0010ffff", after_seq]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return await self._query(sql, params)

    async def read_latest(self, limit: int = 20, *, stream: str | None = None) -> list[Recorded]:
        """The newest ``limit`` events (of ``stream`` if given), newest first."""
        if stream is None:
            return await self._query(f"SELECT {_COLUMNS} FROM events ORDER BY seq DESC LIMIT ?", [limit])
        return await self._query(
            f"SELECT {_COLUMNS} FROM events WHERE stream = ? ORDER BY version DESC LIMIT ?",
            [stream, limit],
        )

    async def last_seq(self) -> int:
        """The seq of the newest committed event (0 for an empty log)."""
        cursor = await self._reader.execute("SELECT MAX(seq) FROM events")
        row = await cursor.fetchone()
        await cursor.close()
        return int(row[0] or 0) if row else 0

    async def stream_version(self, stream: str) -> int:
        """The stream's current version (0 if it has no events)."""
        return await self._reader._execute(_current_version, self._reader._conn, stream)

    async def run_read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the read connection's thread (for projection queries)."""
        return await self._reader._execute(fn, self._reader._conn, *args)

    # -- subscribing -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(
        self, since: int = 0, *, stream: str | None = None
    ) -> AsyncIterator[Subscription]:
        """Committed events with seq > ``since``, in seq order: first from the table, then live.

        Use as ``async with store.subscribe(since) as sub: async for rec in sub: ...``.
        """
        sub = Subscription(self.read_range, since, stream)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
            sub._close()
