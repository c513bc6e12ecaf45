"""The persisted projection: folds every committed batch into the read-model tables.

:class:`Projector` is an ``events.TransactionHook``: the store calls ``apply`` inside each write
transaction, so rows and their checkpoint commit with the events, or not at all.

Invariants relied on here:

* The checkpoint row says which events the rows reflect. A batch is folded only after the
  events between the checkpoint and the batch (appended by a process that ran without this
  projection) are folded from the ``events`` table, so rows never skip an event.
* Rows are a pure function of the log in seq order (run names de-duplicated and artifact
  versions numbered in that order), so :func:`rebuild` reproduces them byte for byte.
* The in-memory cache (views, each run's creation and which of its steps have rows, artifact
  versions) is trusted only while the checkpoint in the database is the seq *and* chain hash
  the cache was built at: rows written by another process, or a transaction rolled back after
  ``apply``, change one of them, and the cache is dropped. (A rebuild leaves both as they
  were, and writes the rows the cache already holds.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence

from events import COLD_TYPES, Recorded

from . import _tables
from ._bulk import bulk_load
from ._cache import Cache
from ._pass import Pass

_PAGE = 2000  # records of a batch folded between flush checks
_CHUNK = 1000  # events decoded and folded at a time while reading the table
_FLUSH = 20_000  # views held before writing them out during a long catch-up
_log = logging.getLogger(__name__)


def _read_events(
    conn: sqlite3.Connection, after: int, before: int | None
) -> Iterator[list[Recorded]]:
    """Committed events with ``after < seq < before``, decoded, a chunk at a time.

    One query, read as it goes: the fold writes only the projection's tables meanwhile, never
    ``events``, so the cursor stays valid (and sees the same rows) until it is exhausted.
    """
    sql = f"SELECT {_tables.EVENT_COLUMNS} FROM events WHERE seq > ?"
    params: list[int] = [after]
    if before is not None:
        sql += " AND seq < ?"
        params.append(before)
    cursor = conn.execute(sql + " ORDER BY seq", params)
    while rows := cursor.fetchmany(_CHUNK):
        yield _tables.records(rows)


def _fold(p: Pass, pages: Iterable[Sequence[Recorded]], *, expect: bool) -> None:
    """Fold pages in order, flushing whenever enough views are held. ``expect``: look up which
    artifacts each page stores are new first (one query per page instead of one per artifact)."""
    for page in pages:
        if expect:
            p.expect(page)
        p.fold_all(page)
        if p.pending >= _FLUSH:
            p.flush()


class Projector:
    """The persisted run, step-run and artifact projection, as an ``events.TransactionHook``.

    Register it with the store (``EventStore.open(path, hooks=[Projector()])``); the store calls
    :meth:`install` once at open and :meth:`apply` inside every write transaction.

    Args:
        cache_size: how many run views, how many step views and how many step specs (of
            runs' ``run.created``) to keep in memory between batches (the oldest are dropped
            first).
    """

    def __init__(self, *, cache_size: int = 32_768) -> None:
        self._cache = Cache(cache_size)
        # Set by rebuild on its own projector: the next fold starts from freshly created, empty
        # tables (see Pass). Only that one fold: it writes rows.
        self._empty = False

    def install(self, conn: sqlite3.Connection) -> None:
        """Create the tables if they are missing and fold the events they have not seen yet.

        Runs inside the caller's write transaction; never commits.
        """
        self._cache.clear()
        _tables.create(conn)
        self._catch_up(conn, [])

    def apply(self, conn: sqlite3.Connection, batch: Sequence[Recorded]) -> None:
        """Fold a batch of just-inserted events (in seq order) into the tables.

        Events the checkpoint is behind on (appended by a process without this projection) are
        folded from the ``events`` table first; events already folded are skipped. Runs inside
        the caller's write transaction; never commits.
        """
        if batch:
            self._catch_up(conn, batch)

    def _catch_up(self, conn: sqlite3.Connection, batch: Sequence[Recorded]) -> int:
        """Fold the events after the checkpoint: the table's, then the batch's. Returns how many
        were folded."""
        cache = self._cache
        at = _tables.read_checkpoint(conn)
        if cache.at != at:
            cache.clear()
        done = at[0]
        fresh = batch if not batch or batch[0].seq > done else [r for r in batch if r.seq > done]
        if batch and not fresh:
            return 0  # already folded (a retried transaction)
        cache.at = None  # trusted again only once this fold has completed
        p = Pass(conn, cache, empty=self._empty)
        self._empty = False
        try:
            if not fresh or fresh[0].seq > done + 1:
                # install folds everything new; apply folds the gap before its batch.
                _fold(p, _read_events(conn, done, fresh[0].seq if fresh else None), expect=True)
            p.expect(fresh)
            _fold(p, (fresh[i : i + _PAGE] for i in range(0, len(fresh), _PAGE)), expect=False)
            p.flush()
        except BaseException:
            cache.clear()
            raise
        if p.last_seq is None:
            cache.at = at
        elif fresh and fresh[-1].seq == p.last_seq:
            cache.at = (p.last_seq, bytes(fresh[-1].hash))
        else:
            cache.at = _tables.read_checkpoint(conn)
        return p.folded


CHILD_MIN_EVENTS = 100_000
"""A rebuild of at least this many events folds in a child process (see ``_rebuild_child``)."""


def _python_executable() -> bool:
    """Whether ``sys.executable`` is a Python interpreter that children can be started with: not
    a frozen application or a server embedding Python (uWSGI...), whose executable would start
    the application itself."""
    name = os.path.basename(sys.executable or "").lower()
    return not getattr(sys, "frozen", False) and name.startswith(("python", "pypy"))


def _fold_detached(conn: sqlite3.Connection) -> int | None:
    """Fold the whole log in a child process, writing its rows on ``conn`` (in the rebuild's
    own transaction, so every event is committed and no other writer can append meanwhile).

    None, with nothing written, when it does not apply: the database is not a WAL file (the
    child reads it while this connection writes), the log is shorter than
    :data:`CHILD_MIN_EVENTS` or holds a deletion, the machine has one processor, the system is
    not POSIX (the pipes are multiplexed with ``select``), this process was not started by a
    Python interpreter (see :func:`_python_executable`), or the child failed (its rows are
    rolled back, and the caller folds by itself).
    """
    (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    if (
        last < max(1, CHILD_MIN_EVENTS)
        or _processors() < 2
        or not _python_executable()
        or os.name != "posix"  # the pipes to the folder are multiplexed with select()
    ):
        return None
    path = next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"), "")
    (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    if not path or str(mode).lower() != "wal":
        return None
    deleted = f"SELECT 1 FROM events WHERE type = 'runs.deleted' AND {COLD_TYPES} LIMIT 1"
    if conn.execute(deleted).fetchone():
        return None
    # Imported here: ``python -m projections._rebuild_child`` must find it not yet imported
    # when the package (which imports this module) is.
    from ._rebuild_child import ChildFailed, fold_in_child

    conn.execute("SAVEPOINT rebuild_in_child")
    try:
        folded = fold_in_child(conn, path, last)
    except ChildFailed as exc:
        _undo(conn)
        _log.warning("rebuilding in this process: the child process failed (%s)", exc)
        return None
    except BaseException:
        _undo(conn)
        raise
    conn.execute("RELEASE rebuild_in_child")
    return folded


def _undo(conn: sqlite3.Connection) -> None:
    """Roll back to the savepoint taken before the children's rows, if the transaction is still
    there (an I/O error or a full disk may have rolled it all back: the caller's error says
    why, not a missing savepoint)."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK TO rebuild_in_child")
            conn.execute("RELEASE rebuild_in_child")


