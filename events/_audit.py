"""Auditing the log: the hash chain and the append-only triggers of a database file.

:func:`audit_database` walks the chain in one read transaction (one snapshot), streaming rows
through :func:`~events.verify_rows`, and stops at the first broken row, which it then tries to
explain (edited, inserted, reordered) by looking at the rows just after it. It also checks that
both triggers exist as created, and that no newest rows were cut off: ``AUTOINCREMENT`` keeps the
highest seq ever assigned in ``sqlite_sequence``, which a deletion does not lower.

Exports of one run, and their audit, are in ``_export.py``.

What a hash chain cannot show: someone able to write the file can append rows with correct
hashes, or rewrite a whole suffix of the log consistently. The audit proves the log was not
changed by anything short of that.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from . import _schema
from ._chain import GENESIS, ChainRow, row_hash, verify_rows
from ._errors import StoreError

_COLUMNS = "seq, stream, version, type, recorded_at, payload, hash"
_WINDOW = 64  # rows looked at after a broken one, to tell an edit from an insertion or a swap
WITH_PREV = (
    "SELECT e.seq, e.stream, e.version, e.type, e.recorded_at, e.payload, e.hash, p.hash"
    " FROM events AS e LEFT JOIN events AS p ON p.seq = e.seq - 1"
    " WHERE e.stream = ? ORDER BY e.seq"
)


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One thing wrong: where (``seq``; ``line`` of an export) and what (``kind``, ``message``).

    ``kind`` is one of ``"edited"``, ``"missing"``, ``"inserted"``, ``"reordered"``,
    ``"truncated"``, ``"trigger"`` or ``"malformed"``.
    """

    seq: int | None
    kind: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.seq is not None:
            where.append(f"seq {self.seq}" if not where else f"(seq {self.seq})")
        return f"{' '.join(where)}: {self.message}" if where else self.message


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The outcome of an audit: rows checked, the last good row, and the problems found."""

    checked: int
    head_seq: int
    head_hash: bytes
    problems: tuple[AuditProblem, ...]

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def connect_database(path: str | Path, *, write: bool = False) -> sqlite3.Connection:
    """A plain ``sqlite3`` connection (autocommit) to an existing evenflow database, for tools.

    The file is inspected read-only first; the connection is read-only unless ``write``.

    Raises:
        StoreError: the file is missing or empty, or not an evenflow database of a known schema.
    """
    path = Path(path)
    if _schema.inspect(path):
        raise StoreError(f"no evenflow database at {path}")
    mode = "rw" if write else "ro"
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode={mode}", uri=True, isolation_level=None
        )
        conn.execute("PRAGMA busy_timeout = 60000").fetchall()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    return conn


# -- the database ----------------------------------------------------------------------------


def audit_database(path: str | Path, *, stream: str | None = None) -> AuditReport:
    """Verify the database's hash chain, its triggers and its newest rows.

    Args:
        path: the database file.
        stream: check only this stream's rows (a run), each against the stored hash of the row
            before it, and its versions for gaps; the whole chain is not walked.

    Raises:
        StoreError: the file cannot be opened or read.
    """
    conn = connect_database(path)
    try:
        conn.execute("BEGIN")  # one snapshot: rows appended meanwhile are not half-seen
        if stream is None:
            chain, checked, head_seq, head_hash = _walk(conn)
        else:
            chain, checked, head_seq, head_hash = _walk_stream(conn, stream)
        problems = [*chain, *_truncation(conn), *_triggers(conn)]
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot audit {path}: {exc}") from exc
    finally:
        conn.close()
    return AuditReport(checked, head_seq, head_hash, tuple(problems))


def _walk(conn: sqlite3.Connection) -> tuple[list[AuditProblem], int, int, bytes]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq")
    problem, checked, prev = verify_rows(map(ChainRow._make, rows))
    if problem is None:
        return [], checked, checked, prev  # seqs are dense from 1: the head is seq ``checked``
    if problem.problem.startswith("rows missing"):
        # Rows 1 .. checked - 1 were good, so seq ``checked`` is the first one missing.
        last = problem.seq - 1
        gone = f"seq {checked} is" if last == checked else f"seq {checked} to {last} are"
        found = AuditProblem(checked, "missing", f"rows deleted: {gone} missing")
    else:
        window = conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE seq >= ? ORDER BY seq LIMIT ?",
            (problem.seq, _WINDOW),
        ).fetchall()
        kind, message = _explain(prev, [ChainRow._make(r) for r in window])
        found = AuditProblem(problem.seq, kind, message)
    return [found], checked - 1, checked - 1, prev  # rows 1 .. checked - 1 were good


def _chains(row: ChainRow, prev: bytes) -> bool:
    return row_hash(prev, row.stream, row.version, row.type, row.recorded_at, row.payload) == (
        row.hash
    )


def _explain(prev: bytes, window: list[ChainRow]) -> tuple[str, str]:
    """Why ``window[0]`` does not chain from ``prev``, judging by the rows after it."""
    bad = window[0]
    after = window[1] if len(window) > 1 else None
    if after is not None and _chains(after, bad.hash):
        return "edited", (
            "row edited: its content no longer matches its hash (or the row before it was "
            "rewritten with a recomputed hash)"
        )
    for row in window[1:]:
        if not _chains(row, prev):
            continue
        if row is not after:
            return "reordered", f"rows reordered: the row at seq {row.seq} belongs at seq {bad.seq}"
        if _chains(bad, row.hash):
            return "reordered", f"rows reordered: seq {bad.seq} and seq {row.seq} are swapped"
        return "inserted", (
            f"row inserted: seq {row.seq} chains from seq {bad.seq - 1}, so this row does not "
            "belong in the log"
        )
    if after is None:
        return "edited", (
            "the newest row was edited or added by hand: its hash does not match its content "
            "and the previous row's hash"
        )
    return "edited", (
        "row edited, inserted or reordered: its hash does not match its content and the "
        "previous row's hash"
    )


def _walk_stream(
    conn: sqlite3.Connection, stream: str
) -> tuple[list[AuditProblem], int, int, bytes]:
    checked, head_seq, head_hash = 0, 0, GENESIS
    for *columns, before in conn.execute(WITH_PREV, (stream,)):
        row = ChainRow._make(columns)
        prev = GENESIS if row.seq == 1 else before
        problem = row_problem(row, prev, checked + 1)
        if problem is not None:
            return [problem], checked, head_seq, head_hash
        checked, head_seq, head_hash = checked + 1, row.seq, row.hash
    if checked:
        # The run's last event may have been deleted: then the row after the last one left
        # is gone too (a gap), or chains from an event this walk never saw.
        after = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE seq = ?", (head_seq + 1,))
        found = after.fetchone()
        if found is None:
            (top,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
            if top > head_seq:
                gone = f"rows deleted: seq {head_seq + 1}, after this stream's last, is missing"
                return [AuditProblem(head_seq + 1, "missing", gone)], checked, head_seq, head_hash
        elif not _chains(ChainRow._make(found), head_hash):
            why = (
                f"seq {head_seq + 1} does not chain from this stream's last event: rows after it "
                "were deleted, or that row was edited"
            )
            return [AuditProblem(head_seq + 1, "missing", why)], checked, head_seq, head_hash
    return [], checked, head_seq, head_hash


def row_problem(row: ChainRow, prev: bytes | None, version: int) -> AuditProblem | None:
    """What is wrong with one row of a stream, given the hash of the row before it and the
    version the row should have."""
    if row.version > version:
        last = row.version - 1
        gone = f"version {version} is" if last == version else f"versions {version} to {last} are"
        return AuditProblem(row.seq, "missing", f"rows deleted: {gone} missing")
    if row.version < version:
        return AuditProblem(
            row.seq,
            "reordered",
            f"rows reordered or inserted: version {row.version} comes after version {version - 1}",
        )
    if prev is None:
        return AuditProblem(row.seq, "missing", f"rows deleted: seq {row.seq - 1} is missing")
    if not _chains(row, prev):
        return AuditProblem(
            row.seq,
            "edited",
            f"row edited: its hash does not match its content and seq {row.seq - 1}'s hash",
        )
    return None


def _truncation(conn: sqlite3.Connection) -> list[AuditProblem]:
    """The newest rows were deleted if ``sqlite_sequence`` remembers a higher seq."""
    head = int(conn.execute("SELECT MAX(seq) FROM events").fetchall()[0][0] or 0)
    found = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchall()
    if not found:
        if head == 0:
            return []
        return [AuditProblem(None, "truncated", "sqlite_sequence has no row for events: edited")]
    assigned = int(found[0][0])
    if assigned > head:
        return [
            AuditProblem(
                head + 1,
                "truncated",
                f"log truncated: the newest rows were deleted (seq {head + 1} to {assigned} "
                f"were written; the log ends at seq {head})",
            )
        ]
    if assigned < head:
        return [
            AuditProblem(
                None, "truncated", f"sqlite_sequence ({assigned}) is behind seq {head}: edited"
            )
        ]
    return []


def _normal(sql: str) -> str:
    return " ".join(sql.replace("IF NOT EXISTS ", "").split()).rstrip(";").lower()


def _triggers(conn: sqlite3.Connection) -> list[AuditProblem]:
    expected = {
        name: _normal(statement)
        for statement in _schema._statements(_schema.DDL)
        for name in _schema.TRIGGERS
        if f"TRIGGER IF NOT EXISTS {name} " in statement
    }
    found = dict(
        conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    )
    problems = []
    for name, sql in expected.items():
        if name not in found:
            what = "UPDATE" if "update" in name else "DELETE"
            problems.append(
                AuditProblem(None, "trigger", f"trigger {name} is missing: {what} is allowed")
            )
        elif _normal(found[name] or "") != sql:
            problems.append(AuditProblem(None, "trigger", f"trigger {name} was altered"))
    return problems
