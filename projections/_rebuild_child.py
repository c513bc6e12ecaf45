"""A rebuild spread over two processes: a child folds the log, this process reads and writes.

A rebuild in one process is bound by one processor: reading the log, decoding it, folding it
and encoding rows take about three quarters of it, SQLite writing them the rest.
:func:`fold_in_child` starts ``python -m projections._rebuild_child fold DB CACHE_SIZE FLUSH
REFOLD_LIMIT`` and, in one thread (:func:`_pump`), feeds it the log's rows while it writes the
rows the folder sends back, inside its own transaction. Both pipes are non-blocking and the
folder reads ahead and writes behind on threads of its own (a thread blocked in a system call
does not hold the GIL), so neither process waits on a pipe while the other is busy. The folder
runs a :class:`~._detached.DetachedPass` (it never reads the projection's tables, only the
log, through its own read-only connection), so its rows, and the order they come in, are the
ones a fold in this process would write: the same pass code makes them.

Both streams are :data:`MAGIC`, then frames: a 4-byte big-endian length, then msgpack. This
process sends pages of event rows by column (``[seqs, streams, versions, types, recorded_ats,
payload_lengths, payloads]``, the payloads joined as ``events.join_payloads`` joins them, so
the folder decodes a page's events in one call without a bytes object per payload), then their
count. The folder sends ``[0, write_index, rows]`` (rows for
``_tables.WRITES[write_index]``), ``[1, seq]`` (the checkpoint) and, last, ``[2, folded]``. A
stream that ends before its last frame or is not what a folder writes, or a folder that exits
non-zero, is a failure: the folder is stopped, this process undoes what it wrote and folds by
itself (see ``_projector.rebuild``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import selectors
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from events import Recorded, decode_joined, join_payloads

from . import _memory, _tables
from ._cache import Cache
from ._detached import DetachedError, DetachedPass
from ._pass import Sink

_LENGTH = struct.Struct(">I")
MAGIC = b"evenflow rebuild stream 2\n"
"""What every stream between the processes starts with."""
_MAX_FRAME = 1 << 30
_WRITE, _CHECKPOINT, _END = 0, 1, 2
_PAGE = 1000  # events per frame to the folder
_F_SETPIPE_SZ = 1031  # fcntl: a pipe's capacity (Linux)
_PIPE_SIZE = 1 << 20
_HEAD = 64  # bytes of a garbled stream quoted in the error
_EXIT_WAIT_S = 60.0  # how long a folder that sent its end frame may take to exit
_READ_AHEAD = 64  # chunks of the log the folder reads ahead (each up to 1 MiB)
_WRITE_BEHIND = 8  # frames of rows the folder has yet to write (a flush makes about four)
# What the parent tells the folder (on its command line): the size of its cache of views
# (None: sized to the memory available, see _cache_size), how many changed views it holds
# before sending their rows, and how many events its refolds of evicted views may replay before
# it gives up (see ``DetachedPass``; None: as many as the log holds, so the fold costs at most
# about twice a fold of the log).
CACHE_SIZE: int | None = None
FLUSH = 20_000
REFOLD_LIMIT: int | None = None
_MIN_VIEWS = 32_768  # Projector's default cache
_MAX_VIEWS = 262_144  # about 500 MiB of views
_VIEW_BYTES = 2048  # what a cached view takes, about (measured: 1.85 KiB on W8's log)


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


class _Frames:
    """A rebuild stream read as its bytes arrive: :data:`MAGIC`, then frames (a 4-byte
    big-endian length, then the body). Both processes read their peer's stream with it."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._started = False
        self.head = b""  # the stream's first bytes, to quote when it is not a rebuild stream

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Take ``data``; yield the bodies of the frames it completes, in order (a caller may
        stop early: what it did not take is dropped with the stream's rest).

        Raises :class:`EOFError` if the stream does not start with :data:`MAGIC` (e.g. a
        sitecustomize printed first) or a frame is longer than :data:`_MAX_FRAME`.
        """
        if len(self.head) < _HEAD:
            self.head += data[: _HEAD - len(self.head)]
        buffer = self._buffer
        buffer += data
        if not self._started:
            if len(buffer) < len(MAGIC) and MAGIC.startswith(buffer):
                return
            if buffer[: len(MAGIC)] != MAGIC:
                raise EOFError("the stream does not start as a rebuild stream")
            del buffer[: len(MAGIC)]
            self._started = True
        at = 0
        try:
            while len(buffer) - at >= _LENGTH.size:
                (size,) = _LENGTH.unpack_from(buffer, at)
                if size > _MAX_FRAME:
                    raise EOFError(f"a frame of {size} bytes: not a rebuild stream")
                start = at + _LENGTH.size
                if len(buffer) - start < size:
                    break
                with memoryview(buffer) as view, view[start : start + size] as part:
                    body = bytes(part)
                at = start + size
                yield body
        finally:
            del buffer[:at]


def _frame(body: bytes) -> bytes:
    """``body`` as one frame of a rebuild stream."""
    return _LENGTH.pack(len(body)) + body


def _connect(path: str) -> sqlite3.Connection:
    """A read-only connection to the database at ``path`` (any characters in it)."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    return sqlite3.connect(uri, uri=True, isolation_level=None)


def _send(out: IO[bytes], body: bytes) -> None:
    out.write(_frame(body))


def _log_stream(conn: sqlite3.Connection, sent: _Sent) -> Iterator[bytes]:
    """The stream the folder reads: :data:`MAGIC`, every event row a page per frame, then a
    frame of their count (also left in ``sent.count``). Read as it is sent (one query, a page
    at a time)."""
    encoder = msgspec.msgpack.Encoder()
    cursor = conn.execute(f"SELECT {_tables.EVENT_COLUMNS} FROM events ORDER BY seq")
    yield MAGIC
    count = 0
    while rows := cursor.fetchmany(_PAGE):
        yield _frame(encoder.encode(_page(rows)))
        count += len(rows)
    sent.count = count
    yield _frame(encoder.encode(count))


def _page(rows: list[Any]) -> tuple[Any, ...]:
    """A page of event rows (:data:`_tables.EVENT_COLUMNS`) as the folder reads it: by column,
    the payloads' lengths, and the payloads joined."""
    seqs, streams, versions, types, ats, payloads = zip(*rows, strict=True)
    lengths = list(map(len, payloads))
    return (seqs, streams, versions, types, ats, lengths, join_payloads(payloads))


_Page = tuple[list[int], list[str], list[int], list[str], list[float], list[int], bytes]


def _pages(source: IO[bytes]) -> Iterator[list[Recorded]]:
    """The pages of events the parent sends, decoded; raises :class:`EOFError` unless
    ``source`` ends with the parent's count of them, and it is the count received."""
    decoder: msgspec.msgpack.Decoder[_Page | int] = msgspec.msgpack.Decoder(_Page | int)
    frames = _Frames()
    received = 0
    while chunk := source.read(_PIPE_SIZE):
        for body in frames.feed(chunk):
            page = decoder.decode(body)
            if isinstance(page, int):
                if page != received:
                    raise EOFError(f"the reader sent {received} events, and counted {page}")
                return
            seqs, streams, versions, types, ats, lengths, joined = page
            n = len(lengths)
            if not len(seqs) == len(streams) == len(versions) == len(types) == len(ats) == n:
                raise ValueError("a page of events whose columns differ in length")
            events = decode_joined(joined, lengths)
            yield list(map(Recorded, seqs, streams, versions, types, ats, events))
            received += n
    raise EOFError("the reader's stream ended before its count")


def _fold(
    path: str, cache_size: int, flush: int, refold_limit: int, source: IO[bytes], out: IO[bytes]
) -> DetachedPass:
    """The folder: fold the pages of events from ``source``, frames of rows to ``out``. Returns
    the pass, views and all, for the caller to exit without freeing them one by one."""
    conn = _connect(path)
    try:
        conn.execute("BEGIN")  # specs and refolds read one snapshot, the parent's
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
        return p
    finally:
        conn.close()


class _ReadAhead:
    """A file's bytes, read ahead by a thread in large chunks (up to :data:`_READ_AHEAD` of them
    waiting): the folder never waits on a parent busy writing rows. The thread holds the GIL
    only once per chunk, so it costs the fold next to nothing."""

    def __init__(self, fd: int) -> None:
        self._chunks: queue.Queue[bytes | BaseException] = queue.Queue(_READ_AHEAD)
        self._last: bytes | BaseException | None = None  # the end (b"") or the error, once met
        threading.Thread(target=self._run, args=(fd,), daemon=True).start()

    def _run(self, fd: int) -> None:
        try:
            while chunk := os.read(fd, _PIPE_SIZE):
                self._chunks.put(chunk)
            self._chunks.put(b"")
        except BaseException as exc:  # handed to the reading thread
            self._chunks.put(exc)

    def read(self, size: int) -> bytes:
        """The next chunk read (at most ``size`` bytes when ``size`` >= :data:`_PIPE_SIZE`, as
        the folder asks); b"" at the end of the file."""
        chunk = self._chunks.get() if self._last is None else self._last
        if isinstance(chunk, BaseException):
            self._last = chunk
            raise chunk
        if not chunk:
            self._last = chunk
        return chunk


class _WriteBehind:
    """Writes to a file from a thread (up to :data:`_WRITE_BEHIND` writes waiting): the folder
    never waits on a parent busy reading the log. :meth:`flush` waits for every write."""

    def __init__(self, fd: int) -> None:
        self._writes: queue.Queue[bytes | None] = queue.Queue(_WRITE_BEHIND)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fd,), daemon=True)
        self._thread.start()

    def _run(self, fd: int) -> None:
        while (data := self._writes.get()) is not None:
            if self._error is not None:
                continue  # failed: drain, so that no writer stays blocked on a full queue
            try:
                with memoryview(data) as view:
                    while view:
                        view = view[os.write(fd, view) :]
            except BaseException as exc:  # raised in the folding thread's next write
                self._error = exc

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._writes.put(data)

    def flush(self) -> None:
        """Wait until everything written so far is written out (raise what failed)."""
        self._writes.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def main() -> int:
    """``fold PATH CACHE_SIZE FLUSH REFOLD_LIMIT``: see the module doc."""
    out: Any = _WriteBehind(sys.stdout.buffer.fileno())
    sys.stdout = sys.stderr  # nothing else may write to the frames' stream
    import gc

    gc.disable()  # as bulk_load: nothing a fold builds is a cycle
    try:
        command, path, cache_size, flush, refold_limit = sys.argv[1:]
        if command != "fold":
            print(f"unknown command {command!r}", file=sys.stderr)
            return 2
        source: Any = _ReadAhead(sys.stdin.buffer.fileno())
        _views = _fold(path, int(cache_size), int(flush), int(refold_limit), source, out)
    except DetachedError as exc:
        print(f"cannot fold detached: {exc}", file=sys.stderr)
        return 3
    except BrokenPipeError:
        return 4  # the parent stopped reading (it failed, or was interrupted)
    # Everything is sent and flushed: skip freeing the fold's millions of objects one by one
    # (``_views`` holds them until then).
    os._exit(0)


