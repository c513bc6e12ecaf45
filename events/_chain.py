"""The hash chain that makes the log tamper-evident.

Each row's hash is ``blake2b(previous row's hash || version || recorded_at || stream || type ||
payload)``, with length prefixes so no two different rows hash the same bytes. The first row chains
from :data:`GENESIS`. An edited, inserted, deleted or reordered row breaks the chain at that row.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from typing import NamedTuple

GENESIS = bytes(32)
_HEAD = struct.Struct("<qdI")
_LEN = struct.Struct("<I")


def row_hash(
    prev: bytes, stream: str, version: int, type_: str, recorded_at: float, payload: bytes
) -> bytes:
    """The chain hash of one row given the previous row's hash; ``b""`` (which matches no stored
    hash) for a row whose columns do not have the types the store writes: SQLite keeps what an
    edit by hand stores (``UPDATE events SET payload = 'forged'`` stores text)."""
    try:
        s = stream.encode()
        t = _TYPE_BYTES.get(type_) or _type_bytes(type_)
        return hashlib.blake2b(
            b"".join((prev, _HEAD.pack(version, recorded_at, len(s)), s, t, payload)),
            digest_size=32,
        ).digest()
    except (TypeError, AttributeError, struct.error):
        return b""


_TYPE_BYTES: dict[str, bytes] = {}  # type -> its length prefix and UTF-8 (a few dozen types)


def _type_bytes(type_: str) -> bytes:
    """What a row's type contributes to its hash: its length, then its UTF-8 (kept for reuse)."""
    encoded = type_.encode()
    t = _LEN.pack(len(encoded)) + encoded
    if len(_TYPE_BYTES) < 4096:
        _TYPE_BYTES[type_] = t
    return t


def chain_stream_rows(
    prev: bytes,
    seq: int,
    stream: str,
    version: int,
    recorded_at: float,
    items: Iterable[tuple[object, bytes, str]],
    rows: list[tuple[int, str, int, str, float, bytes, bytes]],
) -> tuple[bytes, int, int]:
    """Append to ``rows`` one row per ``(event, payload, type)`` of ``items``, all of
    ``stream`` and recorded at ``recorded_at``, with the next seqs, versions and chain hashes
    after ``prev``, ``seq`` and ``version``. Returns the last hash, seq and version.

    Each hash is :func:`row_hash`'s (a test holds them equal); what is the same for every row
    of the stream is computed once, as this is the append path's per-event cost.
    """
    s = stream.encode()
    size = len(s)
    pack = _HEAD.pack
    blake2b = hashlib.blake2b
    join = b"".join
    type_bytes = _TYPE_BYTES.get
    append = rows.append
    for _, payload, type_ in items:
        version += 1
        seq += 1
        t = type_bytes(type_) or _type_bytes(type_)
        prev = blake2b(
            join((prev, pack(version, recorded_at, size), s, t, payload)), digest_size=32
        ).digest()
        append((seq, stream, version, type_, recorded_at, payload, prev))
    return prev, seq, version


class ChainRow(NamedTuple):
    seq: int
    stream: str
    version: int
    type: str
    recorded_at: float
    payload: bytes
    hash: bytes


class ChainProblem(NamedTuple):
    """The first place a chain is broken: the row's ``seq`` and what is wrong with it."""

    seq: int
    problem: str


def verify_rows(
    rows: Iterable[ChainRow], prev: bytes = GENESIS, prev_seq: int | None = 0
) -> tuple[ChainProblem | None, int, bytes]:
    """Walk rows in seq order; return the first problem (or None), rows checked, last hash.

    ``prev_seq`` is the seq before the first row (0 for the start of the log); pass ``None`` when
    checking an excerpt whose seqs need not be consecutive (a single run's export).
    """
    count = 0
    for row in rows:
        count += 1
        if prev_seq is not None and row.seq != prev_seq + 1:
            if row.seq <= prev_seq:
                return ChainProblem(row.seq, f"row out of order after seq {prev_seq}"), count, prev
            return (
                ChainProblem(row.seq, f"rows missing: seq {prev_seq + 1} to {row.seq - 1}"),
                count,
                prev,
            )
        expected = row_hash(prev, row.stream, row.version, row.type, row.recorded_at, row.payload)
        if expected != row.hash:
            problem = (
                "row edited, inserted or reordered: its hash does not match its content and "
                "the previous row's hash"
            )
            return ChainProblem(row.seq, problem), count, prev
        prev = row.hash
        if prev_seq is not None:
            prev_seq = row.seq
    return None, count, prev
