"""A dynamic run's steps: declared by its body while the run goes on, not compiled upfront.

:class:`DynamicSteps` is the part of a :class:`~._run.RunLoop` that the body drives (through
``_dynamic.DynamicSession``): each step the body calls is declared (``step.declared``), queued
when its inputs are done, and its handle waits for it. Decisions still go through the loop's own
methods, so a dynamic step is scheduled, cached, retried and recorded as a compiled one is.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import anyio

from events import AnyEvent, ArtifactRef, StepDeclared

from . import _retry
from ._log import get_logger
from ._run_plan import CANCELLED, COMPLETED, FAILED, SKIPPED, _Node
from ._run_resume import adopt, flush_restored
from .enums import ExecutionMode

if TYPE_CHECKING:
    from ._compile import Invocation
    from ._run import RunLoop

log = get_logger("evenflow.run")


class DynamicSteps:
    """The steps a dynamic run's body declares, on the run loop ``loop``."""

    def __init__(self, loop: RunLoop) -> None:
        # A weak reference: the loop holds this object, and a cycle would keep a finished run
        # (every node of it) alive until a full garbage collection.
        self._loop = weakref.ref(loop)
        self._batch: list[AnyEvent] | None = None  # inside batch(): one append for all

    @property
    def loop(self) -> RunLoop:
        loop = self._loop()
        assert loop is not None, "the run loop is gone"
        return loop

    def declare(self, inv: Invocation) -> None:
        """A dynamic body declared a step: record it and start it as soon as it can.

        When resuming, an invocation the log recorded is matched by id: it must be the same
        step, and it picks up where the log left it (no second ``step.declared``).
        """
        loop = self.loop
        recorded = loop.past.declared.get(inv.id) if loop.past is not None else None
        if recorded is not None:
            from ._resume import same_shape

            why = same_shape(recorded, inv.spec())
            if why is not None:
                from .errors import RunResumeError

                raise RunResumeError(
                    f"cannot resume run {loop.plan.run_name!r}: the pipeline body declared a "
                    f"different step under a recorded id ({why})"
                )
        ups = [loop.nodes[u] for u in inv.upstream()]
        node = _Node(inv, sum(1 for u in ups if u.state != COMPLETED))
        node.retry = _retry.effective_retry(inv.step.options.retry, loop.plan.retry)
        node.env = loop._node_env(node)
        loop.nodes[inv.id] = node
        loop.unfinished += 1
        for up in ups:
            up.dependents.append(node)
        events: list[AnyEvent] = [] if recorded is not None else [StepDeclared(spec=inv.spec())]
        broken = [u.id for u in ups if u.state in (FAILED, SKIPPED, CANCELLED)]
        past = loop.past.steps.get(inv.id) if recorded is not None and loop.past else None
        if past is not None and past.state != "pending":
            adopt(loop, node, past)
            events.extend(flush_restored(loop))
        elif loop.stopping or broken:
            why = f"upstream step {broken[0]!r} did not succeed" if broken else "run stopping"
            loop._skip(node, why, events)
        elif node.waiting == 0:
            loop._queue(node, events)
        if self._batch is not None:
            self._batch.extend(events)
            return
        self._submit(events)

    def _submit(self, events: list[AnyEvent]) -> None:
        """Decide what can start, queue the append now (decision order), launch once committed."""
        loop = self.loop
        launch = loop._start_queued(events)
        if not events:
            return
        req = loop.engine.store.submit(loop.stream, events)
        assert loop._tg is not None
        loop._tg.start_soon(self._launch_when_committed, req, launch)

    async def _launch_when_committed(self, req: Any, launch: list[_Node]) -> None:
        if req is not None:
            await req.done.wait()
            if req.error is not None:
                raise req.error
        self.loop._launch(launch)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Declare many steps (``step.map``) in one append."""
        self._batch = []
        try:
            yield
        finally:
            events, self._batch = self._batch, None
            if events:
                self._submit(events)

    async def wait_for(self, step_id: str, output: str) -> ArtifactRef:
        """Wait until a declared step settles; its output's artifact, or StepFailedError."""
        loop = self.loop
        node = loop.nodes[step_id]
        if node.state not in (COMPLETED, FAILED, SKIPPED, CANCELLED):
            if node.done is None:
                node.done = anyio.Event()
            await node.done.wait()
        if node.state != COMPLETED:
            from ._dynamic import failed_error

            state = {FAILED: "failed", SKIPPED: "was skipped", CANCELLED: "was cancelled"}
            error = None
            if node.state == FAILED and loop.failed_step == step_id:
                error = str(loop.first_error)
            raise failed_error(step_id, state[node.state], error)
        return loop.produced[step_id].get(output) if output else None  # type: ignore[return-value]

    async def run_body(self) -> None:
        """Run the pipeline's body, declaring its steps as it calls them; its returned
        handles become the run's outputs."""
        from ._dynamic import CURRENT, DEFAULT_MAX_DYNAMIC_STEPS, DynamicSession, StepHandle

        loop = self.loop
        assert loop.body is not None
        func, params = loop.body
        session = DynamicSession(loop, loop.plan.max_dynamic_steps or DEFAULT_MAX_DYNAMIC_STEPS)
        token = CURRENT.set(session)
        returned: Any = None
        try:
            if inspect.iscoroutinefunction(func):
                returned = await func(**params)
            else:
                returned = await anyio.to_thread.run_sync(
                    functools.partial(func, **params), abandon_on_cancel=True
                )
        except (Exception, SystemExit) as exc:  # sys.exit() in the body fails the run
            log.info("body_failed", run_id=loop.stream, error=str(exc))
            if loop.first_error is None:
                loop.first_error = exc
            events: list[AnyEvent] = []
            loop._stop(f"the pipeline body failed: {exc}", events)
            if loop.plan.execution_mode is ExecutionMode.FAIL_FAST:
                loop._cancel_running()
            if events:
                await loop._append(events)
        finally:
            CURRENT.reset(token)
            session.closed = True
        items = returned if isinstance(returned, tuple | list) else [returned]
        loop.plan.outputs = [h.ref() for h in items if isinstance(h, StepHandle) and h.name]
        loop.body_done = True
        await loop._commit_and_launch([])