def fold_in_child(conn: sqlite3.Connection, path: str, log_size: int) -> int:
    """Write, on ``conn`` (in its transaction), the rows a folder process sends as it folds
    ``path``'s events, which this process reads and sends it; return how many events it folded.
    ``log_size`` (the newest seq) sets the folder's refold budget unless :data:`REFOLD_LIMIT` does.

    Raises :class:`ChildFailed` if the folder fails or cannot start (the rows written so far are
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
    views = _cache_size() if CACHE_SIZE is None else CACHE_SIZE
    fold = ["fold", path, *map(str, (views, FLUSH, limit))]
    with tempfile.TemporaryFile() as errors:
        try:
            folder = subprocess.Popen(
                [*command, *fold],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
                # Not in the terminal's process group: a Ctrl-C the host handles must not kill
                # it (a parent that dies closes its pipes, which ends it).
                start_new_session=True,
            )
        except OSError as exc:
            raise ChildFailed(f"cannot start: {exc}") from exc
        done = False
        try:
            try:
                log = _connect(path)
            except sqlite3.Error as exc:
                raise ChildFailed(f"cannot read the log to send it: {exc}") from exc
            try:
                folded = _pump(conn, log, folder)
            finally:
                log.close()
            if folded is not None:
                # Every row is in, and checked against what was sent: the folder only has to
                # exit, and a process that freed none of its views takes a while to (0.3-0.5 s
                # for 1,000,000 events). It is reaped on a thread of its own, not on the way.
                done = True
                return folded
            try:
                code = folder.wait(timeout=_EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                raise ChildFailed(
                    f"the folder closed its output but did not exit within {_EXIT_WAIT_S:g} s"
                ) from None
        finally:
            for pipe in (folder.stdin, folder.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            if done:
                threading.Thread(
                    target=_reap, args=(folder,), name="evenflow-rebuild-reap", daemon=True
                ).start()
            else:
                if folder.poll() is None:
                    folder.kill()
                folder.wait()
        # The folder ended before its end frame: its status and its stderr say why.
        errors.seek(0)
        said = errors.read()[-2000:].decode("utf-8", "replace").strip()
        raise ChildFailed(f"{_status(code)}: {said or 'no output'}")


def _status(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        return (
            f"killed by {name} (out of memory?)" if -code == signal.SIGKILL else f"killed by {name}"
        )
    if code == 0:
        return "exited before sending its end frame"
    return f"exit status {code}"


def _reap(folder: subprocess.Popen[bytes]) -> None:
    """Wait for a folder that sent everything to exit (kill it if it does not, in time)."""
    try:
        folder.wait(timeout=_EXIT_WAIT_S)
    except subprocess.TimeoutExpired:
        folder.kill()
        folder.wait()


def _cache_size() -> int:
    """How many views the folder may keep: more than :class:`Projector` keeps when the machine
    has memory to spare, for one short-lived process. A view it evicts costs its deallocation,
    and a refold from the log if it is needed again; a rebuild of 1,000,000 events (about
    250,000 steps) took 14% less time keeping every view than keeping 32,768. An eighth of
    the memory available now, at most :data:`_MAX_VIEWS` views, at least :data:`_MIN_VIEWS`."""
    available = _memory.available_memory()
    if available is None:
        return _MIN_VIEWS
    return max(_MIN_VIEWS, min(_MAX_VIEWS, available // 8 // _VIEW_BYTES))


def _pump(
    conn: sqlite3.Connection, log: sqlite3.Connection, folder: subprocess.Popen[bytes]
) -> int | None:
    """Feed the folder the log (read on ``log``) while writing, on ``conn``, the rows it sends
    back: one thread, both pipes non-blocking, so this process never waits on one pipe while
    the folder waits on the other.

    Returns the folded count of the folder's end frame, or None if its stream ended before it
    (the folder exited: its status says why). Raises :class:`ChildFailed` if the stream is not
    what a folder writes (a frame that does not decode or fit, rows the tables refuse, an end
    before every event was sent or with another count), or reading the log failed.

    SIGPIPE is blocked in this thread meanwhile: a host that restored its default action (as
    command-line tools do) would otherwise die when the folder stops reading early.
    """
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
    try:
        return _exchange(conn, log, folder)
    finally:
        if signal.SIGPIPE not in blocked:
            # A SIGPIPE raised by a write to the folder's closed stdin is pending: take it.
            while signal.sigtimedwait({signal.SIGPIPE}, 0) is not None:
                pass
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _exchange(
    conn: sqlite3.Connection, log: sqlite3.Connection, folder: subprocess.Popen[bytes]
) -> int | None:
    assert folder.stdin is not None
    assert folder.stdout is not None
    feed, rows = folder.stdin.fileno(), folder.stdout.fileno()
    for fd in (feed, rows):
        os.set_blocking(fd, False)
        with contextlib.suppress(OSError, ImportError):  # Linux: fewer, larger writes
            import fcntl

            fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
    sent = _Sent(log)
    receiver = _Receiver(conn)
    pending = memoryview(b"")
    with selectors.DefaultSelector() as selector:
        selector.register(feed, selectors.EVENT_WRITE)
        selector.register(rows, selectors.EVENT_READ)
        feeding = True
        while True:
            for key, _ in selector.select():
                if key.fd == rows:
                    try:
                        data = os.read(rows, _PIPE_SIZE)
                    except BlockingIOError:
                        continue
                    if not data:
                        return None  # the folder closed its stdout before its end frame
                    try:
                        folded = receiver.feed(data)
                    except _GARBLED as exc:  # the caller stops the folder
                        raise ChildFailed(
                            f"the folder sent something else than rows ({exc}); it began "
                            f"{receiver.head!r}"
                        ) from exc
                    if folded is not None:
                        if feeding or folded != sent.count:
                            raise ChildFailed(
                                f"the folder ended after {folded} events, of {sent.count} "
                                + ("sent so far" if feeding else "sent")
                            )
                        return folded
                elif feeding:
                    if not pending:
                        chunk = sent.next()
                        if chunk is None:  # all sent: the folder sees the end of its stdin
                            selector.unregister(feed)
                            folder.stdin.close()
                            feeding = False
                            continue
                        pending = memoryview(chunk)
                    try:
                        pending = pending[os.write(feed, pending) :]
                    except BlockingIOError:
                        pass
                    except BrokenPipeError:  # the folder stopped reading: its status says why
                        selector.unregister(feed)
                        feeding = False


class _Sent:
    """The stream of the log for the folder (:func:`_log_stream`), and how many events it held
    once it is all sent."""

    def __init__(self, log: sqlite3.Connection) -> None:
        self._chunks = _log_stream(log, self)
        self.count = 0

    def next(self) -> bytes | None:
        """The next chunk to send, or None once all is sent."""
        try:
            return next(self._chunks, None)
        except sqlite3.Error as exc:  # e.g. the file went away: fold in the process instead
            raise ChildFailed(f"reading the log to send it failed: {exc}") from exc


class _Receiver:
    """Writes what the folder's frames say, fed its stream's bytes as they arrive."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.frames = _Frames()
        self.decoder = msgspec.msgpack.Decoder()
        self.folded: int | None = None

    @property
    def head(self) -> bytes:
        """The stream's first bytes, to quote when it is not a folder's."""
        return self.frames.head

    def feed(self, data: bytes) -> int | None:
        """Apply every whole frame received so far; the folded count once the end frame came
        (frames after it are not read).

        Raises one of :data:`_GARBLED` for a stream that is not a folder's: no :data:`MAGIC`,
        a frame too long, a frame that does not decode or does not fit, rows the tables refuse.
        """
        if self.folded is None:
            for body in self.frames.feed(data):
                self._apply(self.decoder.decode(body))
                if self.folded is not None:
                    break
        return self.folded

    def _apply(self, frame: Any) -> None:
        kind = frame[0]
        if kind == _WRITE:
            _tables.write_many(self.conn, _tables.WRITES[frame[1]], frame[2])
        elif kind == _CHECKPOINT:
            self.conn.execute(_tables.SET_CHECKPOINT, (_tables.CHECKPOINT, frame[1]))
        elif kind == _END:
            self.folded = int(frame[1])
        else:
            raise ValueError(f"a frame of unknown kind {kind!r}")


_GARBLED = (
    EOFError,
    msgspec.DecodeError,
    LookupError,
    TypeError,
    ValueError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
)
"""What a stream that is not what the folder writes raises on the way to the tables."""


def _receive(conn: sqlite3.Connection, stream: IO[bytes]) -> int | None:
    """:class:`_Receiver` over a whole stream: the count of the end frame, or None if the
    stream ended before it or is not what the folder writes."""
    receiver = _Receiver(conn)
    try:
        while chunk := stream.read(1 << 16):
            if receiver.feed(chunk) is not None:
                return receiver.folded
    except _GARBLED:
        return None
    return None


if __name__ == "__main__":
    sys.exit(main())
