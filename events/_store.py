"""The SQLite event store: one append-only, hash-chained table, one writer task, group commit.

Invariants the rest of evenflow relies on:

* The writer task is the only holder of the write connection. Producers hand it requests through
  a bounded memory stream and await their commit; ``append`` returns seqs only after COMMIT.
* A batch is one ``BEGIN IMMEDIATE ... COMMIT`` run as a single call on the connection's worker
  thread: read the chain head, check expected versions, insert rows, run the transaction hooks
  (persisted projections), commit. A crash at any point leaves either all of it or none of it.
  (The thread-side code, and what it guarantees, is in ``_writer.py``.)
* Seqs are dense and increase in commit order, across processes too: the chain head is re-read
  inside every write transaction, so interleaved writers extend one valid chain.
* Subscribers receive committed events in seq order, with no gap and no duplicate.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import aiosqlite
import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import _codec, _schema
from ._checkpointer import Checkpointer
from ._errors import ConcurrencyError, StoreBusyError, StoreCorruptedError, StoreError
from ._subscription import Subscription
from ._types import AnyEvent, Recorded
from ._writer import BatchWriter, Request, Written, current_version, in_transaction, retry_busy
from ._writer import TransactionHook as TransactionHook

Durability = Literal["normal", "full"]
_SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}
_INLINE_ROWS = 64  # batches up to this many rows may commit inline (see EventStore._commit)
_MAX_BATCH_ROWS = 8192
_QUEUE = math.inf  # see EventStore.submit: one request per waiting producer, never blocks
_COLUMNS = "seq, stream, version, type, recorded_at, payload, hash"
T = TypeVar("T")


async def _on_thread(conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` as ONE call on the connection's worker thread.

    aiosqlite's ``_execute`` is private but is the only way to run a whole batch in one thread
    hop; the dependency is pinned below its next minor release in pyproject.toml.
    """
    result = await conn._execute(fn, *args)  # type: ignore[no-untyped-call]  # unannotated upstream
    return cast(T, result)


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


async def _close_shielded(checkpointer: Checkpointer) -> None:
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(checkpointer.close)


def _last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0)


