"""The read-model tables: their DDL, and the SQL that reads and writes their rows.

Tables live in the event store's database, so rows commit atomically with the events they
fold. ``runs`` and ``step_runs`` keep a few columns for filtering plus the view as a msgpack
BLOB; ``artifacts`` is plain columns. ``projection_checkpoints`` holds the seq each projection
has folded up to, written in the same transaction as its rows.

A step has a ``step_runs`` row once an event after ``run.created`` changed it, or once a
``step.declared`` declared it. A step ``run.created`` declared and nothing changed since is
pending by definition, so its row is not written (a run may declare thousands): its view is
derived from that ``run.created``, like the spec of every step (see ``_views``).

The checkpoint's name carries the version of this row layout: tables without a checkpoint of
that name were written by another layout (or never folded), so :func:`create` drops and
recreates them, and the projector folds the log into them again.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from itertools import chain
from typing import Any

import msgspec

from events import ArtifactRef, Recorded, StoreCorruptedError, decode, decode_many

from ._views import (
    STATUS_VALUE,
    RunView,
    StepView,
    decode_run,
    encode_step,
    encode_view,
)

_NAME = "core"
LAYOUT = 3  # 3: a step row names its outputs by artifact id (see StoredStep)
"""The version of the row layout: bumped whenever rows folded by the previous code would not
decode, or would differ from a rebuild's."""
CHECKPOINT = f"{_NAME}/{LAYOUT}"
"""This projection's row in ``projection_checkpoints``."""

TABLES = ("runs", "step_runs", "artifacts", "cache_entries")

ARTIFACTS_STREAM = "artifacts"
"""The stream of ``artifact.stored`` events of artifacts saved outside any run
(``engine.save_artifact``): their ``artifacts`` rows have this as their run id and no step."""

