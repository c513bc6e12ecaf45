"""Queries on the read models: sync functions of a ``sqlite3.Connection``.

The engine runs them on the store's reader thread (``store.run_read(get_run, run_id)``); they
work just as well on a plain ``sqlite3.connect(path)``. They never write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import msgspec

from events import ArtifactRef

from . import _tables
from ._pass import decode_outputs
from ._specs import load_steps
from ._status import ExecutionStatus
from ._views import ArtifactView, RunState, RunView, StepView, decode_run

MIN_PREFIX = 8
"""The shortest run id prefix :func:`find_runs` matches."""

_SORTS = {
    "created": "created_at ASC, id ASC",
    "-created": "created_at DESC, id DESC",
    "asc:created": "created_at ASC, id ASC",
    "desc:created": "created_at DESC, id DESC",
    "name": "name ASC",
    "-name": "name DESC",
    "ended": "ended_at ASC, id ASC",
    "-ended": "ended_at DESC, id DESC",
}
_END = "\U0010ffff"  # sorts after every character: [prefix, prefix + _END) is the prefix range


def get_run(conn: sqlite3.Connection, run_id: str) -> RunView | None:
    """The run with this exact id, or None."""
    return _tables.load_run(conn, run_id)


def find_runs(conn: sqlite3.Connection, id_prefix_or_name: str) -> list[RunView]:
    """Runs matching an exact id, else an exact name, else an id prefix of at least 8 characters.

    Returns:
        The matches (several only for an ambiguous prefix), oldest first; [] when none.
    """
    key = id_prefix_or_name
    run = _tables.load_run(conn, key)
    if run is not None:
        return [run]
    row = conn.execute("SELECT view FROM runs WHERE name = ?", (key,)).fetchone()
    if row is not None:
        return [decode_run(row[0])]
    if len(key) < MIN_PREFIX:
        return []
    rows = conn.execute(
        "SELECT view FROM runs WHERE id >= ? AND id < ? ORDER BY created_at, id",
        (key, key + _END),
    )
    return [decode_run(blob) for (blob,) in rows]


def list_runs(
    conn: sqlite3.Connection,
    *,
    pipeline: str | None = None,
    status: ExecutionStatus | str | None = None,
    tags: Iterable[str] | None = None,
    since: float | None = None,
    size: int | None = None,
    sort_by: str = "-created",
    schedule_id: str | None = None,
) -> list[RunView]:
    """Runs matching every filter given.

    Args:
        conn: a connection to the store's database.
        pipeline: only runs of this pipeline.
        status: only runs with this status.
        tags: only runs having all these tags.
        since: only runs created at or after this time (UTC epoch seconds).
        size: at most this many runs.
        sort_by: ``"-created"`` (newest first, the default), ``"created"``, ``"desc:created"``,
            ``"asc:created"``, ``"name"``, ``"-name"``, ``"ended"`` or ``"-ended"``.
        schedule_id: only runs triggered by this schedule.

    Raises:
        ValueError: ``sort_by``, ``status`` or ``size`` is not valid.
    """
    order = _SORTS.get(sort_by)
    if order is None:
        raise ValueError(f"unknown sort_by {sort_by!r}: use one of {', '.join(_SORTS)}")
    where: list[str] = []
    params: list[Any] = []
    if pipeline is not None:
        where.append("pipeline = ?")
        params.append(pipeline)
    if status is not None:
        try:
            params.append(ExecutionStatus(status).value)
        except ValueError:
            known = ", ".join(s.value for s in ExecutionStatus)
            raise ValueError(f"unknown status {status!r}: use one of {known}") from None
        where.append("status = ?")
    for tag in dict.fromkeys(tags or ()):
        where.append("EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE json_each.value = ?)")
        params.append(tag)
    if since is not None:
        where.append("created_at >= ?")
        params.append(since)
    if schedule_id is not None:
        where.append("schedule_id = ?")
        params.append(schedule_id)
    sql = "SELECT view FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {order}"
    if size is not None:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        sql += " LIMIT ?"
        params.append(size)
    return [decode_run(blob) for (blob,) in conn.execute(sql, params)]


def get_steps(conn: sqlite3.Connection, run_id: str) -> dict[str, StepView]:
    """The run's step runs by invocation id, in the DAG's declaration order ({} if no run)."""
    run = _tables.load_run(conn, run_id)
    return {} if run is None else load_steps(conn, run)


def get_run_state(conn: sqlite3.Connection, run_id: str) -> RunState | None:
    """The run and its step runs as of the projection's checkpoint, or None."""
    run = _tables.load_run(conn, run_id)
    return None if run is None else RunState(run, load_steps(conn, run))


