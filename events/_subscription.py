"""In-process subscriptions: committed events in seq order, catch-up first, then live.

The writer hands every committed batch to each subscriber's buffer (never blocking the writer).
A subscriber reads the table for anything it has not seen (the backlog at subscribe time, rows
another process committed between two of ours, or everything after its buffer overflowed), so
delivery has no gap, and it drops seqs it has already yielded, so it has no duplicate.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Sequence
from typing import Protocol

import anyio

from ._types import Recorded

_BUFFER = 65_536
_PAGE = 1000


class _RangeReader(Protocol):
    def __call__(
        self, after_seq: int = 0, to_seq: int | None = None, *, limit: int | None = None
    ) -> Awaitable[list[Recorded]]: ...


class Subscription:
    """An async iterator of :class:`Recorded` events with seq greater than the start point.

    Obtain one from ``EventStore.subscribe``; ``stream`` restricts it to one stream.
    """

    def __init__(self, read_range: _RangeReader, since: int, stream: str | None) -> None:
        self._read_range = read_range
        self.cursor = since
        self._stream = stream
        self._buffer: deque[Recorded] = deque()
        self._pending: deque[Recorded] = deque()
        self._wakeup = anyio.Event()
        self._catch_up = True
        self._dirty = False
        self._closed = False

    def _deliver(self, batch: Sequence[Recorded]) -> None:
        """Called by the writer after a commit. Must not block or raise."""
        if self._catch_up:
            # Mark that the table moved, so a read that started before this commit is followed
            # by another. Keep the batch too: if the store closes before that read, it is what
            # this subscriber still gets (rows it reads first are dropped as already seen).
            self._dirty = True
            if len(self._buffer) + len(batch) > _BUFFER:
                self._buffer.clear()  # a gap then ends a closing subscription early, never wrongly
            else:
                self._buffer.extend(batch)
            self._wakeup.set()
            return
        if len(self._buffer) + len(batch) > _BUFFER:
            self._buffer.clear()
            self._catch_up = True
        else:
            self._buffer.extend(batch)
        self._wakeup.set()

    def _close(self) -> None:
        self._closed = True
        self._wakeup.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Recorded:
        while True:
            if self._pending:
                rec = self._pending.popleft()
                self.cursor = rec.seq
                if self._stream is None or rec.stream == self._stream:
                    return rec
                continue
            if self._catch_up:
                if self._closed:
                    # The store is closing (its reader goes next): no more reads, only what the
                    # writer handed over, while it follows on from the cursor.
                    self._catch_up = False
                    continue
                await self._fill_from_table(None)
                continue
            if self._buffer:
                rec = self._buffer[0]
                if rec.seq <= self.cursor:
                    self._buffer.popleft()
                    continue
                if rec.seq > self.cursor + 1:
                    # Rows committed by another process (or before a buffer overflow): read them.
                    if self._closed:
                        raise StopAsyncIteration  # no reader left to fill the gap with
                    await self._fill_from_table(rec.seq - 1)
                    if not self._pending:  # the gap is not in the table (removed rows)
                        self.cursor = rec.seq - 1
                    continue
                self._buffer.popleft()
                self.cursor = rec.seq
                if self._stream is None or rec.stream == self._stream:
                    return rec
                continue
            if self._closed:
                raise StopAsyncIteration
            self._wakeup = anyio.Event()
            if self._buffer or self._catch_up:
                continue
            await self._wakeup.wait()

    async def _fill_from_table(self, to_seq: int | None) -> None:
        self._dirty = False
        after = self._pending[-1].seq if self._pending else self.cursor
        rows = await self._read_range(after, to_seq, limit=_PAGE)
        self._pending.extend(rows)
        if to_seq is None and len(rows) < _PAGE and not self._dirty:
            # Caught up with the table. Events committed from now on reach the buffer; any
            # committed between our read and this point are re-read through the gap check.
            self._catch_up = False
