"""The database file: its schema, and the check that a file is ours before we touch it.

A file is opened read-only first and inspected; only an empty file, a fresh SQLite database or an
evenflow database of a schema version we know is ever opened for writing. Anything else raises one
:class:`StoreError` naming the path, and the file is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ._errors import StoreCorruptedError, StoreError

APPLICATION_ID = 0x45564E46  # "EVNF"
SCHEMA_VERSION = 1

HOT_TYPES = (
    "artifact.stored",
    "step.declared",
    "step.logs",
    "step.ready",
    "step.started",
    "step.succeeded",
)
"""The types every step appends (most of any log), left out of the ``events_by_type`` index.

Nothing looks these up by type: a run's steps are read by stream, a tail walks seqs. Leaving
them out makes the index a few entries per run instead of one per event, so an append updates
one B-tree fewer for each of them (about a fifth more events per second, measured on W6)."""

COLD_TYPES = " AND ".join(f"type <> '{t}'" for t in HOT_TYPES)
"""The type index's condition, word for word: a query must carry these very terms for SQLite
to use the partial index (see :func:`type_prefix_filter`). Public, for the queries of
``engine`` and ``projections`` that look events up by a type that is not hot.

Comparisons, not ``type NOT IN (...)``: SQLite builds an IN list's lookup table each time the
insert statement runs, which made appends slower than with the full index."""

DDL = f"""
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    payload BLOB NOT NULL,
    hash BLOB NOT NULL,
    UNIQUE (stream, version)
);
CREATE INDEX IF NOT EXISTS events_by_type ON events (type, seq) WHERE {COLD_TYPES};
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'evenflow events are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'evenflow events are append-only: DELETE is not allowed'); END;
CREATE TABLE IF NOT EXISTS evenflow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

TRIGGERS = ("events_no_update", "events_no_delete")
_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100


_OPEN_HERE: dict[str, int] = {}
"""Databases this process has a store open on (resolved path -> how many stores).

POSIX record locks belong to the process: closing *any* descriptor of the database file drops
every lock this process holds on it, including a live store's WAL locks (another process may then
checkpoint and delete the WAL under it). So a database open here is never opened again outside
SQLite: :func:`inspect` trusts it instead of reading its header. Process-wide by nature."""


@contextlib.contextmanager
def held_open(path: Path) -> Iterator[None]:
    """Mark ``path`` as open in this process for the ``with`` block (see ``_OPEN_HERE``)."""
    key = str(path.resolve())
    _OPEN_HERE[key] = _OPEN_HERE.get(key, 0) + 1
    try:
        yield
    finally:
        _OPEN_HERE[key] -= 1
        if not _OPEN_HERE[key]:
            del _OPEN_HERE[key]


