"""Dynamic pipelines: the body runs for real and declares its steps while the run goes.

Inside a ``@pipeline(dynamic=True)`` body a step call declares an invocation and returns a
:class:`StepHandle` at once. Passing handles (or lists of them) to another step call makes data
edges; ``handle.load()`` (``await handle`` in an ``async def`` body) waits for the step and
returns its value, so the body can branch on data. Each declaration is decided on the event loop
and appended as ``step.declared`` (with ``step.ready``/``step.started`` when it can start at once)
in the same synchronous step, so the log always holds the DAG as it was discovered: views and
replays never run the body again.

Sync bodies run in a worker thread and reach the loop through ``anyio.from_thread``; async
bodies run on the loop itself.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread

from ._compile import Compilation, StepOutput
from .errors import EngineError, PipelineDefinitionError, StepFailedError

if TYPE_CHECKING:
    from ._run import RunLoop
    from ._step import BaseStep

DEFAULT_MAX_DYNAMIC_STEPS = 100_000


@dataclass(frozen=True, slots=True, repr=False)
class StepHandle(StepOutput):
    """A step's output in a dynamic body: pass it to other steps, or ``load()`` it."""

    session: DynamicSession | None = field(default=None, compare=False)

    def load(self) -> Any:
        """Wait for the step and return this output's value.

        Raises:
            StepFailedError: the step failed, was skipped or cancelled.
            EngineError: the handle's run is over (loading outside its run).
        """
        session = self.session
        if session is None or session.closed:
            raise EngineError(
                f"output {self.name!r} of step {self.invocation_id!r} was loaded outside its "
                "run; load handles inside the dynamic pipeline body"
            )
        if session.on_loop_thread():
            raise EngineError(
                f"handle.load() of step {self.invocation_id!r} would block the event loop; "
                "in an async pipeline body use `await handle`"
            )
        return anyio.from_thread.run(session.value, self)

    result = load

    def __await__(self) -> Generator[Any, None, Any]:
        session = self.session
        if session is None or session.closed:
            raise EngineError(
                f"output {self.name!r} of step {self.invocation_id!r} was awaited outside its run"
            )
        return session.value(self).__await__()

    def __repr__(self) -> str:
        return f"StepHandle({self.invocation_id}.{self.name})"


@dataclass(frozen=True, slots=True)
class unmapped:
    """Wrap an argument of ``step.map(...)`` that every mapped invocation gets whole."""

    value: Any


class DynamicSession:
    """The link between a dynamic body and its run loop."""

    def __init__(self, loop: RunLoop, max_steps: int) -> None:
        self.loop = loop
        self.compilation = Compilation(loop.plan.pipeline)
        self.max_steps = max_steps
        self.closed = False
        self._thread = threading.get_ident()

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread

    # -- declaring (always on the loop thread) ---------------------------------------------

    def _declare(
        self, step: BaseStep, args: Sequence[Any], kwargs: dict[str, Any], id: Any, after: Any
    ) -> Any:
        if self.closed:
            raise EngineError(f"step {step.name!r} was called after its dynamic run ended")
        if len(self.compilation.invocations) >= self.max_steps:
            raise PipelineDefinitionError(
                f"pipeline {self.loop.plan.pipeline!r} declared more than max_dynamic_steps="
                f"{self.max_steps} steps"
            )
        if step.options.parameters:
            kwargs = {**step.options.parameters, **kwargs}
        inv = self.compilation.add(step, args, kwargs, id, after)
        for target in inv.after:
            if target not in self.compilation.invocations:
                raise PipelineDefinitionError(
                    f"pipeline {self.loop.plan.pipeline!r}, step {inv.id!r}: after={target!r} "
                    "names no step declared so far"
                )
        self.loop.dynamic.declare(inv)
        handles = [StepHandle(inv.id, o.name, self) for o in step.signature.outputs]
        if not handles:
            return StepHandle(inv.id, "", self)
        return handles[0] if len(handles) == 1 else tuple(handles)

    def call(
        self, step: BaseStep, args: Sequence[Any], kwargs: dict[str, Any], id: Any, after: Any
    ) -> Any:
        """A step call in the body: declare it and return its handle(s) at once."""
        if self.on_loop_thread():
            return self._declare(step, args, kwargs, id, after)
        return anyio.from_thread.run_sync(self._declare, step, args, kwargs, id, after)

    def map(self, step: BaseStep, args: Sequence[Any], kwargs: dict[str, Any]) -> list[Any]:
        """``step.map(...)``: one invocation per item of the mapped arguments (zipped)."""
        args = [self._items(a) for a in args]
        kwargs = {k: self._items(v) for k, v in kwargs.items()}
        mapped = [a for a in (*args, *kwargs.values()) if not isinstance(a, unmapped)]
        if not mapped:
            raise PipelineDefinitionError(f"step {step.name!r}.map() needs an iterable argument")
        sizes = {len(m) for m in mapped}
        if len(sizes) != 1:
            raise PipelineDefinitionError(
                f"step {step.name!r}.map() got iterables of different lengths {sorted(sizes)}"
            )
        (size,) = sizes
        calls = []
        for i in range(size):
            call_args = [a.value if isinstance(a, unmapped) else a[i] for a in args]
            call_kwargs = {
                k: v.value if isinstance(v, unmapped) else v[i] for k, v in kwargs.items()
            }
            calls.append((call_args, call_kwargs))
        if self.on_loop_thread():
            return self._declare_many(step, calls)
        return anyio.from_thread.run_sync(self._declare_many, step, calls)

    def _declare_many(
        self, step: BaseStep, calls: list[tuple[list[Any], dict[str, Any]]]
    ) -> list[Any]:
        with self.loop.dynamic.batch():
            return [self._declare(step, a, k, None, None) for a, k in calls]

    def _items(self, value: Any) -> Any:
        if isinstance(value, unmapped):
            return value
        if isinstance(value, StepHandle):
            if self.on_loop_thread():
                raise EngineError(
                    "step.map() over a step output in an async body: `await` the handle first "
                    "and map over the value"
                )
            value = value.load()
        if isinstance(value, list | tuple | range):
            return list(value)
        if isinstance(value, Iterable) and not isinstance(value, str | bytes | dict):
            return list(value)
        return unmapped(value)

    # -- waiting ---------------------------------------------------------------------------

    async def value(self, handle: StepOutput) -> Any:
        """Wait for the handle's step; its output value (loaded from the artifact store)."""
        ref = await self.loop.dynamic.wait_for(handle.invocation_id, handle.name)
        if not handle.name:
            return None
        artifacts = self.loop.engine.artifacts
        if self.on_loop_thread() and artifacts.in_memory(ref):
            return artifacts.load(ref)
        return await anyio.to_thread.run_sync(artifacts.load, ref)


CURRENT: contextvars.ContextVar[DynamicSession | None] = contextvars.ContextVar(
    "evenflow_dynamic_session", default=None
)


def failed_error(step: str, state: str, error: str | None) -> StepFailedError:
    return StepFailedError(f"step {step!r} {state}" + (f": {error}" if error else ""))
