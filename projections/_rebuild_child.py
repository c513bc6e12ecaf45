"""A rebuild spread over three processes: one reads the log, one folds it, this one writes.

A rebuild in one process is bound by one processor: reading the log, decoding it, folding it
and encoding rows take about three quarters of it, SQLite writing them the rest.
:func:`fold_in_child` starts two children, ``python -m projections._rebuild_child read DB``,
whose stdout feeds ``... fold DB CACHE_SIZE FLUSH REFOLD_LIMIT``, and writes the rows the
folder sends, inside the parent's transaction. The folder runs a
:class:`~._detached.DetachedPass` (it never reads the projection's tables, only the log, through
its own read-only connection), so its rows, and the order they come in, are the ones a fold in
the parent would write: the same pass code makes them.

Every stream between them is :data:`MAGIC`, then frames: a 4-byte big-endian length, then
msgpack. The reader
sends pages of event rows (``[seq, stream, version, type, recorded_at, payload]``), then their
count. The folder sends ``[0, write_index, rows]`` (rows for ``_tables.WRITES[write_index]``),
``[1, seq]`` (the checkpoint) and, last, ``[2, folded]``. A stream that ends before its last
frame, or a child that exits non-zero, is a failure: the parent then undoes what it wrote and
folds by itself (see ``_projector.rebuild``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from events import Recorded

from . import _tables
from ._cache import Cache
from ._detached import DetachedError, DetachedPass
from ._pass import Sink

_LENGTH = struct.Struct(">I")
MAGIC = b"evenflow rebuild stream 1\n"
"""What every stream between the processes starts with."""
_MAX_FRAME = 1 << 30
_WRITE, _CHECKPOINT, _END = 0, 1, 2
_PAGE = 1000  # events per frame from the reader
# What the parent tells the folder (on its command line): the size of its cache of views (as
# ``Projector``'s default), how many changed views it holds before sending their rows, and how
# many events its refolds of evicted views may replay before it gives up (see
# ``DetachedPass``; None: as many as the log holds, so the fold costs at most about twice
# a fold of the log).
CACHE_SIZE = 32_768
FLUSH = 20_000
REFOLD_LIMIT: int | None = None


class ChildFailed(Exception):
    """The child could not fold the log (it said why on its stderr, quoted here)."""


class _FrameSink(Sink):
    def __init__(self, conn: sqlite3.Connection, out: IO[bytes]) -> None:
        super().__init__(conn)
        self.out = out
        self.encoder = msgspec.msgpack.Encoder()
        self.index = {write: i for i, write in enumerate(_tables.WRITES)}

    def send(self, frame: Any) -> None:
        _send(self.out, self.encoder.encode(frame))

    def write(self, write: _tables.Write, rows: list[Any]) -> None:
        self.send((_WRITE, self.index[write], rows))

    def checkpoint(self, seq: int) -> None:
        self.send((_CHECKPOINT, seq))


def _frames(stream: IO[bytes]) -> Iterator[bytes]:
    """The bodies of the frames on ``stream``, after its :data:`MAGIC`; raises
    :class:`EOFError` if the stream does not start with it, holds a frame longer than
    :data:`_MAX_FRAME`, or ends inside a frame."""
    if stream.read(len(MAGIC)) != MAGIC:  # e.g. a sitecustomize that printed at startup
        raise EOFError("the stream does not start as a rebuild stream")
    while head := stream.read(_LENGTH.size):
        if len(head) < _LENGTH.size:
            raise EOFError("the stream ends inside a frame's length")
        (size,) = _LENGTH.unpack(head)
        if size > _MAX_FRAME:
            raise EOFError(f"a frame of {size} bytes: not a rebuild stream")
        body = stream.read(size)
        if len(body) < size:
            raise EOFError("the stream ends inside a frame")
        yield body


def _connect(path: str) -> sqlite3.Connection:
    """A read-only connection to the database at ``path`` (any characters in it)."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    return sqlite3.connect(uri, uri=True, isolation_level=None)


def _send(out: IO[bytes], body: bytes) -> None:
    out.write(_LENGTH.pack(len(body)) + body)


def _read(path: str, out: IO[bytes]) -> None:
    """The reader: every event row, a page per frame, then a frame of their count."""
    conn = _connect(path)
    try:
        encoder = msgspec.msgpack.Encoder()
        cursor = conn.execute(f"SELECT {_tables.EVENT_COLUMNS} FROM events ORDER BY seq")
        out.write(MAGIC)
        count = 0
        while rows := cursor.fetchmany(_PAGE):
            _send(out, encoder.encode(rows))
            count += len(rows)
        _send(out, encoder.encode(count))
        out.flush()
    finally:
        conn.close()


_Row = tuple[int, str, int, str, float, bytes]


def _pages(source: IO[bytes]) -> Iterator[list[Recorded]]:
    """The reader's pages of events, decoded; raises :class:`EOFError` unless ``source`` ends
    with the reader's count of them, and it is the count received."""
    decoder: msgspec.msgpack.Decoder[list[_Row] | int] = msgspec.msgpack.Decoder(list[_Row] | int)
    received = 0
    for body in _frames(source):
        rows = decoder.decode(body)
        if isinstance(rows, int):
            if rows != received:
                raise EOFError(f"the reader sent {received} events, and counted {rows}")
            return
        yield _tables.records(rows)
        received += len(rows)
    raise EOFError("the reader's stream ended before its count")


