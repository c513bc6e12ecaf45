"""The status of a run or a step run, with ZenML's values."""

from __future__ import annotations

import enum


class ExecutionStatus(enum.StrEnum):
    """Where a run or a step run is in its life (ZenML's ``ExecutionStatus`` values).

    A run goes ``initializing -> running -> completed | failed | cancelled | crashed``; a step
    ``pending -> queued -> running (-> retrying -> running)* -> completed | failed``, or straight
    to ``cached``, ``skipped`` or ``cancelled``. A ``str`` subclass: ``str(status)`` is the value.
    """

    INITIALIZING = "initializing"
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    CRASHED = "crashed"
    STOPPED = "stopped"

    @property
    def is_finished(self) -> bool:
        """Whether nothing more will happen (unless a crashed or stopped run is resumed)."""
        return self in _FINISHED

    @property
    def is_successful(self) -> bool:
        """Whether the outcome is usable: ``completed`` or ``cached``."""
        return self in _SUCCESSFUL

    @property
    def is_failed(self) -> bool:
        """Whether the outcome is a failure: ``failed`` or ``crashed``."""
        return self in _FAILED


_FINISHED = frozenset(
    {
        ExecutionStatus.COMPLETED,
        ExecutionStatus.CACHED,
        ExecutionStatus.FAILED,
        ExecutionStatus.SKIPPED,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.CRASHED,
        ExecutionStatus.STOPPED,
    }
)
_SUCCESSFUL = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.CACHED})
_FAILED = frozenset({ExecutionStatus.FAILED, ExecutionStatus.CRASHED})
