"""Read-only queries a retention decision needs: old runs, and who holds which content.

The engine plans a deletion from these (``engine._retention``); the deletion itself is folded
by ``_deletion`` from the ``runs.deleted`` event the engine appends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from . import _tables
from ._queries import artifact_view
from ._specs import load_steps
from ._views import ArtifactView, RunView, decode_run

_CHUNK = 500  # ids per ``IN (...)`` query, well under SQLite's variable limit


def _chunks(ids: Sequence[str]) -> list[list[str]]:
    unique = list(dict.fromkeys(ids))
    return [unique[i : i + _CHUNK] for i in range(0, len(unique), _CHUNK)]


def runs_created_before(conn: sqlite3.Connection, cutoff: float) -> list[RunView]:
    """Every run created before ``cutoff`` (UTC epoch seconds), oldest first, live or not."""
    rows = conn.execute(
        "SELECT view FROM runs WHERE created_at < ? ORDER BY created_at, id", (cutoff,)
    )
    return [decode_run(blob) for (blob,) in rows]


def artifacts_of_runs(conn: sqlite3.Connection, run_ids: Sequence[str]) -> list[ArtifactView]:
    """The artifact versions the runs ``run_ids`` produced, then those their steps reuse from
    other runs through cache hits (each version once)."""
    found: dict[str, ArtifactView] = {}
    for chunk in _chunks(run_ids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {_tables.ARTIFACT_COLUMNS} FROM artifacts WHERE run_id IN ({marks})"
            " ORDER BY created_at, id",
            chunk,
        )
        found.update((view.id, view) for view in map(artifact_view, rows))
    reused: list[str] = []
    for run_id in dict.fromkeys(run_ids):
        run = _tables.load_run(conn, run_id)
        if run is None:
            continue
        for step in load_steps(conn, run).values():
            reused.extend(ref.id for refs in step.outputs.values() for ref in refs)
    for chunk in _chunks([i for i in reused if i not in found]):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {_tables.ARTIFACT_COLUMNS} FROM artifacts WHERE id IN ({marks})", chunk
        )
        found.update((view.id, view) for view in map(artifact_view, rows))
    return list(found.values())


def artifacts_with_content(
    conn: sqlite3.Connection, content_hashes: Sequence[str]
) -> list[ArtifactView]:
    """Every artifact version whose content hash is one of ``content_hashes`` (content is
    shared: equal bytes of the same type are one file)."""
    found: list[ArtifactView] = []
    for chunk in _chunks(content_hashes):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {_tables.ARTIFACT_COLUMNS} FROM artifacts WHERE content_hash IN ({marks})",
            chunk,
        )
        found.extend(artifact_view(row) for row in rows)
    return found