def _fold(
    path: str, cache_size: int, flush: int, refold_limit: int, source: IO[bytes], out: IO[bytes]
) -> None:
    """The folder: fold the reader's pages from ``source``, frames of rows to ``out``."""
    conn = _connect(path)
    try:
        conn.execute("BEGIN")  # specs and refolds read one snapshot, the reader's
        conn.execute("SELECT 1 FROM events LIMIT 1").fetchall()
        sink = _FrameSink(conn, out)
        out.write(MAGIC)
        p = DetachedPass(conn, Cache(cache_size), sink, refold_limit=refold_limit)
        for page in _pages(source):
            p.fold_all(page)
            if p.pending >= flush:
                p.flush()
        p.flush()
        sink.send((_END, p.folded))
        out.flush()
    finally:
        conn.close()


def main() -> int:
    """``read PATH`` or ``fold PATH CACHE_SIZE FLUSH REFOLD_LIMIT``: see the module doc."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the frames' stream
    import gc

    gc.disable()  # as bulk_load: nothing a fold builds is a cycle
    try:
        if sys.argv[1] == "read":
            _read(sys.argv[2], out)
        else:
            path, cache_size, flush, refold_limit = sys.argv[2:]
            _fold(path, int(cache_size), int(flush), int(refold_limit), sys.stdin.buffer, out)
    except DetachedError as exc:
        print(f"cannot fold detached: {exc}", file=sys.stderr)
        return 3
    except BrokenPipeError:
        return 4  # the next process stopped reading (it failed, or was interrupted)
    # Everything is sent and flushed: skip freeing the fold's millions of objects one by one.
    os._exit(0)


def fold_in_child(conn: sqlite3.Connection, path: str, log_size: int) -> int:
    """Write, on ``conn`` (in its transaction), the rows a folder process sends as it folds
    ``path``'s events, which a reader process sends it; return how many events it folded.
    ``log_size`` (the newest seq) sets the folder's refold budget unless :data:`REFOLD_LIMIT` does.

    Raises :class:`ChildFailed` if either fails or cannot start (the rows written so far are
    then the caller's to undo).
    """
    root = str(Path(__file__).resolve().parent.parent)  # where ``projections`` and ``events`` are
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    if not sys.executable:
        raise ChildFailed("no Python executable to start")
    # -P: not the working directory first on sys.path, where a package of the user's could
    # shadow ``events`` or ``projections``.
    command = [sys.executable, "-P", "-m", "projections._rebuild_child"]
    limit = max(1000, log_size) if REFOLD_LIMIT is None else REFOLD_LIMIT
    fold = ["fold", path, *map(str, (CACHE_SIZE, FLUSH, limit))]
    with tempfile.TemporaryFile() as errors, contextlib.ExitStack() as running:
        procs: list[subprocess.Popen[bytes]] = []

        def start(args: list[str], stdin: Any) -> subprocess.Popen[bytes]:
            try:
                proc = subprocess.Popen(
                    command + args, stdin=stdin, stdout=subprocess.PIPE, stderr=errors, env=env
                )
            except OSError as exc:
                raise ChildFailed(f"cannot start: {exc}") from exc
            procs.append(proc)
            return proc

        @running.callback
        def _stop() -> None:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                if proc.stdout is not None:
                    proc.stdout.close()
                proc.wait()

        reader = start(["read", path], subprocess.DEVNULL)
        folder = start(fold, reader.stdout)
        assert reader.stdout is not None
        assert folder.stdout is not None
        reader.stdout.close()  # the folder's now: it sees the end when the reader exits
        folded = _receive(conn, folder.stdout)
        codes = [proc.wait() for proc in procs]
        if codes != [0, 0] or folded is None:
            errors.seek(0)
            said = errors.read()[-2000:].decode("utf-8", "replace").strip()
            raise ChildFailed(f"exit status {codes}: {said or 'no output'}")
    return folded


def _receive(conn: sqlite3.Connection, stream: IO[bytes]) -> int | None:
    """Write what the frames on ``stream`` say; the count of the end frame, or None if the
    stream ended before it or is not what the folder writes (a frame that does not decode or
    does not fit, rows the tables refuse)."""
    decoder = msgspec.msgpack.Decoder()
    writes = _tables.WRITES
    try:
        for body in _frames(stream):
            frame = decoder.decode(body)
            kind = frame[0]
            if kind == _WRITE:
                _tables.write_many(conn, writes[frame[1]], frame[2])
            elif kind == _CHECKPOINT:
                conn.execute(_tables.SET_CHECKPOINT, (_tables.CHECKPOINT, frame[1]))
            elif kind == _END:
                return int(frame[1])
            else:
                return None
    except (
        EOFError,
        msgspec.DecodeError,
        LookupError,
        TypeError,
        ValueError,
        sqlite3.IntegrityError,
        sqlite3.InterfaceError,
        sqlite3.ProgrammingError,
    ):
        return None
    return None


if __name__ == "__main__":
    sys.exit(main())