def _prepare_writer(
    conn: sqlite3.Connection,
    path: Path,
    durability: Durability,
    fresh: bool,
    hooks: Sequence[TransactionHook],
    busy_deadline: float,
) -> BatchWriter:
    """Configure the write connection, create the schema if needed, install the hooks."""

    def wal() -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{path}: cannot switch to WAL journal mode (got {mode})")

    def install() -> None:
        for hook in hooks:
            hook.install(conn)

    try:
        # Zero: the writer retries in Python, with a deadline and a clear error (retry_busy),
        # and the inline fast path (BatchWriter.try_inline) must never wait on the event loop.
        conn.execute("PRAGMA busy_timeout = 0")
        # Another process may be creating the same database right now: retry while it is busy.
        retry_busy(wal, busy_deadline, path)
        conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[durability]}")
        conn.execute("PRAGMA journal_size_limit = 67108864")
        if fresh:
            retry_busy(
                lambda: in_transaction(conn, lambda: _schema.initialise_in_tx(conn)),
                busy_deadline,
                path,
            )
        elif not _schema.type_index_is_partial(conn):
            retry_busy(
                lambda: in_transaction(conn, lambda: _schema.make_type_index_partial_in_tx(conn)),
                busy_deadline,
                path,
            )
        if hooks:
            retry_busy(lambda: in_transaction(conn, install), busy_deadline, path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot prepare {path}: {exc}") from exc
    return BatchWriter(conn, path, hooks, busy_deadline, durability)


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
        batch_writer: BatchWriter,
        reader: aiosqlite.Connection,
        send: MemoryObjectSendStream[Request],
    ) -> None:
        self.path = path
        self._writer = writer
        self._batch_writer = batch_writer
        self._reader = reader
        self._send = send
        self._subscribers: set[Subscription] = set()
        self._failure: BaseException | None = None
        self._closed = False
        self._reader_open = True
        self._inline = batch_writer.durability == "normal"
        self._queued = 0  # requests sent to the writer task and not yet taken by it
        self._writing = False  # a batch is being committed (by the writer task or inline)
        self.checkpointer: Checkpointer | None = None  # copies the WAL back (see _checkpointer)

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
        """Open the store at ``path``, creating it if the file is missing or empty.

        Raises:
            StoreError: the file is not an evenflow database of a schema this version reads
                (the file is then left untouched), or it cannot be opened.
        """
        path = Path(path)
        if durability not in _SYNCHRONOUS:
            raise StoreError(
                f"unknown durability {durability!r} for {path}: use 'normal' or 'full'"
            )
        hooks = tuple(hooks)
        fresh = await anyio.to_thread.run_sync(_schema.inspect, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _schema.held_open(path):
            async with cls._open(path, durability, fresh, hooks, busy_deadline) as store:
                yield store

    @classmethod
    @contextlib.asynccontextmanager
    async def _open(
        cls,
        path: Path,
        durability: Durability,
        fresh: bool,
        hooks: tuple[TransactionHook, ...],
        busy_deadline: float,
    ) -> AsyncIterator[EventStore]:
        # check_same_thread=False: small batches may commit inline from the writer task (see
        # _commit); only the writer task ever uses this connection, one batch at a time.
        writer = aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
        try:
            await writer
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path}: {exc}") from exc
        try:
            batch_writer = await _on_thread(
                writer, _prepare_writer, writer._conn, path, durability, fresh, hooks, busy_deadline
            )
            async with contextlib.AsyncExitStack() as stack:
                checkpointer = await anyio.to_thread.run_sync(
                    Checkpointer.start, path, _SYNCHRONOUS[durability]
                )
                if checkpointer is not None:
                    # Closed before the writer: the writer, closing last, checkpoints the rest.
                    stack.push_async_callback(_close_shielded, checkpointer)
                    batch_writer.after_commit = checkpointer.poke
                reader = await stack.enter_async_context(
                    aiosqlite.connect(path, isolation_level=None)
                )
                await reader.execute("PRAGMA busy_timeout = 5000")
                await reader.execute("PRAGMA query_only = 1")
                send, recv = anyio.create_memory_object_stream[Request](_QUEUE)
                store = cls(path, writer, batch_writer, reader, send)
                store.checkpointer = checkpointer
                try:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(store._run_writer, recv)
                        try:
                            yield store
                        finally:
                            store._closed = True
                            send.close()
                except BaseExceptionGroup as group:
                    # The writer reports through its requests and does not raise, so the group
                    # holds what the body raised: give the caller that error, not a group.
                    if len(group.exceptions) != 1:
                        raise
                    error = group.exceptions[0]
                    raise error from error.__cause__
                finally:
                    for sub in list(store._subscribers):
                        sub._close()
                    store._reader_open = False
        finally:
            with anyio.CancelScope(shield=True):
                await writer.close()

    # -- writing ---------------------------------------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[AnyEvent],
        expected_version: int | None = None,
        *,
        eager: bool = False,
    ) -> list[int]:
        """Append ``events`` to ``stream`` atomically; return their seqs once committed.

        ``eager``: the caller has nothing else in flight (it waits for this commit before it
        can do anything more), so batching with other appends cannot help it. When nothing
        is queued or being written, the append then commits inline here, without the two
        hand-offs to the writer task and back. Without it, appends are queued for the writer,
        which commits whatever has accumulated in one transaction.

        Raises:
            ConcurrencyError: ``expected_version`` is given and the stream is not at it.
            StoreError: the store is closed, an event cannot be encoded, or the write failed.
        """
        if not events:
            if expected_version is not None:  # nothing to write, but the check still holds
                version = await self._on_reader(current_version, stream)
                if version != expected_version:
                    raise ConcurrencyError(stream, expected_version, version)
            return []
        if (
            eager
            and self._inline
            and not self._writing
            and not self._queued
            and len(events) <= _INLINE_ROWS
            and self._failure is None
            and not self._closed
        ):
            # Nothing is queued or being written: commit here, now, in submission order.
            req = Request(stream, self._encode(stream, events), expected_version)
            if not req.items:
                return []
            if self._commit_here(req):
                if req.error is not None:
                    raise req.error
                return req.seqs
            # Another process holds the write lock: queue it; the writer waits off the loop.
            self._send.send_nowait(req)
            self._queued += 1
        else:
            maybe = self.submit(stream, events, expected_version)
            if maybe is None:
                return []
            req = maybe
        await req.done.wait()
        if req.error is not None:
            raise req.error
        return req.seqs

    def _publish(self, written: Written) -> None:
        """Hand just-committed rows to the in-process subscribers."""
        if written.rows and self._subscribers:
            records = written.records()
            for sub in self._subscribers:
                sub._deliver(records)

    def _commit_here(self, req: Request) -> bool:
        """Commit one request inline; False (nothing written) when the lock is held elsewhere."""
        self._writing = True
        try:
            written = self._batch_writer.try_inline([req])
        except Exception as exc:
            req.seqs = []
            req.error = self._translate(exc)
            return True
        finally:
            self._writing = False
        if written is None:
            return False
        self._publish(written)
        return True

    def _encode(self, stream: str, events: Sequence[AnyEvent]) -> list[Any]:
        try:
            return _codec.encode_items(events)
        except (msgspec.EncodeError, TypeError, OverflowError) as exc:
            bad = next((e for e in events if not _encodes(e)), None)
            raise StoreError(
                f"cannot encode {type(bad).__name__} for stream {stream!r}: {exc}"
            ) from exc

    def submit(
        self, stream: str, events: Sequence[AnyEvent], expected_version: int | None = None
    ) -> Request | None:
        """Queue an append without waiting (None when ``events`` is empty).

        Synchronous on purpose: appends are committed in the order they are submitted, so a
        caller that decides and submits in one synchronous step keeps the log in decision
        order. Await ``request.done`` and check ``request.error`` for the outcome.
        """
        if self._failure is not None:
            raise StoreError(f"the writer of {self.path} stopped: {self._failure!r}")
        if self._closed:
            raise StoreError(f"the event store {self.path} is closed")
        items = self._encode(stream, events)
        if not items:
            return None
        req = Request(stream, items, expected_version)
        try:
            # The queue is unbounded: every request has a producer awaiting it, so its length
            # is bounded by the number of producers, and an enqueue never waits (order!).
            self._send.send_nowait(req)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise StoreError(f"the event store {self.path} is closed") from exc
        self._queued += 1
        return req

    async def _run_writer(self, recv: MemoryObjectReceiveStream[Request]) -> None:
        # Shielded: the writer outlives a cancelled owner scope until the send side closes, so
        # the owner's shielded bookkeeping (step.cancelled, run.cancelled) still commits.
        with anyio.CancelScope(shield=True):
            await self._writer_loop(recv)

    async def _writer_loop(self, recv: MemoryObjectReceiveStream[Request]) -> None:
        batch: list[Request] = []
        async with recv:
            try:
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
                    self._queued -= len(batch)
                    self._writing = True
                    # A batch in flight always completes and reports: the thread commits
                    # regardless of cancellation, so its producers must hear the outcome.
                    try:
                        with anyio.CancelScope(shield=True):
                            await self._commit(batch)
                    finally:
                        self._writing = False
                    batch = []
            except BaseException as exc:
                # Never leave a producer waiting on a writer that is gone.
                self._failure = exc
                error = StoreError(f"the writer of {self.path} stopped: {exc!r}")
                for req in batch:
                    if not req.done.is_set():
                        req.error = error
                        req.done.set()
                while True:
                    try:
                        req = recv.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    req.error = error
                    req.done.set()
                raise

    async def _commit(self, batch: list[Request]) -> None:
        try:
            written = None
            if self._inline and sum(len(r.items) for r in batch) <= _INLINE_ROWS:
                # A small batch under durability="normal" (no fsync) commits faster than a
                # round trip to the writer thread takes; if another process holds the lock it
                # falls back to the thread, which waits with backoff off the event loop.
                written = self._batch_writer.try_inline(batch)
            if written is None:
                written = await _on_thread(self._writer, self._batch_writer.write, batch)
        except Exception as exc:
            if len(batch) > 1 and not isinstance(exc, StoreBusyError):
                # Isolate the request that failed: commit the others one by one. (Not when the
                # lock stayed busy: that is every request's problem, and retrying each would
                # multiply the wait.)
                for req in batch:
                    await self._commit([req])
                return
            for req in batch:
                req.seqs = []
                req.error = self._translate(exc)
                req.done.set()
            return
        self._publish(written)
        for req in batch:
            req.done.set()

    def _translate(self, exc: Exception) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        error = StoreError(f"append to {self.path} failed: {exc!r}")
        error.__cause__ = exc
        return error

    # -- reading ---------------------------------------------------------------------------

    async def _on_reader(self, fn: Callable[..., T], *args: Any) -> T:
        if not self._reader_open:
            raise StoreError(f"the event store {self.path} is closed")
        try:
            return await _on_thread(self._reader, fn, self._reader._conn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"read from {self.path} failed: {exc}") from exc

    async def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Recorded]:
        return await self._on_reader(_fetch, sql, params)

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
        """Events whose type starts with ``type_prefix`` (``"step."``), oldest first."""
        types, bounds = _schema.type_prefix_filter(type_prefix)
        sql = f"SELECT {_COLUMNS} FROM events WHERE {types} AND seq > ? ORDER BY seq"
        params: list[Any] = [*bounds, after_seq]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return await self._query(sql, params)

    async def read_latest(self, limit: int = 20, *, stream: str | None = None) -> list[Recorded]:
        """The newest ``limit`` events (of ``stream`` if given), newest first."""
        if stream is None:
            return await self._query(
                f"SELECT {_COLUMNS} FROM events ORDER BY seq DESC LIMIT ?", [limit]
            )
        return await self._query(
            f"SELECT {_COLUMNS} FROM events WHERE stream = ? ORDER BY version DESC LIMIT ?",
            [stream, limit],
        )

    async def last_seq(self) -> int:
        """The seq of the newest committed event (0 for an empty log)."""
        return await self._on_reader(_last_seq)

    async def stream_version(self, stream: str) -> int:
        """The stream's current version (0 if it has no events)."""
        return await self._on_reader(current_version, stream)

    async def run_read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the read connection's thread (for projection queries)."""
        return await self._on_reader(fn, *args)

    # -- subscribing -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(
        self, since: int = 0, *, stream: str | None = None
    ) -> AsyncIterator[Subscription]:
        """Committed events with seq > ``since``, in seq order: first from the table, then live.

        Use as ``async with store.subscribe(since) as sub: async for rec in sub: ...``.
        """
        if self._closed:
            raise StoreError(f"the event store {self.path} is closed")
        sub = Subscription(self.read_range, since, stream)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
            sub._close()


def _encodes(event: AnyEvent) -> bool:
    try:
        _codec.encode_items([event])
    except (msgspec.EncodeError, TypeError, OverflowError):
        return False
    return True