def inspect(path: Path) -> bool:
    """Check, read-only, that ``path`` may be opened as an evenflow store.

    Returns True when the file must be initialised (missing, empty or a blank SQLite database),
    False when it already is an evenflow store of a known schema. Raises :class:`StoreError`
    otherwise, without modifying the file or leaving any ``-wal``/``-shm`` file behind.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return True
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not an evenflow database")
    if size == 0:
        return True
    if str(path.resolve()) in _OPEN_HERE:
        return False  # checked when it was opened; reading its header here would drop locks
    try:
        with path.open("rb") as f:
            header = f.read(_HEADER_SIZE)
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    # SQLite would treat a short file as empty and overwrite it: check the header ourselves.
    if len(header) < _HEADER_SIZE or not header.startswith(_MAGIC):
        raise StoreError(f"{path} is not an evenflow database (not an SQLite file)")
    app_id = int.from_bytes(header[68:72], "big")
    user_version = int.from_bytes(header[60:64], "big")
    if app_id == APPLICATION_ID and user_version > SCHEMA_VERSION:
        raise _newer(path, user_version)
    # Without a live WAL the file alone is the database: read it immutable, so SQLite creates
    # no -wal/-shm file and takes no lock. With one (a store open in another process, or one that
    # crashed, whose header may still be in the WAL), SQLite must read the WAL: open read-only.
    wal = path.with_name(path.name + "-wal")
    live = wal.exists() and wal.stat().st_size > 0
    try:
        app_id, user_version, tables = _read_schema(path, immutable=not live)
    except sqlite3.DatabaseError as exc:
        if live or app_id != APPLICATION_ID:
            raise StoreError(f"{path} is not an evenflow database ({exc})") from exc
        # Ours, and a writer that started meanwhile may have been checkpointing into the file
        # while we read it immutable: read it again, the ordinary way.
        try:
            app_id, user_version, tables = _read_schema(path, immutable=False)
        except sqlite3.DatabaseError as again:
            raise StoreCorruptedError(f"{path} cannot be read ({again})") from again
    if app_id == 0 and not tables:
        return True
    if app_id != APPLICATION_ID:
        listed = ", ".join(sorted(tables)) or "none"
        raise StoreError(
            f"{path} is not an evenflow database (another application's SQLite file; "
            f"tables: {listed})"
        )
    if user_version > SCHEMA_VERSION:
        raise _newer(path, user_version)
    if "events" not in tables:
        raise StoreCorruptedError(f"{path} is an evenflow database without an events table")
    return False


def _read_schema(path: Path, *, immutable: bool) -> tuple[int, int, set[str]]:
    """``(application_id, user_version, table names)``, read through a read-only connection."""
    mode = "mode=ro&immutable=1" if immutable else "mode=ro"
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True)
    try:
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        user_version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    return app_id, user_version, tables


def _newer(path: Path, user_version: int) -> StoreError:
    return StoreError(
        f"{path} was written by a newer evenflow (schema {user_version}; "
        f"this version reads up to {SCHEMA_VERSION}); upgrade evenflow to open it"
    )


def initialise_in_tx(conn: sqlite3.Connection) -> None:
    """Create the schema (idempotent) and stamp the file as ours, inside the caller's
    write transaction (two processes creating one home at once must not race)."""
    for statement in _statements(DDL):
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def type_index_is_partial(conn: sqlite3.Connection) -> bool:
    """Whether ``events_by_type`` is the partial index of :data:`COLD_TYPES` (a database
    created before it was partial indexes every event; either serves every query, only the
    speed of appends differs)."""
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'events_by_type'"
    ).fetchone()
    return row is not None and str(row[0] or "").endswith(f" WHERE {COLD_TYPES}")


def make_type_index_partial_in_tx(conn: sqlite3.Connection) -> None:
    """Replace a full ``events_by_type`` index by the partial one, inside the caller's write
    transaction (another process may have done it meanwhile: then nothing changes)."""
    if not type_index_is_partial(conn):
        conn.execute("DROP INDEX IF EXISTS events_by_type")
        conn.execute(f"CREATE INDEX events_by_type ON events (type, seq) WHERE {COLD_TYPES}")


def type_prefix_filter(prefix: str) -> tuple[str, tuple[str, str]]:
    """An SQL condition matching the types that start with ``prefix``, and its parameters.

    When no :data:`HOT_TYPES` type starts with ``prefix``, the condition also carries
    :data:`COLD_TYPES`: it removes nothing there, and it lets SQLite use the type index.
    """
    sql = "type >= ? AND type < ?"
    if not any(t.startswith(prefix) for t in HOT_TYPES):
        sql += f" AND {COLD_TYPES}"
    return sql, (prefix, prefix + "\U0010ffff")


def _statements(script: str) -> list[str]:
    """Split the DDL into statements (``executescript`` would commit our transaction)."""
    out: list[str] = []
    buf: list[str] = []
    for line in script.strip().splitlines():
        buf.append(line)
        joined = "\n".join(buf)
        if sqlite3.complete_statement(joined):
            out.append(joined)
            buf = []
    return out
