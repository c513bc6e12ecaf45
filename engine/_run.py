"""The run loop: fold a run's state, decide, append, then act.

One :class:`RunLoop` drives one run. Its state (in-degree counters, step states, the ready queue)
changes only in the synchronous ``_on_*`` decision methods, which return the events that record
the decision. Those events are appended (and committed) before anything acts on them: a step is
launched only after its ``step.started`` is committed. Decisions run on the event loop thread
one at a time, and the store commits appends in the order they were made, so the log is always
causally ordered: a ``step.ready`` never precedes the success of the step it waited for.

Per step: ``step.ready`` (inputs done), ``step.started`` (launched, same commit as ``ready`` when
there is capacity), then ``artifact.stored`` + ``step.succeeded`` or ``step.failed``, committed
together with the ``ready``/``started`` events of the steps the outcome unblocks.
"""

from __future__ import annotations

import math
import os
import socket
import time
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from events import (
    AnyEvent,
    ArtifactRef,
    ArtifactStored,
    InputRef,
    MetadataLogged,
    RunCancelled,
    RunCreated,
    RunFailed,
    RunStarted,
    RunSucceeded,
    StepCancelled,
    StepFailed,
    StepReady,
    StepSkipped,
    StepStarted,
    StepSucceeded,
)

from ._context import RunContext, StepContext
from ._executor import StepExecutor
from ._log import get_logger
from .enums import ExecutionMode

if TYPE_CHECKING:
    from ._compile import Invocation
    from ._engine import Engine

log = get_logger("evenflow.run")

PENDING, QUEUED, RUNNING, COMPLETED, FAILED, SKIPPED, CANCELLED = range(7)


@dataclass(slots=True, eq=False)
class _Node:
    inv: Invocation
    waiting: int
    dependents: list[_Node] = field(default_factory=list)
    state: int = PENDING
    attempt: int = 0
    started: float = 0.0
    scope: anyio.CancelScope | None = None

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
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    dynamic: bool = False


@dataclass(slots=True)
class RunOutcome:
    """What a finished run left behind: its final status and the first step exception."""

    status: str
    error: BaseException | None = None
    failed_step: str | None = None