def _processors() -> int:
    """The processors this process may run on (its affinity, where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def rebuild(conn: sqlite3.Connection) -> int:
    """Drop the projection's tables, recreate them and fold every event again.

    Works on the store's connection inside its transaction, or on a plain
    ``sqlite3.connect(path)``: when ``conn`` is not in a transaction, this opens one
    (``BEGIN IMMEDIATE``) and commits it, or rolls it back on error. The rows it writes are
    byte-identical to the ones maintained incrementally.

    The fold runs as a bulk load (see ``_bulk``), and the indexes only queries use are created
    once the rows are in, within the same transaction. When this opens the transaction and the
    log is long, a child process folds it while this one feeds it the log and writes the rows
    (:func:`_fold_detached`); otherwise, or if the child fails, the fold runs here.

    Returns:
        The number of events folded.
    """
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        with bulk_load(conn):
            for table in _tables.TABLES:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            _tables.create(conn, query_indexes=False)
            conn.execute(_tables.SET_CHECKPOINT, (_tables.CHECKPOINT, 0))
            folded = _fold_detached(conn) if own else None
            if folded is None:
                projector = Projector()
                projector._empty = True
                folded = projector._catch_up(conn, [])
            for statement in _tables.QUERY_INDEXES:
                conn.execute(statement)
            if own:
                conn.execute("COMMIT")  # while the page cache still holds the new pages
    except BaseException:
        if own and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return folded
