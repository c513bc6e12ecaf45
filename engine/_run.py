"""The run loop: fold a run's state, decide, append, then act.

One :class:`RunLoop` drives one run. Its state (in-degree counters, step states, the ready queue)
changes only in the synchronous ``_on_*`` decision methods, which return the events that record
the decision. Those events are appended (and committed) before anything acts on them: a step is
launched only after its ``step.started`` is committed. Decisions run on the event loop thread
one at a time, and the store commits appends in the order they were made, so the log is always
causally ordered: a ``step.ready`` never precedes the success of the step it waited for.

Per step: ``step.ready`` (inputs done), ``step.started`` (launched, same commit as ``ready`` when
there is capacity) or ``step.cached`` (a cache hit), then ``artifact.stored`` + ``step.succeeded``
or ``step.failed`` (+ ``step.retry_scheduled`` when it will be retried), committed together with
the ``ready``/``started`` events of the steps the outcome unblocks.
"""

from __future__ import annotations

import math
import os
import socket
import time
import traceback
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from events import (
    AnyEvent,
    ArtifactRef,
    ArtifactStored,
    MetadataLogged,
    RunCancelled,
    RunCreated,
    RunFailed,
    RunResumed,
    RunStarted,
    RunSucceeded,
    StepCancelled,
    StepFailed,
    StepReady,
    StepRetryScheduled,
    StepSkipped,
    StepStarted,
    StepSucceeded,
)

from . import _retry
from ._caching import RunCache, Wait
from ._context import RunContext, StepContext
from ._environment import merge_environment
from ._executor import StepExecutor
from ._log import get_logger
from ._run_dynamic import DynamicSteps
from ._run_hooks import fire
from ._run_plan import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    QUEUED,
    RETRYING,
    RUNNING,
    SKIPPED,
    WAITING,
    RunOutcome,
    RunPlan,
    _Node,
)
from ._run_resume import flush_restored, restore
from ._run_watch import watch
from ._step_logs import RunLogs
from .enums import ExecutionMode

if TYPE_CHECKING:
    from ._engine import Engine
    from ._lease import Lease
    from ._resume import RunPast

log = get_logger("evenflow.run")

_CLEANUP_DEADLINE = 30.0  # seconds each pipeline hook may take once the run is cancelled


