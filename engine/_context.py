"""What a running step (or hook) can ask about itself: ``get_step_context()``.

The context travels in a ``ContextVar``: anyio copies it into worker threads, so concurrent steps
on the loop or in threads each see their own.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from .errors import MetadataError

if TYPE_CHECKING:
    from ._views import PipelineRunView, StepRunView


@dataclass(slots=True)
class RunContext:
    """Per-run facts shared by every step of the run."""

    run_id: str
    run_name: str
    pipeline_name: str
    home: Any
    pipeline_state: Any = None
    model: Any = None
    pending_metadata: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)
    artifacts: Any = None  # the engine's ArtifactStore (save_artifact)
    pending_artifacts: list[tuple[str, Any]] = field(default_factory=list)  # (step, ArtifactRef)


@dataclass(slots=True)
class StepContext:
    """Returned by :func:`get_step_context` inside a step or a step hook."""

    run: RunContext
    step_name: str
    invocation_id: str
    environment: Mapping[str, str] = field(default_factory=dict)
    attempt: int = 1
    step_model: Any = None

    @property
    def pipeline_run(self) -> PipelineRunView:
        """The run as the log shows it right now."""
        from ._views import load_run_view

        return load_run_view(self.run.home, self.run.run_id)

    @property
    def step_run(self) -> StepRunView:
        """This step's run as the log shows it right now."""
        return self.pipeline_run.steps[self.invocation_id]

    @property
    def pipeline_state(self) -> Any:
        """What the pipeline's ``on_init`` hook returned (None without one)."""
        return self.run.pipeline_state

    @property
    def model(self) -> Any:
        """The step's ``Model`` if it has one, else the pipeline's (None without either)."""
        return self.step_model if self.step_model is not None else self.run.model

    @property
    def pipeline_name(self) -> str:
        return self.run.pipeline_name


_STEP: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "evenflow_step_context", default=None
)
_RUN: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "evenflow_run_context", default=None
)


def get_step_context() -> StepContext:
    """The context of the step running in this task or thread.

    Raises:
        RuntimeError: called outside a running step.
    """
    ctx = _STEP.get()
    if ctx is None:
        raise RuntimeError("get_step_context() was called outside a running step")
    return ctx


@dataclass(slots=True)
class PipelineContext:
    """Returned by :func:`get_pipeline_context` in a pipeline body or hook."""

    run: RunContext

    @property
    def name(self) -> str:
        return self.run.pipeline_name

    @property
    def run_name(self) -> str:
        return self.run.run_name

    @property
    def pipeline_state(self) -> Any:
        return self.run.pipeline_state

    @property
    def model(self) -> Any:
        return self.run.model


def get_pipeline_context() -> PipelineContext:
    """The context of the pipeline run this code belongs to.

    Raises:
        RuntimeError: called outside a pipeline run.
    """
    run = _RUN.get()
    if run is None:
        step = _STEP.get()
        if step is None:
            raise RuntimeError("get_pipeline_context() was called outside a pipeline run")
        run = step.run
    return PipelineContext(run)


def log_metadata(metadata: Mapping[str, Any], **_: Any) -> None:
    """Attach metadata to the current step run (or to the run, outside a step).

    Recorded as a ``metadata.logged`` event when the step finishes.
    """
    step = _STEP.get()
    if step is not None:
        data = _recordable(f"step {step.invocation_id!r}", metadata)
        step.run.pending_metadata.append((step.invocation_id, data))
        return
    run = _RUN.get()
    if run is None:
        raise RuntimeError("log_metadata() was called outside a pipeline run")
    run.pending_metadata.append((None, _recordable(f"run {run.run_name!r}", metadata)))


def _recordable(owner: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` as the ``metadata.logged`` event will hold it; a clear error now, naming
    the key, for what the log cannot record (checked here, not when the step's outcome is
    committed: a bad value must not cost the step its result)."""
    if not isinstance(metadata, Mapping):
        raise MetadataError(
            f"{owner}: log_metadata() takes a mapping, not {type(metadata).__name__}"
        )
    data = dict(metadata)
    for key, value in data.items():
        if not isinstance(key, str):
            raise MetadataError(
                f"{owner}: metadata keys must be strings, got {key!r} ({type(key).__name__})"
            )
        try:
            _metadata_encoder.encode(value)
        except (TypeError, msgspec.EncodeError, OverflowError) as exc:
            raise MetadataError(
                f"{owner}: metadata {key!r} ({type(value).__name__}) cannot be recorded: {exc}"
            ) from None
    return data


_metadata_encoder = msgspec.msgpack.Encoder()