class RunLoop:
    """Executes one :class:`RunPlan` against an engine."""

    def __init__(self, engine: Engine, plan: RunPlan) -> None:
        self.engine = engine
        self.plan = plan
        self.stream = plan.run_id
        self.executor = StepExecutor(
            engine.artifacts, anyio.CapacityLimiter(max(1, plan.max_concurrency))
        )
        self.ctx = RunContext(plan.run_id, plan.run_name, plan.pipeline, engine.home)
        self.nodes: dict[str, _Node] = {}
        self.queue: deque[_Node] = deque()
        self.produced: dict[str, dict[str, ArtifactRef]] = {}
        self.running = 0
        self.unfinished = 0
        self.stopping = False
        self.first_error: BaseException | None = None
        self.failed_step: str | None = None
        self._send: MemoryObjectSendStream[_Node]
        self._recv: MemoryObjectReceiveStream[_Node]
        self._send, self._recv = anyio.create_memory_object_stream[_Node](math.inf)
        self._build()

    def _build(self) -> None:
        for inv in self.plan.invocations.values():
            ups = inv.upstream()
            node = _Node(inv, len(ups))
            self.nodes[inv.id] = node
        for node in self.nodes.values():
            for up in node.inv.upstream():
                self.nodes[up].dependents.append(node)
        self.unfinished = len(self.nodes)

    # -- decisions (synchronous; they change state and return the events that record it) ---

    def _queue(self, node: _Node, events: list[AnyEvent]) -> None:
        node.state = QUEUED
        events.append(StepReady(step=node.id))
        self.queue.append(node)

    def _start_queued(self, events: list[AnyEvent]) -> list[_Node]:
        launch: list[_Node] = []
        limit = self.plan.max_concurrency
        while self.queue and self.running < limit and not self.stopping:
            node = self.queue.popleft()
            if node.state != QUEUED:
                continue
            node.state = RUNNING
            node.attempt += 1
            self.running += 1
            events.append(StepStarted(step=node.id, attempt=node.attempt))
            launch.append(node)
        return launch

    def _finish(self, node: _Node, state: int) -> None:
        if node.state == RUNNING:
            self.running -= 1
        node.state = state
        self.unfinished -= 1

    def _on_success(self, node: _Node, refs: dict[str, ArtifactRef]) -> list[AnyEvent]:
        events: list[AnyEvent] = [ArtifactStored(step=node.id, artifact=r) for r in refs.values()]
        events.append(
            StepSucceeded(
                step=node.id,
                attempt=node.attempt,
                outputs={name: ref.id for name, ref in refs.items()},
                duration=time.monotonic() - node.started,
            )
        )
        self.produced[node.id] = refs
        self._finish(node, COMPLETED)
        for dep in node.dependents:
            dep.waiting -= 1
            if dep.waiting == 0 and dep.state == PENDING:
                self._queue(dep, events)
        return events

    def _skip(self, node: _Node, reason: str, events: list[AnyEvent]) -> None:
        self._finish(node, SKIPPED)
        events.append(StepSkipped(step=node.id, reason=reason))

    def _on_failure(self, node: _Node, exc: BaseException) -> list[AnyEvent]:
        events: list[AnyEvent] = [
            StepFailed(
                step=node.id,
                attempt=node.attempt,
                error_type=type(exc).__qualname__,
                error=str(exc) or type(exc).__qualname__,
                traceback="".join(traceback.format_exception(exc)),
            )
        ]
        self._finish(node, FAILED)
        if self.first_error is None:
            self.first_error = exc
            self.failed_step = node.id
        log.info("step_failed", run_id=self.stream, step=node.id, error=str(exc))
        mode = self.plan.execution_mode
        reason = f"upstream step {node.id!r} failed"
        if mode is ExecutionMode.CONTINUE_ON_FAILURE:
            stack = list(node.dependents)
            while stack:
                dep = stack.pop()
                if dep.state == PENDING:
                    self._skip(dep, reason, events)
                    stack.extend(dep.dependents)
            return events
        self.stopping = True
        reason = f"run stopped after step {node.id!r} failed"
        for other in self.nodes.values():
            if other.state in (PENDING, QUEUED):
                self._skip(other, reason, events)
        if mode is ExecutionMode.FAIL_FAST:
            for other in self.nodes.values():
                if other.state == RUNNING and other.scope is not None:
                    other.scope.cancel()
        return events

    def _on_cancelled(self, node: _Node) -> list[AnyEvent]:
        self._finish(node, CANCELLED)
        return [StepCancelled(step=node.id)]

    def _metadata_events(self) -> list[AnyEvent]:
        pending = self.ctx.pending_metadata
        if not pending:
            return []
        self.ctx.pending_metadata = []
        return [MetadataLogged(step=step, metadata=data) for step, data in pending]

    # -- acting ----------------------------------------------------------------------------

    async def _append(self, events: Sequence[AnyEvent], expected: int | None = None) -> None:
        # Not shielded: if the run is cancelled while this waits, the request still commits
        # (it is queued), and _record_cancel settles every step that was decided but not run.
        await self.engine.store.append(self.stream, events, expected)

    def _launch(self, nodes: list[_Node]) -> None:
        send = self._send
        for node in nodes:
            send.send_nowait(node)

    async def _worker(self, recv: MemoryObjectReceiveStream[_Node]) -> None:
        """One of at most ``max_concurrency`` workers: runs launched steps one at a time.

        A fixed pool instead of a task per step: spawning a task costs more than a no-op step.
        """
        fail_fast = self.plan.execution_mode is ExecutionMode.FAIL_FAST
        async with recv:
            async for node in recv:
                await self._run_node(node, fail_fast)

    async def _run_node(self, node: _Node, fail_fast: bool) -> None:
        inv = node.inv
        ctx = StepContext(self.ctx, inv.step.name, inv.id, attempt=node.attempt)
        refs: dict[str, ArtifactRef] | None = None
        error: BaseException | None = None
        node.started = time.monotonic()
        if fail_fast:
            # Only fail_fast cancels single steps, so only it pays for a scope per step.
            with anyio.CancelScope() as scope:
                node.scope = scope
                try:
                    refs = await self.executor.run(
                        inv.step, ctx, inv.inputs, inv.parameters, self.produced
                    )
                except Exception as exc:
                    error = exc
            node.scope = None
        else:
            try:
                refs = await self.executor.run(
                    inv.step, ctx, inv.inputs, inv.parameters, self.produced
                )
            except Exception as exc:
                error = exc
        if refs is not None:
            events = self._on_success(node, refs)
        elif error is not None:
            events = self._on_failure(node, error)
        else:
            events = self._on_cancelled(node)
        if self.ctx.pending_metadata:
            events.extend(self._metadata_events())
        launch = self._start_queued(events)
        if self.unfinished == 0:
            self._send.close()  # the workers drain and stop: the run's steps are all settled
        await self._append(events)
        self._launch(launch)

    async def execute(self) -> RunOutcome:
        """Run to the end; returns the outcome. Cancellation records ``run.cancelled``."""
        try:
            return await self._execute()
        finally:
            self._send.close()
            self._recv.close()

    async def _execute(self) -> RunOutcome:
        plan = self.plan
        events: list[AnyEvent] = [
            RunCreated(
                pipeline=plan.pipeline,
                run_name=plan.run_name,
                steps=[inv.spec() for inv in plan.invocations.values()],
                parameters=plan.parameters,
                code=plan.code,
                tags=plan.tags,
                config=plan.config,
                dynamic=plan.dynamic,
                execution_mode=plan.execution_mode.value,
            ),
            RunStarted(owner=self.engine.owner_id, pid=os.getpid(), host=socket.gethostname()),
        ]
        for node in self.nodes.values():
            if node.waiting == 0:
                self._queue(node, events)
        launch = self._start_queued(events)
        await self._append(events, expected=0)
        log.info("run_started", run_id=self.stream, pipeline=plan.pipeline, steps=len(self.nodes))
        send, recv = self._send, self._recv
        try:
            async with anyio.create_task_group() as tg:
                workers = min(plan.max_concurrency, len(self.nodes))
                for _ in range(workers):
                    tg.start_soon(self._worker, recv.clone())
                recv.close()
                self._launch(launch)
                if not self.nodes:
                    send.close()
        except anyio.get_cancelled_exc_class():
            await self._record_cancel("cancelled")
            raise
        except BaseException:
            await self._record_cancel("the engine stopped on an internal error")
            raise
        final: list[AnyEvent] = self._metadata_events()
        if self.first_error is not None or any(n.state == CANCELLED for n in self.nodes.values()):
            error = self.first_error
            message = f"step {self.failed_step!r} failed: {error}" if error else "steps cancelled"
            final.append(RunFailed(error=message, failed_step=self.failed_step))
            await self._append_shielded(final)
            log.info("run_failed", run_id=self.stream, step=self.failed_step)
            return RunOutcome("failed", error, self.failed_step)
        final.append(RunSucceeded(outputs=plan.outputs))
        await self._append_shielded(final)
        log.info("run_succeeded", run_id=self.stream)
        return RunOutcome("completed")

    async def _append_shielded(self, events: Sequence[AnyEvent]) -> None:
        with anyio.CancelScope(shield=True):
            await self.engine.store.append(self.stream, events)

    async def _record_cancel(self, reason: str) -> None:
        events: list[AnyEvent] = []
        for node in self.nodes.values():
            if node.state in (PENDING, QUEUED, RUNNING):
                if node.state == RUNNING:
                    events.append(StepCancelled(step=node.id))
                    self._finish(node, CANCELLED)
                else:
                    self._skip(node, reason, events)
        events.append(RunCancelled(reason=reason))
        with anyio.move_on_after(5, shield=True):
            await self.engine.store.append(self.stream, events)