class RunLoop:
    """Executes one :class:`RunPlan` against an engine."""

    def __init__(self, engine: Engine, plan: RunPlan, cache: RunCache | None = None) -> None:
        self.engine = engine
        self.plan = plan
        self.cache = cache
        self.stream = plan.run_id
        self.executor = StepExecutor(
            engine.artifacts, anyio.CapacityLimiter(max(1, plan.max_concurrency))
        )
        self.ctx = RunContext(plan.run_id, plan.run_name, plan.pipeline, engine.home)
        self.ctx.model = plan.model
        self.ctx.artifacts = engine.artifacts
        self.logs = RunLogs(engine.home, plan.run_id, plan.enable_step_logs)
        self.nodes: dict[str, _Node] = {}
        self.queue: deque[_Node] = deque()
        self.produced: dict[str, dict[str, ArtifactRef]] = {}
        self.running = 0
        self.unfinished = 0
        self.stopping = False
        self.first_error: BaseException | None = None
        self.failed_step: str | None = None
        self._timers: set[anyio.CancelScope] = set()  # retry timers, cache waits: a stop ends them
        self._waits: list[tuple[_Node, Wait]] = []
        self._late_hooks: list[tuple[_Node, BaseException]] = []
        self._secret_values: set[str] = set()
        self.body_done = not plan.dynamic
        self.body: tuple[Any, dict[str, Any]] | None = None  # dynamic: (function, parameters)
        self._tg: anyio.abc.TaskGroup | None = None
        self.past: RunPast | None = None  # set when resuming: what the log says happened
        self.lease: Lease | None = None  # taken by execute() unless the caller holds it
        self.cancel_reason: str | None = None  # a cancel requested through the log
        self._requeue: list[_Node] = []
        self._restored_timers: list[tuple[_Node, float]] = []
        self._send: MemoryObjectSendStream[_Node]
        self._recv: MemoryObjectReceiveStream[_Node]
        self._send, self._recv = anyio.create_memory_object_stream[_Node](math.inf)
        self._workers = 0  # started so far (see _launch)
        self.dynamic = DynamicSteps(self)  # the steps a dynamic body declares
        self._build()

    def _build(self) -> None:
        nodes, edges = self.nodes, []
        for inv in self.plan.invocations.values():
            ups = inv.upstream()  # once per step: it builds a set
            node = _Node(inv, len(ups))
            node.retry = _retry.effective_retry(inv.step.options.retry, self.plan.retry)
            nodes[inv.id] = node
            edges.append((node, ups))
        for node, ups in edges:
            for up in ups:
                nodes[up].dependents.append(node)
        self.unfinished = len(nodes)

    # -- decisions (synchronous; they change state and return the events that record it) ---

    def _queue(self, node: _Node, events: list[AnyEvent]) -> None:
        node.state = QUEUED
        events.append(StepReady(step=node.id))
        self.queue.append(node)

    def _start_queued(self, events: list[AnyEvent]) -> list[_Node]:
        launch: list[_Node] = []
        limit = self.plan.max_concurrency
        cache = self.cache
        while self.queue and self.running < limit and not self.stopping:
            node = self.queue.popleft()
            if node.state != QUEUED:
                continue
            # Looked up once per step: a retry keeps the key its first attempt took. (A step
            # resumed mid-retry has none yet: it is looked up then, and may even hit.)
            if cache is not None and not node.cache_key:
                try:
                    hit = cache.lookup(self, node)
                except Exception as exc:  # a key that cannot be computed fails the step
                    node.attempt += 1
                    events.extend(self._on_failure(node, exc, retry=False)[0])
                    if node.inv.step.hooks:
                        self._late_hooks.append((node, exc))
                    continue
                if isinstance(hit, Wait):
                    node.state = WAITING  # another run computes this key: reuse its result
                    self._waits.append((node, hit))
                    continue
                if hit is not None:
                    events.append(hit.event)
                    self._settle(node, hit.outputs, COMPLETED, events)
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
        if node.done is not None:
            node.done.set()

    def _settle(
        self, node: _Node, refs: dict[str, ArtifactRef], state: int, events: list[AnyEvent]
    ) -> None:
        """A step has its outputs (run or cached): unblock what waited for it."""
        self.produced[node.id] = refs
        self._finish(node, state)
        for dep in node.dependents:
            dep.waiting -= 1
            if dep.waiting == 0 and dep.state == PENDING:
                self._queue(dep, events)

    def _on_success(self, node: _Node, refs: dict[str, ArtifactRef]) -> list[AnyEvent]:
        events: list[AnyEvent] = [ArtifactStored(step=node.id, artifact=r) for r in refs.values()]
        events.append(
            StepSucceeded(
                step=node.id,
                attempt=node.attempt,
                outputs={name: ref.id for name, ref in refs.items()},
                duration=time.monotonic() - node.started,
                cache_key=node.cache_key,
            )
        )
        if node.cache_key and self.cache is not None:
            self.cache.record(node.cache_key, self.stream, node, refs)
        self._settle(node, refs, COMPLETED, events)
        return events

    def _skip(self, node: _Node, reason: str, events: list[AnyEvent]) -> None:
        self._finish(node, SKIPPED)
        events.append(StepSkipped(step=node.id, reason=reason))

    def redact(self, text: str) -> str:
        """``text`` with every secret value this run uses replaced by ``***``: an exception
        that echoes a secret must not carry it into the log."""
        for value in self._secret_values:
            text = text.replace(value, "***")
        return text

    def _failed_event(self, node: _Node, exc: BaseException, final: bool) -> StepFailed:
        return StepFailed(
            step=node.id,
            attempt=node.attempt,
            error_type=type(exc).__qualname__,
            error=self.redact(str(exc) or type(exc).__qualname__),
            traceback=self.redact("".join(traceback.format_exception(exc))),
            final=final,
        )

    def _on_failure(
        self, node: _Node, exc: BaseException, *, retry: bool = True
    ) -> tuple[list[AnyEvent], float | None]:
        """Returns the events and, when the step will be retried, the retry's due time."""
        if retry and not self.stopping and _retry.should_retry(node.retry, node.attempt):
            due = _retry.due_at(
                node.retry, node.attempt, self.engine.clock.now(), self.engine.rng.random()
            )
            self.running -= 1
            node.state = RETRYING
            log.info("step_retry", run_id=self.stream, step=node.id, attempt=node.attempt)
            return [
                self._failed_event(node, exc, final=False),
                StepRetryScheduled(step=node.id, attempt=node.attempt + 1, due_at=due),
            ], due
        events: list[AnyEvent] = [self._failed_event(node, exc, final=True)]
        self._finish(node, FAILED)
        self._release(node)
        if self.first_error is None:
            self.first_error = exc
            self.failed_step = node.id
        log.info("step_failed", run_id=self.stream, step=node.id, error=self.redact(str(exc)))
        mode = self.plan.execution_mode
        if mode is ExecutionMode.CONTINUE_ON_FAILURE:
            reason = f"upstream step {node.id!r} failed"
            stack = list(node.dependents)
            while stack:
                dep = stack.pop()
                if dep.state == PENDING:
                    self._skip(dep, reason, events)
                    stack.extend(dep.dependents)
            return events, None
        self._stop(f"run stopped after step {node.id!r} failed", events)
        if mode is ExecutionMode.FAIL_FAST:
            self._cancel_running()
        return events, None

    def _cancel_running(self) -> None:
        """fail_fast: cancel the steps that are running (those not begun yet never will)."""
        for other in self.nodes.values():
            if other.state == RUNNING and other.scope is not None:
                other.scope.cancel()

    def _stop(self, reason: str, events: list[AnyEvent]) -> None:
        """Start nothing new: skip every step that has not started, cancel pending retries and
        waits for other runs' results."""
        self.stopping = True
        for other in self.nodes.values():
            if other.state in (PENDING, QUEUED, WAITING):
                self._skip(other, reason, events)
        for timer in self._timers:
            timer.cancel()

    def _release(self, node: _Node) -> None:
        if node.cache_key and self.cache is not None:
            self.cache.release(node.cache_key)

    def _on_cancelled(self, node: _Node) -> list[AnyEvent]:
        self._finish(node, CANCELLED)
        self._release(node)
        return [StepCancelled(step=node.id)]

    def _metadata_events(self) -> list[AnyEvent]:
        """What steps and hooks recorded with ``log_metadata`` and ``save_artifact``."""
        ctx = self.ctx
        events: list[AnyEvent] = []
        if ctx.pending_artifacts:
            saved, ctx.pending_artifacts = ctx.pending_artifacts, []
            events.extend(ArtifactStored(step=step, artifact=ref) for step, ref in saved)
        if ctx.pending_metadata:
            pending, ctx.pending_metadata = ctx.pending_metadata, []
            events.extend(MetadataLogged(step=step, metadata=data) for step, data in pending)
        return events

    # -- acting ----------------------------------------------------------------------------

    async def _append(
        self, events: Sequence[AnyEvent], expected: int | None = None, *, eager: bool = False
    ) -> None:
        # Not shielded: if the run is cancelled while this waits, the request still commits
        # (it is queued), and _record_cancel settles every step that was decided but not run.
        await self.engine.store.append(self.stream, events, expected, eager=eager)

    async def _append_shielded(self, events: Sequence[AnyEvent]) -> None:
        with anyio.CancelScope(shield=True):
            await self.engine.store.append(self.stream, events)

    def _launch(self, nodes: list[_Node], *, reserve: int = 0) -> None:
        """Hand ``nodes`` to the workers. ``reserve``: nodes the calling worker takes itself
        next (it is done with its step), which need no new worker."""
        send = self._send
        for node in nodes:
            send.send_nowait(node)
        room = self.plan.max_concurrency - self._workers
        if nodes and room > 0:
            # Workers start as they are needed: a node no idle worker took (an idle one takes
            # it in send_nowait) gets a new one, up to max_concurrency. A run whose steps all
            # come from the cache starts none, a chain one or two.
            spawn = min(send.statistics().current_buffer_used - reserve, room)
            if spawn > 0:
                assert self._tg is not None
                self._workers += spawn
                for _ in range(spawn):
                    self._tg.start_soon(self._worker, self._recv.clone())
        if self._late_hooks and self._tg is not None:
            late, self._late_hooks = self._late_hooks, []
            for node, exc in late:
                ctx = StepContext(self.ctx, node.inv.step.name, node.id, node.env, node.attempt)
                self._tg.start_soon(self._step_outcome_hooks, node, ctx, exc)
        if self._waits and self._tg is not None:
            waits, self._waits = self._waits, []
            for node, wait in waits:
                self._tg.start_soon(self._await_flight, node, wait, name=f"wait {node.id}")

    async def _await_flight(self, node: _Node, wait: Wait) -> None:
        """Wait for the run computing the same cache key, then look the key up again. A run
        that stops meanwhile stops waiting (``_stop`` skipped the step)."""
        with anyio.CancelScope() as scope:
            self._timers.add(scope)
            if self.stopping:
                scope.cancel()
            try:
                await wait.done.wait()
            finally:
                self._timers.discard(scope)
        if node.state == WAITING and not self.stopping:
            node.state = QUEUED
            self.queue.appendleft(node)
            await self._commit_and_launch([])

    async def _commit_and_launch(self, events: list[AnyEvent], *, reserve: int = 0) -> None:
        if self.ctx.pending_metadata or self.ctx.pending_artifacts:
            events.extend(self._metadata_events())
        # No other step of this run is running: nothing would share this commit (a chain).
        eager = self.running == 0
        launch = self._start_queued(events)
        self._maybe_close()
        if events:
            await self._append(events, eager=eager)
        self._launch(launch, reserve=reserve)

    def _maybe_close(self) -> None:
        if self.unfinished == 0 and self.body_done:
            self._send.close()  # the workers drain and stop: the run's steps are all settled

    async def _worker(self, recv: MemoryObjectReceiveStream[_Node]) -> None:
        """One of at most ``max_concurrency`` workers: runs launched steps one at a time.

        A pool instead of a task per step: spawning a task costs more than a no-op step. The
        pool grows as steps wait for a worker (see :meth:`_launch`) and stops when the run's
        steps are all settled (the send side closes).
        """
        fail_fast = self.plan.execution_mode is ExecutionMode.FAIL_FAST
        async with recv:
            while True:
                # A step waiting in the buffer is taken at once: ``receive`` would first yield
                # to the event loop (a scheduling round per step). The worker still yields on
                # every step, as each one awaits the commit of its outcome.
                try:
                    node = recv.receive_nowait()
                except anyio.WouldBlock:
                    try:
                        node = await recv.receive()
                    except anyio.EndOfStream:
                        return
                except anyio.EndOfStream:
                    return
                await self._run_node(node, fail_fast)

    async def _attempt(
        self, node: _Node, ctx: StepContext
    ) -> tuple[dict[str, ArtifactRef] | None, BaseException | None]:
        inv = node.inv
        capture = self.logs.begin(node.id, node.attempt, inv.step.options.enable_step_logs)
        try:
            if node.env:
                async with self.engine.env_gate.apply(node.env):
                    refs = await self.executor.run(
                        inv.step, ctx, inv.inputs, inv.parameters, self.produced
                    )
            else:
                refs = await self.executor.run(
                    inv.step, ctx, inv.inputs, inv.parameters, self.produced
                )
        except (Exception, SystemExit) as exc:  # sys.exit() fails the step, not the engine
            return None, exc
        finally:
            self.logs.end(node.id, capture)
        return refs, None

    async def _run_node(self, node: _Node, fail_fast: bool) -> None:
        inv = node.inv
        hooks = inv.step.hooks
        if fail_fast and self.stopping:
            # A step failed after this one's start was committed and before a worker took it:
            # it never begins (no hooks either) and is recorded as cancelled.
            await self._commit_and_launch(self._on_cancelled(node), reserve=1)
            return
        ctx = StepContext(
            self.ctx, inv.step.name, inv.id, node.env, node.attempt, inv.step.options.model
        )
        refs: dict[str, ArtifactRef] | None = None
        error: BaseException | None = None
        if fail_fast:
            # Only fail_fast cancels single steps, so only it pays for a scope per step. The
            # scope covers on_start too: a step still in that hook when another fails stops.
            with anyio.CancelScope() as scope:
                node.scope = scope
                await self._begin(node, ctx, hooks)
                refs, error = await self._attempt(node, ctx)
            node.scope = None
        else:
            await self._begin(node, ctx, hooks)
            refs, error = await self._attempt(node, ctx)
        due: float | None = None
        if refs is not None:
            events = self._on_success(node, refs)
        elif error is not None:
            events, due = self._on_failure(node, error)
        else:
            events = self._on_cancelled(node)
        announced = self.logs.announce(node.id)
        if announced:
            events[:0] = announced
        # This worker takes the next node itself once it is done here: that needs no new worker.
        await self._commit_and_launch(events, reserve=1)
        assert self._tg is not None
        if due is not None:
            self._tg.start_soon(self._retry_at, node, due, name=f"retry {node.id}")
        elif hooks:
            # Not on this worker: a slow hook must not hold up a step whose start is committed.
            self._tg.start_soon(self._step_outcome_hooks, node, ctx, error, name=f"hooks {node.id}")

    async def _begin(self, node: _Node, ctx: StepContext, hooks: Any) -> None:
        """A step's first attempt fires its ``on_start`` hook; then its clock starts."""
        if hooks and node.attempt == 1 and (spec := hooks.get("on_start")) is not None:
            await self._fire(spec, ctx)
        node.started = time.monotonic()

    async def _step_outcome_hooks(
        self, node: _Node, ctx: StepContext, error: BaseException | None
    ) -> None:
        hooks = node.inv.step.hooks
        if node.state == CANCELLED:
            error = error or anyio.get_cancelled_exc_class()("step cancelled")
        if (spec := hooks.get("on_end")) is not None:
            await self._fire(spec, ctx, error)
        kind = "on_success" if node.state == COMPLETED else "on_failure"
        if (spec := hooks.get(kind)) is not None:
            await self._fire(spec, ctx, error)

    async def _fire(
        self, spec: Any, ctx: StepContext | None, exception: BaseException | None = None
    ) -> tuple[Any, BaseException | None]:
        return await fire(
            self._append,
            spec,
            run=self.ctx,
            step_ctx=ctx,
            exception=exception,
            limiter=self.executor.thread_limiter,
        )

    async def _retry_at(self, node: _Node, due: float) -> None:
        """Wait for a retry's due time without holding a worker, then queue the step again."""
        with anyio.CancelScope() as scope:
            self._timers.add(scope)
            if self.stopping:  # the run stopped while this retry's decision was committed
                scope.cancel()
            try:
                await self.engine.clock.sleep_until(due)
            finally:
                self._timers.discard(scope)
        events: list[AnyEvent] = []
        if scope.cancelled_caught or self.stopping:
            self._finish(node, CANCELLED)
            events.append(StepCancelled(step=node.id))
        else:
            node.state = QUEUED
            self.queue.appendleft(node)
        await self._commit_and_launch(events)

    # -- the run ---------------------------------------------------------------------------

    async def execute(self) -> RunOutcome:
        """Run to the end; returns the outcome. Cancellation records ``run.cancelled``."""
        try:
            return await self._execute()
        finally:
            self.executor.threads.close()
            self._send.close()
            self._recv.close()

    def _created(self) -> list[AnyEvent]:
        plan = self.plan
        return [
            RunCreated(
                pipeline=plan.pipeline,
                run_name=plan.run_name,
                steps=[inv.spec() for inv in plan.invocations.values()],
                parameters=plan.parameters,
                code=plan.code,
                code_root=plan.code_root,
                tags=plan.tags,
                config=plan.config,
                dynamic=plan.dynamic,
                execution_mode=plan.execution_mode.value,
                schedule_id=plan.schedule_id,
                tick=plan.tick,
            ),
            RunStarted(owner=self.engine.owner_id, pid=os.getpid(), host=socket.gethostname()),
        ]

    def _node_env(self, node: _Node) -> dict[str, str]:
        plan = self.plan
        options = node.inv.step.options
        wanted = [*plan.secrets, *(options.secrets or ())]
        # Values go to the step's environment only: never into an event or a log.
        secret_env = dict(self.engine.secrets.resolve(dict.fromkeys(wanted))) if wanted else {}
        self._secret_values.update(v for v in secret_env.values() if v)
        return merge_environment(plan.environment, options.environment or {}, secret_env)

    async def _prepare(self) -> BaseException | None:
        """Secrets and ``on_init``, before any step starts; an error here fails the run."""
        try:
            if self.plan.secrets:
                self.engine.secrets.require(self.plan.secrets)
            for node in self.nodes.values():
                node.env = self._node_env(node)
        except Exception as exc:
            return exc
        spec = self.plan.hooks.get("on_init")
        if spec is not None:
            result, error = await self._fire(spec, None)
            if error is not None:
                return error
            self.ctx.pipeline_state = result
        return None

    async def _execute(self) -> RunOutcome:
        from ._lease import Lease

        plan = self.plan
        if self.lease is None:  # taken before run.created: a run without a live lease crashed
            self.lease = Lease.acquire(self.engine.home.leases, self.stream, self.engine.owner_id)
        try:
            try:
                if self.past is None:
                    await self._append(self._created(), expected=0)
                else:
                    resumed = RunResumed(
                        owner=self.engine.owner_id, pid=os.getpid(), host=socket.gethostname()
                    )
                    await self._append([resumed])
            except anyio.get_cancelled_exc_class():
                # Submitted before the cancel arrived, so it commits: the run ends cancelled.
                await self._record_cancel("cancelled")
                raise
            log.info(
                "run_started", run_id=self.stream, pipeline=plan.pipeline, steps=len(self.nodes)
            )
            return await self._drive()
        finally:
            self.lease.release()

    async def _drive(self) -> RunOutcome:
        try:
            prepared = await self._prepare()
            if prepared is not None:
                self.first_error = prepared
                events: list[AnyEvent] = []
                self._stop(f"the run failed before its steps: {prepared}", events)
                await self._append(events)
            else:
                stop = anyio.Event()
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(watch, self, scope, stop, name="lease and cancel requests")
                        await self._steps()
                        # Wake the watcher, do not cancel it: a cancelled task leaves its
                        # CancelledError, traceback and frames in a reference cycle that holds
                        # this loop (every node of the run) until a full garbage collection.
                        stop.set()
                if self.cancel_reason is not None:
                    await self._record_cancel(self.cancel_reason)
                    return RunOutcome("cancelled", message=self.cancel_reason)
        except anyio.get_cancelled_exc_class():
            await self._record_cancel("cancelled")
            raise
        except BaseException:
            await self._record_cancel("the engine stopped on an internal error")
            raise
        return await self._finish_run()

    async def _steps(self) -> None:
        events: list[AnyEvent] = []
        if self.past is not None and not self.plan.dynamic:
            restore(self)
        for node in self.nodes.values():
            if node.waiting == 0 and node.state == PENDING and node not in self._requeue:
                self._queue(node, events)
        events.extend(flush_restored(self))
        launch = self._start_queued(events)
        self._maybe_close()
        if events:
            await self._append(events)
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for node, due in self._restored_timers:
                tg.start_soon(self._retry_at, node, due, name=f"retry {node.id}")
            self._restored_timers = []
            self._launch(launch)
            if self.plan.dynamic:
                tg.start_soon(self.dynamic.run_body, name="pipeline body")

    async def _finish_run(self) -> RunOutcome:
        plan = self.plan
        if self.cache is not None:
            self.cache.release_all()
        final: list[AnyEvent] = self._metadata_events()
        cancelled = any(n.state == CANCELLED for n in self.nodes.values())
        if self.first_error is None and not cancelled:
            final.append(RunSucceeded(outputs=plan.outputs))
            await self._append_shielded(final)
            log.info("run_succeeded", run_id=self.stream)
            if plan.model is not None:
                from ._models import link_run

                refs = [ref for outputs in self.produced.values() for ref in outputs.values()]
                with anyio.CancelScope(shield=True):
                    await link_run(self.engine, plan.model, self.stream, refs)
            await self._pipeline_hooks("on_success", None)
            return RunOutcome("completed")
        error = self.first_error
        where = f"step {self.failed_step!r}" if self.failed_step else "the run"
        message = self.redact(f"{where} failed: {error}") if error else "steps cancelled"
        final.append(RunFailed(error=message, failed_step=self.failed_step))
        await self._append_shielded(final)
        log.info("run_failed", run_id=self.stream, step=self.failed_step)
        await self._pipeline_hooks("on_failure", error)
        return RunOutcome("failed", error, self.failed_step, self.redact(str(error)))

    async def _pipeline_hooks(
        self, outcome: str, error: BaseException | None, *, cancelled: bool = False
    ) -> None:
        """``on_success``/``on_failure`` once the outcome is committed, then ``on_cleanup``,
        which always runs.

        A run that ended on its own gives its hooks the time they take. A cancelled run, or a
        cancel that arrives while the outcome hook runs, gives each hook that is left at most
        :data:`_CLEANUP_DEADLINE` seconds, shielded from the cancel. A hook cut short is
        recorded as failed (see ``_run_hooks.fire``).
        """
        hooks = self.plan.hooks
        if not hooks:
            return
        if cancelled:
            await self._bounded_hooks((outcome, "on_cleanup"), error)
            return
        spec = hooks.get(outcome)
        if spec is not None:
            try:
                await self._fire(spec, None, error)
            except anyio.get_cancelled_exc_class():
                await self._bounded_hooks(("on_cleanup",), error)
                raise
        spec = hooks.get("on_cleanup")
        if spec is not None:
            await self._fire(spec, None, error)
        await self._hook_metadata()

    async def _bounded_hooks(self, kinds: Sequence[str], error: BaseException | None) -> None:
        """Pipeline hooks of a run being cancelled: shielded, each within the deadline."""
        with anyio.CancelScope(shield=True):
            for kind in kinds:
                spec = self.plan.hooks.get(kind)
                if spec is not None:
                    with anyio.move_on_after(_CLEANUP_DEADLINE):
                        await self._fire(spec, None, error)
            with anyio.move_on_after(_CLEANUP_DEADLINE):
                await self._hook_metadata()

    async def _hook_metadata(self) -> None:
        if self.ctx.pending_metadata or self.ctx.pending_artifacts:  # called by the hooks
            await self.engine.store.append(self.stream, self._metadata_events())

    async def _record_cancel(self, reason: str) -> None:
        events: list[AnyEvent] = []
        for node in self.nodes.values():
            if node.state in (RUNNING, RETRYING):
                events.append(StepCancelled(step=node.id))
                self._finish(node, CANCELLED)
            elif node.state in (PENDING, QUEUED, WAITING):
                self._skip(node, reason, events)
        if self.cache is not None:
            self.cache.release_all()
        events.append(RunCancelled(reason=reason))
        with anyio.move_on_after(5, shield=True):
            await self.engine.store.append(self.stream, events)
        cancel = anyio.get_cancelled_exc_class()(reason)
        await self._pipeline_hooks("on_failure", cancel, cancelled=True)
