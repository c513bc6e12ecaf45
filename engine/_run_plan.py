"""What a run is made of: its compiled plan, one node per step with its state, and the outcome.

The node states are plain ints (compared on every decision of the run loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from events import InputRef

from ._run_hooks import EMPTY, HookSet
from .enums import ExecutionMode

if TYPE_CHECKING:
    from ._compile import Invocation

PENDING, QUEUED, RUNNING, RETRYING, WAITING, COMPLETED, FAILED, SKIPPED, CANCELLED = range(9)


@dataclass(slots=True, eq=False)
class _Node:
    inv: Invocation
    waiting: int
    dependents: list[_Node] = field(default_factory=list)
    state: int = PENDING
    attempt: int = 0
    started: float = 0.0
    scope: anyio.CancelScope | None = None
    env: dict[str, str] = field(default_factory=dict)
    retry: Any = None
    cache_key: str = ""
    done: anyio.Event | None = None  # created when a dynamic body waits for this step

    @property
    def id(self) -> str:
        return self.inv.id


@dataclass(slots=True)
class RunPlan:
    """Everything a run needs, compiled and validated before the first event."""

    run_id: str
    run_name: str
    pipeline: str
    invocations: dict[str, Invocation]
    parameters: dict[str, Any]
    outputs: list[InputRef]
    execution_mode: ExecutionMode
    max_concurrency: int
    code: str = ""
    code_root: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    dynamic: bool = False
    hooks: HookSet = EMPTY
    on_init_kwargs: dict[str, Any] = field(default_factory=dict)
    retry: Any = None
    environment: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    enable_cache: bool | None = None
    cache_policy: Any = None
    model: Any = None
    max_dynamic_steps: int | None = None
    schedule_id: str | None = None  # set by the schedule service for the run of a tick
    tick: float | None = None
    enable_step_logs: bool | None = None


@dataclass(slots=True)
class RunOutcome:
    """What a finished run left behind: its final status and the first step exception."""

    status: str
    error: BaseException | None = None
    failed_step: str | None = None
    message: str = ""  # the error's text, secrets redacted
