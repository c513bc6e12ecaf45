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
    """A thread that checkpoints ``path`` (PASSIVE) after commits; see the module.

    Call :meth:`poke` after a commit, and :meth:`close` before the store closes its writer
    (the last connection to close checkpoints whatever is left and removes the WAL). The
    thread is a daemon: a process that exits without closing its store is not held up by it,
    and a checkpoint cut short is as safe as one cut short by a crash.
    """

    def __init__(self, path: Path, synchronous: str, *, pause_s: float = PAUSE_S) -> None:
        self._path = path
        self._synchronous = synchronous
        self._pause_s = pause_s
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._failed = False
        self.checkpoints = 0  # completed checkpoints (tests and benchmarks read it)
        self._thread = threading.Thread(target=self._loop, name="evenflow-checkpoint", daemon=True)
        self._thread.start()

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
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait()
                if self._closing.is_set():
                    return
                self._wake.clear()
                if conn is None:
                    conn = self._connect()
                    if conn is None:
                        continue
                self._checkpoint(conn)
                if self._closing.wait(self._pause_s):  # the pause ends early on close()
                    return
        finally:
            if conn is not None:
                conn.close()

    def _connect(self) -> sqlite3.Connection | None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        except sqlite3.Error as exc:
            self._report(exc)
            return None
        return conn

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            # A PASSIVE checkpoint that finds another checkpoint running reports it in its
            # row instead of raising; either way the writer's automatic one remains.
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            self._report(exc)
            return
        self.checkpoints += 1

    def _report(self, exc: sqlite3.Error) -> None:
        if not self._failed:
            self._failed = True
            log.warning(
                "background checkpoint of %s failed (the writer's own remains): %s", self._path, exc
            )
