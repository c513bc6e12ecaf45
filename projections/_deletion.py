"""Folding ``runs.deleted``: deleted runs leave the read models (``docs/adr/0004-retention.md``).

The log keeps every event of a deleted run (it is append-only and hash-chained); what changes
is what the log *means*: from the ``runs.deleted`` event on, the run has no ``runs`` row, no
``step_runs`` rows and no ``cache_entries`` rows, and the artifact versions the event lists have
no ``artifacts`` row. Events of a deleted run committed after its deletion (there should be
none: only finished runs are deleted) change nothing, because a run without a row is only
brought back by its ``run.created``.

The rows removed are a function of the event and the rows folded before it, so the
incremental projection and :func:`projections.rebuild` agree: both write out the rows folded
so far (:meth:`Pass.flush`) before deleting, in the same seq order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from events import RunsDeleted

from ._cache import Cache

_CHUNK = 500  # ids per ``IN (...)`` statement, well under SQLite's variable limit

_DELETES = (
    "DELETE FROM runs WHERE id IN ({marks})",
    "DELETE FROM step_runs WHERE run_id IN ({marks})",
    "DELETE FROM cache_entries WHERE run_id IN ({marks})",
)


def _chunks(ids: Sequence[str]) -> list[list[str]]:
    unique = list(dict.fromkeys(ids))
    return [unique[i : i + _CHUNK] for i in range(0, len(unique), _CHUNK)]


def delete_rows(conn: sqlite3.Connection, event: RunsDeleted) -> None:
    """Remove the event's runs (with their step runs and cache entries) and its artifact rows.

    Runs inside the caller's write transaction; never commits. Ids without rows are ignored
    (a run deleted twice, an artifact already gone).
    """
    for chunk in _chunks(event.run_ids):
        marks = ",".join("?" * len(chunk))
        for statement in _DELETES:
            conn.execute(statement.format(marks=marks), chunk)
    for chunk in _chunks(event.artifacts):
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM artifacts WHERE id IN ({marks})", chunk)


def forget(cache: Cache, event: RunsDeleted) -> None:
    """Drop what the projector's cache holds of the deleted runs.

    Artifact versions are forgotten entirely: the next version of a name is then read back from
    the table (``MAX(version) + 1``), in the incremental fold and in a rebuild alike. When the
    newest version of a name was deleted, its number is given again (as ZenML numbers the next
    version from the versions that exist).
    """
    gone = set(event.run_ids)
    for run_id in gone:
        cache.runs.pop(run_id, None)
        creation = cache.creations.pop(run_id, None)
        if creation is not None:
            cache.specs -= len(creation.specs)
    for key in [key for key in cache.steps if key[0] in gone]:
        del cache.steps[key]
    for key in [key for key in cache.declared if key[0] in gone]:
        del cache.declared[key]
    cache.versions.clear()
