"""Settings for one bulk load of the projection's tables (a rebuild), undone afterwards.

A rebuild refolds the whole log in one transaction: millions of short-lived objects in
Python, and hundreds of megabytes of fresh table and index pages in SQLite. Two defaults tuned
for the incremental path cost it most:

* The cyclic garbage collector. Decoding and folding allocate a few container objects per
  event, which keeps triggering collections, and every full collection walks everything the
  fold holds (its cache of views). Nothing a fold builds is a reference cycle (views and
  events are trees of frozen structs, dicts and lists), so reference counting frees all of it,
  and pausing the collector loses nothing. Measured on W8: the collector took about a third of
  the rebuild's time.
* SQLite's page cache (2 MiB by default): once the new tables outgrow it, changed pages are
  spilled to the WAL and read back while the transaction is still writing them.

Neither setting is touched for normal operation: journal mode and synchronous stay as the store
set them, and the page cache goes back to its size when the load ends.
"""

from __future__ import annotations

import contextlib
import gc
import sqlite3
from collections.abc import Iterator

_CACHE_KIB = 128 * 1024  # page cache during the load (SQLite allocates it only as it fills)


@contextlib.contextmanager
def bulk_load(conn: sqlite3.Connection) -> Iterator[None]:
    """Within the block: a page cache of at least 128 MiB on ``conn``, and the cyclic garbage
    collector paused (if it was running). Both are restored on exit, error or not.

    The collector is process-wide; pausing it only defers collecting cycles other threads
    make meanwhile (reference counting still frees everything else), and only for the block.
    """
    (size,) = conn.execute("PRAGMA cache_size").fetchone()
    (page,) = conn.execute("PRAGMA page_size").fetchone()
    # A positive size counts pages, a negative one KiB (SQLite's convention).
    kib = size * page // 1024 if size > 0 else -size
    if kib < _CACHE_KIB:
        conn.execute(f"PRAGMA cache_size = {-_CACHE_KIB}")
    collecting = gc.isenabled()
    if collecting:
        gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
        if kib < _CACHE_KIB:
            conn.execute(f"PRAGMA cache_size = {int(size)}")