DDL = (
    """CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    pipeline TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    ended_at REAL,
    tags TEXT NOT NULL,
    schedule_id TEXT,
    view BLOB NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS step_runs (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    status TEXT NOT NULL,
    view BLOB NOT NULL,
    PRIMARY KEY (run_id, step_id)
)""",
    """CREATE TABLE IF NOT EXISTS artifacts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    uri TEXT NOT NULL,
    materializer TEXT NOT NULL,
    type_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS artifacts_by_name ON artifacts (name, version)",
    # A step run whose outputs may serve later cache hits (from step.succeeded's cache_key).
    # The key leads with the run, not the (random) cache key: a run's new entries then land on
    # a few adjacent index pages instead of one page each, and a run's entries are a range.
    """CREATE TABLE IF NOT EXISTS cache_entries (
    cache_key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    step_name TEXT NOT NULL,
    created_at REAL NOT NULL,
    outputs BLOB NOT NULL,
    PRIMARY KEY (run_id, step_id, cache_key)
)""",
)
QUERY_INDEXES = (
    "CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, created_at)",
    "CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_at)",
    "CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at)",
    "CREATE INDEX IF NOT EXISTS runs_by_schedule ON runs (schedule_id, created_at)",
    "CREATE INDEX IF NOT EXISTS artifacts_by_run ON artifacts (run_id, step_id)",
    "CREATE INDEX IF NOT EXISTS cache_by_step ON cache_entries (step_name, created_at)",
)
"""Indexes only queries use: folding never reads through them (it looks rows up by primary key,
run name and artifact name), so a rebuild creates them after its rows are in."""
_CHECKPOINTS_DDL = """CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
)"""

# Writes, as (head, columns, tail) for write_many: multi-row ``VALUES`` statements.
# Upserts, not INSERT OR REPLACE: REPLACE would silently delete another run holding the same
# name; an upsert raises instead (and names are made unique before rows are written).
UPSERT_RUN = (
    "INSERT INTO runs (id, name, pipeline, status, created_at, ended_at, tags, schedule_id, view)",
    9,
    " ON CONFLICT (id) DO UPDATE SET name = excluded.name, pipeline = excluded.pipeline,"
    " status = excluded.status, created_at = excluded.created_at, ended_at = excluded.ended_at,"
    " tags = excluded.tags, schedule_id = excluded.schedule_id, view = excluded.view",
)
UPSERT_STEP = (
    "INSERT INTO step_runs (run_id, step_id, status, view)",
    4,
    " ON CONFLICT (run_id, step_id) DO UPDATE SET status = excluded.status, view = excluded.view",
)
INSERT_ARTIFACT = (
    "INSERT INTO artifacts (id, name, version, run_id, step_id, content_hash, uri, materializer,"
    " type_name, size, created_at)",
    11,
    "",
)
ARTIFACT_COLUMNS = (
    "id, name, version, run_id, step_id, content_hash, uri, materializer, type_name, size,"
    " created_at"
)
INSERT_CACHE_ENTRY = (
    "INSERT OR IGNORE INTO cache_entries (cache_key, run_id, step_id, step_name, created_at,"
    " outputs)",
    6,
    "",
)
WRITES = (UPSERT_RUN, UPSERT_STEP, INSERT_ARTIFACT, INSERT_CACHE_ENTRY)
"""Every write a fold makes (a child process names one by its index here)."""
SET_CHECKPOINT = (
    "INSERT INTO projection_checkpoints (name, seq) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq"
)
EVENT_COLUMNS = "seq, stream, version, type, recorded_at, payload"
"""The columns a fold reads of each event (not its chain hash: a fold never needs it)."""


def records(rows: Sequence[Sequence[Any]]) -> list[Recorded]:
    """The records of event rows read as :data:`EVENT_COLUMNS`, their payloads decoded together
    (``events.decode_many``).

    Raises:
        StoreCorruptedError: a payload does not decode; names its seq (the first of the rows
            that fails alone).
    """
    try:
        events = decode_many([row[5] for row in rows])
    except StoreCorruptedError as exc:
        for row in rows:  # which one: decode them one by one (this is the failure path)
            try:
                decode(row[5])
            except StoreCorruptedError as alone:
                raise StoreCorruptedError(f"event seq {row[0]}: {alone}") from alone
        raise exc
    return [
        Recorded(seq, stream, version, type_, at, event)
        for (seq, stream, version, type_, at, _), event in zip(rows, events, strict=True)
    ]


_tags_encoder = msgspec.json.Encoder()

RunRow = tuple[str, str, str, str, float, float | None, str, str | None, bytes]
StepRow = tuple[str, str, str, bytes]
ArtifactRow = tuple[str, str, int, str, str, str, str, str, str, int, float]


Write = tuple[str, int, str]
_MAX_CHUNK = 256  # rows per statement (a power of two)


def write_many(conn: sqlite3.Connection, write: Write, rows: Sequence[Sequence[Any]]) -> None:
    """Write ``rows`` with multi-row ``VALUES`` statements of a power-of-two row count.

    Not ``executemany``: it steps the statement once per row, and SQLite releases the GIL on
    every step. On the store's writer thread, each step then waits to take the GIL back from the
    busy event loop (up to the switch interval); one statement per chunk waits once. Rows are
    written in order, as ``executemany`` would.
    """
    total = len(rows)
    if total == 1:  # the common case of small batches
        conn.execute(_values_sql(write, 1), rows[0])
        return
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // write[1]
    size = 1 << max(0, min(_MAX_CHUNK, limit).bit_length() - 1)
    start = 0
    while start < total:
        while size > total - start:
            size >>= 1
        end = start + size
        conn.execute(_values_sql(write, size), list(chain.from_iterable(rows[start:end])))
        start = end


@functools.lru_cache(maxsize=64)
def _values_sql(write: Write, rows: int) -> str:
    head, width, tail = write
    marks = "(" + ",".join("?" * width) + ")"
    return f"{head} VALUES {','.join([marks] * rows)}{tail}"


def create(conn: sqlite3.Connection, *, query_indexes: bool = True) -> None:
    """Create the tables and indexes that are missing, and this projection's checkpoint row.

    Without that row, the tables are dropped first: their rows were not folded under it (an
    older row layout, or an interrupted history), and the new checkpoint starts from seq 0.

    Args:
        query_indexes: also create :data:`QUERY_INDEXES` (a rebuild creates them once its rows
            are written, which is faster than updating them row by row).
    """
    conn.execute(_CHECKPOINTS_DDL)
    found = conn.execute(
        "SELECT 1 FROM projection_checkpoints WHERE name = ?", (CHECKPOINT,)
    ).fetchone()
    if found is None:
        for table in TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(
            "DELETE FROM projection_checkpoints WHERE name = ? OR name LIKE ?",
            (_NAME, f"{_NAME}/%"),
        )
        conn.execute(SET_CHECKPOINT, (CHECKPOINT, 0))
    for statement in DDL:
        conn.execute(statement)
    if query_indexes:
        for statement in QUERY_INDEXES:
            conn.execute(statement)


def run_row(view: RunView) -> RunRow:
    """The ``runs`` row of a run view."""
    return (
        view.id,
        view.name,
        view.pipeline,
        view.status.value,
        view.created_at,
        view.ended_at,
        _tags_encoder.encode(view.tags).decode(),
        view.schedule_id,
        encode_view(view),
    )


def step_row(view: StepView, spec_seq: int) -> StepRow:
    """The ``step_runs`` row of a step view (``spec_seq``: as :class:`StoredStep` says)."""
    return (view.run_id, view.id, STATUS_VALUE[view.status], encode_step(view, spec_seq))


def artifact_row(
    ref: ArtifactRef, version: int, run_id: str, step_id: str, created_at: float
) -> ArtifactRow:
    """The ``artifacts`` row of a stored artifact."""
    return (
        ref.id,
        ref.name,
        version,
        run_id,
        step_id,
        ref.content_hash,
        ref.uri,
        ref.materializer,
        ref.type_name,
        ref.size,
        created_at,
    )


def load_run(conn: sqlite3.Connection, run_id: str) -> RunView | None:
    """The stored view of a run, or None."""
    row = conn.execute("SELECT view FROM runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else decode_run(row[0])


def read_checkpoint(conn: sqlite3.Connection) -> tuple[int, bytes]:
    """This projection's checkpoint seq and the chain hash of the event at it (b"" if none)."""
    row = conn.execute(
        "SELECT c.seq, e.hash FROM projection_checkpoints AS c"
        " LEFT JOIN events AS e ON e.seq = c.seq WHERE c.name = ?",
        (CHECKPOINT,),
    ).fetchone()
    if row is None:
        return 0, b""
    return int(row[0]), bytes(row[1]) if row[1] is not None else b""
