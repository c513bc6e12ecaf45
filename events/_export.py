"""Exports of one stream (a run) as JSON lines, checkable on their own.

The chain interleaves runs, so a run's rows do not chain from each other: each exported line
carries its row's hash *and* the hash of the row before it in the log (``prev_hash``). A reader
holding only the export can then recompute every row's hash, and see edits, deletions (version
gaps), insertions and reorderings, without the database.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import msgspec

from . import _codec
from ._audit import WITH_PREV, AuditProblem, AuditReport, connect_database, row_problem
from ._chain import GENESIS, ChainRow
from ._errors import StoreCorruptedError, StoreError
from ._types import tag_of


def export_stream(path: str | Path, stream: str, out: TextIO) -> int:
    """Write ``stream``'s rows to ``out`` as JSON lines; return how many.

    Each line holds the envelope (``seq``, ``stream``, ``version``, ``type``, ``recorded_at``),
    ``event`` (the payload's fields, readable), ``payload`` (the stored bytes, base64: what the
    hash covers), ``hash`` and ``prev_hash`` (hex; the hash of the row at ``seq - 1``).
    """
    conn = connect_database(path)
    count = 0
    try:
        conn.execute("BEGIN")
        for seq, name, version, type_, at, payload, hash_, before in conn.execute(
            WITH_PREV, (stream,)
        ):
            prev = GENESIS if seq == 1 else before
            line = {
                "seq": seq,
                "stream": name,
                "version": version,
                "type": type_,
                "recorded_at": at,
                "event": _readable(payload),
                "payload": base64.b64encode(payload).decode(),
                "hash": bytes(hash_).hex(),
                "prev_hash": None if prev is None else bytes(prev).hex(),
            }
            out.write(json.dumps(line) + "\n")
            count += 1
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot export from {path}: {exc}") from exc
    finally:
        conn.close()
    return count


def _readable(payload: bytes) -> Any:
    data = msgspec.to_builtins(_codec.decode(payload), str_keys=True)
    if isinstance(data, dict):
        data.pop("type", None)
    return data


def audit_export(path: str | Path) -> AuditReport:
    """Check an export written by :func:`export_stream` on its own, line by line (streaming).

    Raises:
        StoreError: the file cannot be read.
    """
    try:
        with Path(path).open(encoding="utf-8") as lines:
            return _audit_lines(lines)
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def _audit_lines(lines: Iterable[str]) -> AuditReport:
    checked, last_seq, last_hash, stream = 0, 0, GENESIS, None
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        parsed = _parse(text)
        if isinstance(parsed, str):
            bad = AuditProblem(None, "malformed", parsed, number)
            return AuditReport(checked, last_seq, last_hash, (bad,))
        row, prev, event = parsed
        stream = row.stream if stream is None else stream
        wrong = _line_problem(row, prev, event, stream, checked, last_seq, last_hash)
        if wrong is not None:
            found = AuditProblem(row.seq, wrong[0], wrong[1], number)
            return AuditReport(checked, last_seq, last_hash, (found,))
        checked, last_seq, last_hash = checked + 1, row.seq, row.hash
    if checked == 0:
        empty = AuditProblem(None, "malformed", "the export holds no events")
        return AuditReport(0, 0, GENESIS, (empty,))
    return AuditReport(checked, last_seq, last_hash, ())


def _parse(text: str) -> tuple[ChainRow, bytes | None, Any] | str:
    """A line's row, previous-row hash and readable event, or what is wrong with the line."""
    try:
        obj = json.loads(text)
        row = ChainRow(
            _int(obj["seq"]),
            _str(obj["stream"]),
            _int(obj["version"]),
            _str(obj["type"]),
            float(obj["recorded_at"]),
            base64.b64decode(_str(obj["payload"]), validate=True),
            bytes.fromhex(_str(obj["hash"])),
        )
        prev = None if obj["prev_hash"] is None else bytes.fromhex(_str(obj["prev_hash"]))
        return row, prev, obj["event"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        return (
            "not an export line (a JSON object with seq, stream, version, type, recorded_at, "
            "event, payload, hash, prev_hash)"
        )


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(value)
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _line_problem(
    row: ChainRow,
    prev: bytes | None,
    event: Any,
    stream: str,
    checked: int,
    last_seq: int,
    last_hash: bytes,
) -> tuple[str, str] | None:
    if row.stream != stream:
        return "inserted", f"row inserted: it belongs to stream {row.stream!r}, not {stream!r}"
    if checked and row.seq <= last_seq:
        return "reordered", f"rows reordered: seq {row.seq} comes after seq {last_seq}"
    stored = row_problem(row, prev, checked + 1)
    if stored is not None:
        if stored.kind == "missing" and prev is None:
            return "missing", "the row before it was already missing from the exported log"
        return stored.kind, stored.message.replace(f"seq {row.seq - 1}'s hash", "its prev_hash")
    if checked and row.seq == last_seq + 1 and prev != last_hash:
        return "edited", f"row edited: its prev_hash is not the hash of seq {last_seq}"
    try:
        decoded = _codec.decode(row.payload)
    except StoreCorruptedError as exc:
        return "edited", f"row edited: its payload does not decode ({exc})"
    if tag_of(decoded) != row.type:
        return "edited", f"row edited: its type {row.type!r} is not the payload's"
    if _canonical(_readable(row.payload)) != _canonical(event):
        return "edited", "row edited: its readable 'event' fields do not match the hashed payload"
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