def artifact_view(row: tuple[Any, ...]) -> ArtifactView:
    """The view of an ``artifacts`` row (selected as ``_tables.ARTIFACT_COLUMNS``)."""
    aid, name, version, run_id, step_id, content_hash, uri, materializer, type_name, size, at = row
    ref = ArtifactRef(
        id=aid,
        name=name,
        content_hash=content_hash,
        uri=uri,
        materializer=materializer,
        type_name=type_name,
        size=size,
    )
    return ArtifactView(
        id=aid,
        name=name,
        version=version,
        run_id=run_id,
        step_id=step_id,
        content_hash=content_hash,
        uri=uri,
        materializer=materializer,
        type_name=type_name,
        size=size,
        created_at=at,
        ref=ref,
    )


def list_artifact_versions(conn: sqlite3.Connection, name: str) -> list[ArtifactView]:
    """Every version of the artifact ``name``, oldest (version 1) first."""
    rows = conn.execute(
        f"SELECT {_tables.ARTIFACT_COLUMNS} FROM artifacts WHERE name = ? ORDER BY version",
        (name,),
    )
    return [artifact_view(row) for row in rows]


def get_artifact_version(
    conn: sqlite3.Connection, name: str, version: int | None = None
) -> ArtifactView | None:
    """Version ``version`` of the artifact ``name`` (the latest when None), or None."""
    sql = f"SELECT {_tables.ARTIFACT_COLUMNS} FROM artifacts WHERE name = ?"
    if version is None:
        row = conn.execute(sql + " ORDER BY version DESC LIMIT 1", (name,)).fetchone()
    else:
        row = conn.execute(sql + " AND version = ?", (name, version)).fetchone()
    return None if row is None else artifact_view(row)


def checkpoint(conn: sqlite3.Connection) -> int:
    """The seq the persisted projection has folded up to (0 before it is installed)."""
    try:
        row = conn.execute(
            "SELECT seq FROM projection_checkpoints WHERE name = ?", (_tables.CHECKPOINT,)
        ).fetchone()
    except sqlite3.OperationalError:
        return 0  # no projection tables yet
    return 0 if row is None else int(row[0])


class CacheEntry(msgspec.Struct, frozen=True, gc=False):
    """A step run whose outputs can serve a cache hit."""

    cache_key: str
    run_id: str
    step_id: str
    step_name: str
    created_at: float
    outputs: dict[str, ArtifactRef]


def cache_entries(conn: sqlite3.Connection, step_names: Iterable[str]) -> dict[str, CacheEntry]:
    """The newest cache entry per key among the steps named ``step_names``."""
    names = sorted(set(step_names))
    found: dict[str, CacheEntry] = {}
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT cache_key, run_id, step_id, step_name, created_at, outputs FROM cache_entries"
            f" WHERE step_name IN ({marks}) ORDER BY created_at",
            chunk,
        ).fetchall()
        for key, run_id, step_id, step_name, created_at, blob in rows:
            found[key] = CacheEntry(
                key, run_id, step_id, step_name, created_at, decode_outputs(blob)
            )
    return found


def cache_entries_of_pipeline(conn: sqlite3.Connection, pipeline: str) -> dict[str, CacheEntry]:
    """The newest cache entry per key among the step runs of ``pipeline``'s runs (a dynamic
    pipeline's steps are not known before its body runs)."""
    rows = conn.execute(
        "SELECT c.cache_key, c.run_id, c.step_id, c.step_name, c.created_at, c.outputs"
        " FROM cache_entries c JOIN runs r ON r.id = c.run_id WHERE r.pipeline = ?"
        " ORDER BY c.created_at",
        (pipeline,),
    ).fetchall()
    found: dict[str, CacheEntry] = {}
    for key, run_id, step_id, step_name, created_at, blob in rows:
        found[key] = CacheEntry(key, run_id, step_id, step_name, created_at, decode_outputs(blob))
    return found
