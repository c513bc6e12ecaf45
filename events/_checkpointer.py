"""Copying committed WAL pages into the database file, on a thread of its own.

In WAL mode every commit appends its changed pages to the ``-wal`` file, and a checkpoint
copies them back into the database file. By default SQLite runs that checkpoint inside the
COMMIT that takes the WAL past 1,000 pages: every few dozen commits one of them also reads
and writes a thousand pages and syncs both files. On a chain of one-step commits that was
about half of COMMIT's time (measured on W1).

:class:`Checkpointer` does most of that copying on its own thread and connection, shortly after
commits, while the writer goes on. The writer keeps SQLite's automatic checkpoint as it was:
it is what restarts the WAL from its beginning (a checkpoint that ran while no transaction was
writing), so the WAL stays as bounded as before, and it finds almost nothing left to copy.

* A checkpoint is PASSIVE: it never waits for, or blocks, readers or the writer, and it copies
  only committed pages. Nothing about durability changes: a commit is as durable as it was
  when COMMIT returned, and the database file only receives pages the WAL already holds.
* A failing checkpoint is logged once and retried on the next commit; the writer's own
  automatic checkpoint still runs, so nothing depends on this thread.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

PAUSE_S = 0.005
"""Least time between two checkpoints: commits in between share one (and its two syncs)."""


class Checkpointer:
    """A thread that checkpoints a database (PASSIVE) after commits; see the module.

    Start one with :meth:`start` when the store opens; call :meth:`poke` after a commit, and
    :meth:`close` before the store closes its writer (the last connection to close checkpoints
    whatever is left and removes the WAL). The thread is a daemon: a process that exits
    without closing its store is not held up by it, and a checkpoint cut short is as safe as
    one cut short by a crash.
    """

    def __init__(self, conn: sqlite3.Connection, label: str, *, pause_s: float = PAUSE_S) -> None:
        self._conn = conn
        self._label = label
        self._pause_s = pause_s
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._failed = False
        self.checkpoints = 0  # completed checkpoints (tests and benchmarks read it)
        self._thread = threading.Thread(target=self._loop, name="evenflow-checkpoint", daemon=True)
        self._thread.start()

    @classmethod
    def start(
        cls, path: Path, synchronous: str, *, pause_s: float = PAUSE_S
    ) -> Checkpointer | None:
        """A checkpointer for the database at ``path``, which must exist; None (and a warning)
        if it cannot be opened: the writer's automatic checkpoint then does the work alone.

        The connection is made here, while the store opens, and never by name again: it
        follows the files the store has open even if the path is renamed or the working
        directory changes, and ``mode=rw`` never creates a file (an empty file beside a
        live WAL would make SQLite discard that WAL).
        """
        try:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=rw",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute(f"PRAGMA synchronous = {synchronous}")
                conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # open it now
            except sqlite3.Error:
                conn.close()
                raise
        except (sqlite3.Error, OSError) as exc:
            log.warning("no background checkpoints for %s (the writer's own remain): %s", path, exc)
            return None
        return cls(conn, str(path), pause_s=pause_s)

    def poke(self) -> None:
        """A commit happened: checkpoint soon (cheap when a checkpoint is already due)."""
        if not self._wake.is_set():
            self._wake.set()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it is running, if any) and wait for it."""
        self._closing.set()
        self._wake.set()
        self._thread.join()

    def _loop(self) -> None:
        try:
            while True:
                self._wake.wait()
                if self._closing.is_set():
                    return
                self._wake.clear()
                self._checkpoint()
                if self._closing.wait(self._pause_s):  # the pause ends early on close()
                    return
        finally:
            self._conn.close()

    def _checkpoint(self) -> None:
        try:
            # A PASSIVE checkpoint that finds another checkpoint running reports it in its
            # row instead of raising; either way the writer's automatic one remains.
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            self._report(exc)
            return
        self.checkpoints += 1

    def _report(self, exc: sqlite3.Error) -> None:
        if not self._failed:
            self._failed = True
            log.warning(
                "background checkpoint of %s failed (the writer's own remains): %s",
                self._label,
                exc,
            )
