"""Running one step attempt: load its inputs, call it, check and store its outputs.

Sync steps run in the run's worker threads (``_threads.StepThreads``; as many at once as the run
loop's workers, its ``max_concurrency``, never anyio's default 40), and the thread does the whole
attempt (inputs, call, outputs) so an attempt costs one thread hop. Async steps run on the event
loop.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio

from events import ArtifactRef, InputRef

from ._artifacts import ArtifactStore, check_output_type
from ._context import _STEP, StepContext
from ._external import ExternalArtifact
from ._threads import StepThreads
from .errors import StepOutputError, StepTimeoutError

if TYPE_CHECKING:
    from ._step import BaseStep


def _resolve_inputs(
    artifacts: ArtifactStore,
    inputs: Mapping[str, InputRef | list[InputRef]],
    produced: Mapping[str, Mapping[str, ArtifactRef]],
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, ref in inputs.items():
        if isinstance(ref, list):
            values[name] = [artifacts.load(produced[r.step][r.output]) for r in ref]
        else:
            values[name] = artifacts.load(produced[ref.step][ref.output])
    return values


def _in_memory(
    artifacts: ArtifactStore,
    inputs: Mapping[str, InputRef | list[InputRef]],
    produced: Mapping[str, Mapping[str, ArtifactRef]],
) -> bool:
    """Whether every input loads without reading a file (see ``ArtifactStore.in_memory``)."""
    for ref in inputs.values():
        refs = ref if isinstance(ref, list) else [ref]
        if not all(artifacts.in_memory(produced[r.step][r.output]) for r in refs):
            return False
    return True


def _parameters(
    kwargs: dict[str, Any],
    parameters: Mapping[str, Any],
    artifacts: ArtifactStore,
    ctx: StepContext,
) -> None:
    """The step's parameters into ``kwargs``: an :class:`ExternalArtifact` as its value, stored
    (on the step's first attempt) as a version of an artifact named after the input."""
    for name, value in parameters.items():
        if type(value) is ExternalArtifact:
            if ctx.attempt == 1:
                ref = artifacts.save(value.value, name=name, materializer=value.materializer)
                ctx.run.pending_artifacts.append((ctx.invocation_id, ref))
            value = value.value
        kwargs[name] = value


def _output_values(step: BaseStep, invocation: str, result: Any) -> list[tuple[Any, Any]]:
    """(output spec, value) pairs, checked against the declared outputs and annotations."""
    outputs = step.signature.outputs
    if not outputs:
        if result is not None:
            raise StepOutputError(
                f"step {invocation!r} declares no outputs (-> None) but returned a "
                f"{type(result).__name__}"
            )
        return []
    if len(outputs) == 1:
        values: tuple[Any, ...] = (result,)
    else:
        if not isinstance(result, tuple | list) or len(result) != len(outputs):
            got = len(result) if isinstance(result, tuple | list) else 1
            names = ", ".join(o.name for o in outputs)
            raise StepOutputError(
                f"step {invocation!r} returned {got} value(s) but declares {len(outputs)} "
                f"outputs ({names})"
            )
        values = tuple(result)
    pairs = []
    for spec, value in zip(outputs, values, strict=True):
        check_output_type(invocation, spec.name, value, spec.annotation)
        pairs.append((spec, value))
    return pairs


def _save_args(step: BaseStep, spec: Any) -> tuple[Any, Any]:
    materializers = step.options.output_materializers
    if isinstance(materializers, Mapping):
        materializer = materializers.get(spec.name)
    else:
        materializer = materializers
    data_type = spec.annotation if isinstance(spec.annotation, type) else None
    return materializer, data_type


async def _store_outputs_async(
    artifacts: ArtifactStore,
    step: BaseStep,
    invocation: str,
    result: Any,
    limiter: anyio.CapacityLimiter,
) -> dict[str, ArtifactRef]:
    """Outputs of an async step: content already stored costs nothing; new content is written
    in a worker thread, so creating files never blocks the event loop."""
    refs: dict[str, ArtifactRef] = {}
    for spec, value in _output_values(step, invocation, result):
        materializer, data_type = _save_args(step, spec)
        ref = artifacts.save_if_known(
            value, name=spec.name, materializer=materializer, data_type=data_type
        )
        if ref is None:
            save = functools.partial(
                artifacts.save,
                value,
                name=spec.name,
                materializer=materializer,
                data_type=data_type,
            )
            ref = await anyio.to_thread.run_sync(save, limiter=limiter)
        refs[spec.name] = ref
    return refs


def _store_outputs(
    artifacts: ArtifactStore, step: BaseStep, invocation: str, result: Any
) -> dict[str, ArtifactRef]:
    """Outputs of a sync step (already in a worker thread): checked, then stored."""
    refs: dict[str, ArtifactRef] = {}
    for spec, value in _output_values(step, invocation, result):
        materializer, data_type = _save_args(step, spec)
        refs[spec.name] = artifacts.save(
            value, name=spec.name, materializer=materializer, data_type=data_type
        )
    return refs


class StepExecutor:
    """Runs step attempts for one run."""

    def __init__(self, artifacts: ArtifactStore, thread_limiter: anyio.CapacityLimiter) -> None:
        self.artifacts = artifacts
        self.thread_limiter = thread_limiter  # artifact saves of async steps, and hooks
        self.threads = StepThreads()  # sync steps' attempts (closed by the run loop)

    def _attempt_sync(
        self,
        step: BaseStep,
        ctx: StepContext,
        inputs: Mapping[str, InputRef | list[InputRef]],
        parameters: Mapping[str, Any],
        produced: Mapping[str, Mapping[str, ArtifactRef]],
    ) -> dict[str, ArtifactRef]:
        token = _STEP.set(ctx)
        try:
            kwargs = _resolve_inputs(self.artifacts, inputs, produced)
            _parameters(kwargs, parameters, self.artifacts, ctx)
            result = step.entrypoint(**kwargs)
            return _store_outputs(self.artifacts, step, ctx.invocation_id, result)
        finally:
            _STEP.reset(token)

    async def _attempt_async(
        self,
        step: BaseStep,
        ctx: StepContext,
        inputs: Mapping[str, InputRef | list[InputRef]],
        parameters: Mapping[str, Any],
        produced: Mapping[str, Mapping[str, ArtifactRef]],
    ) -> dict[str, ArtifactRef]:
        token = _STEP.set(ctx)
        try:
            kwargs: dict[str, Any] = {}
            if inputs:
                load = functools.partial(_resolve_inputs, self.artifacts, inputs, produced)
                if _in_memory(self.artifacts, inputs, produced):
                    kwargs = load()
                else:  # reading files (maybe large ones) must not stall the event loop
                    kwargs = await anyio.to_thread.run_sync(load, limiter=self.thread_limiter)
            _parameters(kwargs, parameters, self.artifacts, ctx)
            result = await step.entrypoint(**kwargs)
            return await _store_outputs_async(
                self.artifacts, step, ctx.invocation_id, result, self.thread_limiter
            )
        finally:
            _STEP.reset(token)

    async def run(
        self,
        step: BaseStep,
        ctx: StepContext,
        inputs: Mapping[str, InputRef | list[InputRef]],
        parameters: Mapping[str, Any],
        produced: Mapping[str, Mapping[str, ArtifactRef]],
    ) -> dict[str, ArtifactRef]:
        """One attempt; returns output name -> stored artifact. Raises what the step raised,
        :class:`StepOutputError` for bad outputs or :class:`StepTimeoutError`."""
        timeout = step.options.timeout
        if step.signature.is_async:
            if timeout is None:
                return await self._attempt_async(step, ctx, inputs, parameters, produced)
            with anyio.move_on_after(timeout) as scope:
                return await self._attempt_async(step, ctx, inputs, parameters, produced)
            if scope.cancelled_caught:
                raise StepTimeoutError(f"step {ctx.invocation_id!r} timed out after {timeout} s")
            raise AssertionError("unreachable")  # pragma: no cover
        call = self.threads.run
        if timeout is None:
            return await call(self._attempt_sync, step, ctx, inputs, parameters, produced)
        # A thread cannot be killed: past its timeout the attempt is abandoned (it may finish in
        # the background, its result discarded) and recorded as failed.
        with anyio.move_on_after(timeout) as scope:
            return await call(self._attempt_sync, step, ctx, inputs, parameters, produced)
        if scope.cancelled_caught:
            raise StepTimeoutError(
                f"step {ctx.invocation_id!r} timed out after {timeout} s (its thread was "
                "abandoned; it cannot be killed)"
            )
        raise AssertionError("unreachable")  # pragma: no cover
