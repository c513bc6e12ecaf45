"""The root of evenflow's error tree, and the errors of the event log.

The root lives here, in the bottom layer, so every package can raise into one tree::

    EngineError                      (re-exported by ``engine`` and ``engine.errors``)
    +-- StoreError                   a database that cannot be opened or used
    |   +-- StoreCorruptedError      the file is damaged, or a payload does not decode
    |   +-- StoreBusyError           another process held the write lock for too long
    +-- ConcurrencyError             an append's ``expected_version`` was stale

``engine.errors`` adds the pipeline and step errors below ``EngineError``.
"""

from __future__ import annotations


class EngineError(Exception):
    """Root of every error evenflow raises on purpose."""


class StoreError(EngineError):
    """The event store cannot be opened or used; the message names the database path."""


class StoreCorruptedError(StoreError):
    """The database or a stored payload is damaged."""


class StoreBusyError(StoreError):
    """Another process kept the database's write lock past the store's busy deadline."""


class ConcurrencyError(EngineError):
    """An append expected a stream version that is no longer current.

    Attributes:
        stream: the stream appended to.
        expected: the version the caller expected.
        actual: the stream's current version.
    """

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream!r} is at version {actual}, but the append expected {expected}"
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual
