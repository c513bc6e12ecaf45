"""Status and mode enums (``from engine.enums import ExecutionStatus, ExecutionMode``)."""

from __future__ import annotations

import enum

from projections import ExecutionStatus as ExecutionStatus


class ExecutionMode(enum.StrEnum):
    """What a run does when a step fails (after its last retry).

    * ``FAIL_FAST``: cancel running steps, start no new ones.
    * ``STOP_ON_FAILURE``: let running steps finish, start no new ones.
    * ``CONTINUE_ON_FAILURE``: keep running everything that does not depend on the failed step;
      its downstream steps are ``skipped``.
    """

    FAIL_FAST = "fail_fast"
    STOP_ON_FAILURE = "stop_on_failure"
    CONTINUE_ON_FAILURE = "continue_on_failure"


__all__ = ["ExecutionMode", "ExecutionStatus"]
