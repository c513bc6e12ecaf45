"""Following the log from another process: committed events as any process appends them.

An in-process subscriber is handed each committed batch by the writer (``_subscription.py``); a
follower in another process cannot be. It reads ``seq > cursor`` from the database file, page by
page, and sleeps until the file changes. It wakes:

* on a file-system event in the database's directory (every commit appends to the ``-wal`` file),
  through watchfiles' notify backend, checking ``PRAGMA data_version`` at least every
  ``_SAFETY_POLL`` seconds as well; or
* where watching is impossible (no inotify, too many watches, ``WATCHFILES_FORCE_POLLING`` set,
  which is the usual switch on network and container file systems), by polling
  ``PRAGMA data_version`` every ``poll_interval`` seconds. That costs one tiny read per poll
  rather than watchfiles' own polling, which stats files every 300 ms.

Invariants:

* The read connection is read-only, in autocommit mode, and every statement is read to its end
  (``fetchall``), so no read transaction outlives one query. A follower never holds a snapshot
  across a wait, and so never keeps the writers' checkpoints from resetting the WAL: a tail left
  running under constant writes does not grow the WAL.
* ``data_version`` is read in the same call as the page that follows it, so a commit that lands
  during or after the read changes it and the next check reads again: no wake-up is lost.
* The file-system event of a commit (the write of its last WAL frame) can arrive a moment before
  the commit is visible (the WAL index is updated after the write). A wake-up that finds nothing
  new is therefore re-checked a few times over the next ~60 ms before sleeping again.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio

from . import _codec, _schema
from ._errors import StoreCorruptedError, StoreError
from ._types import Recorded

if TYPE_CHECKING:
    from watchfiles._rust_notify import RustNotify

_COLUMNS = "seq, stream, version, type, recorded_at, payload, hash"
_PAGE = 1000
_SAFETY_POLL_MS = 250  # longest sleep between two data_version checks while watching
_STEP_MS = 1  # the notify backend returns 1-2 steps after a change
_DEBOUNCE_MS = 10
_RECHECKS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032)  # after a wake-up that found nothing
_OFF = {"", "0", "false", "disable", "disabled", "no"}

Mode = Literal["watch", "poll"]


def force_polling() -> bool:
    """Whether ``WATCHFILES_FORCE_POLLING`` asks for polling (watchfiles' own convention)."""
    value = os.environ.get("WATCHFILES_FORCE_POLLING")
    return value is not None and value.strip().lower() not in _OFF


class _Reader:
    """The thread side: one read-only connection, used by one thread hop at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            self.conn.execute("PRAGMA busy_timeout = 5000").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path} to follow it: {exc}") from exc
        self.version: int | None = None

    def close(self) -> None:
        self.conn.close()

    def start(self, backlog: int, stream: str | None, type_prefix: str | None) -> int:
        """The cursor that makes the first pages the newest ``backlog`` matching events."""
        where, params = _filters(stream, type_prefix)
        head = self._rows("SELECT MAX(seq) FROM events", ())[0][0] or 0
        if backlog <= 0:
            return int(head)
        rows = self._rows(
            f"SELECT seq FROM events{where} ORDER BY seq DESC LIMIT ?", (*params, backlog)
        )
        return int(rows[-1][0]) - 1 if rows else int(head)

    def read(
        self, after: int, force: bool, stream: str | None, type_prefix: str | None
    ) -> tuple[list[Recorded], int, bool] | None:
        """The next page after ``after``: ``(matching records, new cursor, page was full)``;
        None when nothing was committed since the last read (and ``force`` is false)."""
        version = self._rows("PRAGMA data_version", ())[0][0]
        if not force and version == self.version:
            return None
        self.version = version
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, _PAGE)
        )
        out = []
        for seq, row_stream, row_version, type_, recorded_at, payload, hash_ in rows:
            if stream is not None and row_stream != stream:
                continue
            if type_prefix is not None and not type_.startswith(type_prefix):
                continue
            try:
                event = _codec.decode(payload)
            except StoreCorruptedError as exc:
                raise StoreCorruptedError(f"{self.path}: event seq {seq}: {exc}") from exc
            out.append(Recorded(seq, row_stream, row_version, type_, recorded_at, event, hash_))
        cursor = int(rows[-1][0]) if rows else after
        return out, cursor, len(rows) == _PAGE

    def changed(self) -> bool:
        """Whether a commit happened since the last page was read (the next read sees it)."""
        return bool(self._rows("PRAGMA data_version", ())[0][0] != self.version)

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        # fetchall: a statement read to its end is reset, which ends its read transaction.
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from exc


def _filters(stream: str | None, type_prefix: str | None) -> tuple[str, tuple[str, ...]]:
    clauses: list[str] = []
    params: list[str] = []
    if stream is not None:
        clauses.append("stream = ?")
        params.append(stream)
    if type_prefix:
        types, bounds = _schema.type_prefix_filter(type_prefix)  # the index, for cold types
        clauses.append(types)
        params += bounds
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _watcher(directory: Path) -> RustNotify | None:
    """A notify watcher on ``directory`` (not recursive), or None where watching fails."""
    try:
        from watchfiles._rust_notify import RustNotify
    except ImportError:  # pragma: no cover - watchfiles is a dependency; polling still works
        return None
    try:
        return RustNotify([str(directory)], False, False, 0, False, True)
    except (OSError, RuntimeError):
        # No inotify (or its watch limit is reached), an unsupported file system: poll.
        return None


class Follower:
    """Committed events of a database file as any process appends them, in seq order.

    ``async for rec in Follower(path): ...`` yields :class:`Recorded` events: first the backlog
    (events after ``since``, or the newest ``backlog`` matching events), then, if ``follow``,
    each event as it is committed, forever. Close it by leaving the loop of :meth:`records`
    inside ``contextlib.aclosing``, or by cancelling the task that iterates.

    Args:
        path: the database file (``$EVENFLOW_HOME/evenflow.db``); it must exist.
        since: start after this seq (0 for the whole log). None: start with the backlog.
        stream: only events of this stream (a run id).
        type_prefix: only events whose type starts with this (``"step."``).
        backlog: how many of the newest matching events to start with when ``since`` is None.
        follow: keep following after the backlog (False: stop once caught up).
        watch: wake on file-system events (default: unless ``WATCHFILES_FORCE_POLLING`` is set);
            False polls ``PRAGMA data_version`` instead.
        poll_interval: seconds between two polls when not watching.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        since: int | None = None,
        stream: str | None = None,
        type_prefix: str | None = None,
        backlog: int = 20,
        follow: bool = True,
        watch: bool | None = None,
        poll_interval: float = 0.01,
    ) -> None:
        if since is not None and since < 0:
            raise ValueError(f"since must be a seq >= 0, got {since}")
        self.path = Path(path)
        self.since = since
        self.stream = stream
        self.type_prefix = type_prefix or None
        self.backlog = backlog
        self.follow = follow
        self.watch = (not force_polling()) if watch is None else watch
        self.poll_interval = poll_interval
        self.mode: Mode | None = None
        """How the follower waits: ``"watch"`` or ``"poll"`` (None until it first waits)."""
        self.cursor = 0
        """The seq of the last event read (matching or not)."""

    def __aiter__(self) -> AsyncIterator[Recorded]:
        return self.records()

    async def records(self) -> AsyncGenerator[Recorded, None]:
        """The events, as an async generator (see the class docstring)."""
        # A missing or empty file is not followed (a typo in the home would wait forever);
        # another application's file, or a newer schema, raises StoreError naming it.
        if await anyio.to_thread.run_sync(_schema.inspect, self.path):
            raise StoreError(f"no evenflow database at {self.path}")
        reader = await anyio.to_thread.run_sync(_Reader, self.path)
        watcher: RustNotify | None = None
        try:
            if self.since is not None:
                self.cursor = self.since
            else:
                self.cursor = await anyio.to_thread.run_sync(
                    reader.start, self.backlog, self.stream, self.type_prefix
                )
            force = True
            while True:
                got = await anyio.to_thread.run_sync(
                    reader.read, self.cursor, force, self.stream, self.type_prefix
                )
                if got is not None:
                    records, self.cursor, full = got
                    for rec in records:
                        yield rec
                    force = full  # a full page: read on without waiting
                    if full:
                        continue
                    if not self.follow:
                        return
                    if self.mode is None:
                        # Start watching before the first wait, then read once more: a commit
                        # made before the watch began is found by that read.
                        watcher = _watcher(self.path.parent) if self.watch else None
                        self.mode = "watch" if watcher is not None else "poll"
                        continue
                if watcher is None:
                    await anyio.sleep(self.poll_interval)
                    continue
                try:
                    outcome = await anyio.to_thread.run_sync(
                        watcher.watch, _DEBOUNCE_MS, _STEP_MS, _SAFETY_POLL_MS, None
                    )
                except (OSError, RuntimeError):
                    # The watch broke (the directory went away, the backend failed): poll.
                    watcher.close()
                    watcher = None
                    self.mode = "poll"
                    continue
                if outcome != "timeout":
                    await self._recheck(reader)
        finally:
            if watcher is not None:
                watcher.close()
            reader.close()

    async def _recheck(self, reader: _Reader) -> None:
        """After a file-system event: wait (briefly) until ``data_version`` shows a commit."""
        for delay in _RECHECKS:
            if await anyio.to_thread.run_sync(reader.changed):
                return
            await anyio.sleep(delay)
