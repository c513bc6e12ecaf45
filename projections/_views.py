"""The views the projections fold events into, and their one binary encoding.

Views are frozen ``msgspec.Struct`` s, so a reducer can only return a new view
(``msgspec.structs.replace``), never edit the one it was given. They are not tracked by the
garbage collector (``gc=False``): every transition allocates one, and a view holds only data
decoded from events, which can never refer back to it (no reference cycle to collect).

Persisted views are stored as msgpack BLOBs written by the single encoder below; a view rebuilt
from the log encodes to the same bytes as the one maintained incrementally.

A run view is stored whole. A step view is stored without what never changes after the step is
declared (its run id, id, name and spec): a ``step_runs`` row is rewritten on every transition,
and the spec is most of a step view's bytes. The row says which event declared the step
instead (its run's ``run.created``, or a ``step.declared`` by seq), and the spec is read back
from that event (:class:`StoredStep`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from events import ArtifactRef, InputRef, StepSpec

from ._status import ExecutionStatus


class RunView(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What is known about a pipeline run, folded from its stream (the stream is the run id).

    Attributes:
        id: the run id (its event stream).
        name: the unique run name.
        pipeline: the pipeline's name.
        status: the run's status.
        created_at: when ``run.created`` was committed (UTC epoch seconds, as every timestamp).
        started_at: when the run first started.
        ended_at: when the run reached its current terminal status (None while it is live).
        parameters: the pipeline's parameters.
        tags: the run's tags.
        dynamic: whether the DAG is declared at run time.
        execution_mode: ``fail_fast``, ``stop_on_failure`` or ``continue_on_failure``.
        code: how to find the pipeline's code again (import path or file path).
        config: the recorded run configuration.
        schedule_id: the schedule that triggered the run, if any.
        tick: the schedule tick the run is for, if any.
        error: why the run failed or crashed.
        failed_step: the invocation id of the step that failed the run.
        owner: the process that runs (or last ran) it.
        outputs: the run's outputs, from ``run.succeeded``.
        step_ids: the DAG's invocation ids in declaration order.
        metadata: run-level metadata logged with ``log_metadata``.
        cancel_requested: whether someone asked for the run to be cancelled.
        last_seq: the seq of the newest event that changed this view.
        version: the stream version of that event.
    """

    id: str
    name: str
    pipeline: str
    status: ExecutionStatus
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    parameters: dict[str, Any] = {}
    tags: list[str] = []
    dynamic: bool = False
    execution_mode: str = "continue_on_failure"
    code: str = ""
    config: dict[str, Any] = {}
    schedule_id: str | None = None
    tick: float | None = None
    error: str | None = None
    failed_step: str | None = None
    owner: str = ""
    outputs: list[InputRef] = []
    step_ids: list[str] = []
    metadata: dict[str, Any] = {}
    cancel_requested: bool = False
    last_seq: int = 0
    version: int = 0


class StepView(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What is known about one step invocation of a run.

    Attributes:
        run_id: the run the step belongs to.
        id: the invocation id (unique within the run).
        name: the step function's name.
        spec: the step as compiled into the DAG.
        status: the step's status.
        attempt: the number of the latest attempt (0 before the first start).
        queued_at: when the step became ready.
        start_time: when the latest attempt started.
        end_time: when the step (or its latest attempt) ended.
        duration: how long the latest attempt took, in seconds.
        outputs: output name -> artifact versions (normally one).
        cache_key: the key the result is cached (or was found) under.
        original_step_run_id: ``"<run id>/<invocation id>"`` of the step run a cache hit reused.
        error: the latest failure's message.
        error_type: the latest failure's exception type.
        retry_due_at: when the next attempt is due, while retrying.
        logs_uri: where the step's captured logs are.
        metadata: metadata logged for the step.
        artifacts: every artifact the step stored, by artifact id (``step.succeeded`` names its
            outputs by id; this is where they are resolved).
        last_seq: the seq of the newest event that changed this view.
    """

    run_id: str
    id: str
    name: str
    spec: StepSpec
    status: ExecutionStatus
    attempt: int = 0
    queued_at: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    duration: float | None = None
    outputs: dict[str, list[ArtifactRef]] = {}
    cache_key: str | None = None
    original_step_run_id: str | None = None
    error: str | None = None
    error_type: str | None = None
    retry_due_at: float | None = None
    logs_uri: str | None = None
    metadata: dict[str, Any] = {}
    artifacts: dict[str, ArtifactRef] = {}
    last_seq: int = 0

    @property
    def step_run_id(self) -> str:
        """The step run's global id, ``"<run id>/<invocation id>"``."""
        return f"{self.run_id}/{self.id}"


class RunState(msgspec.Struct, frozen=True, gc=False):
    """A run and its steps, as of some point of the log.

    Attributes:
        run: the run's view.
        steps: invocation id -> step view, in the run's ``step_ids`` order.
    """

    run: RunView
    steps: dict[str, StepView]


class ArtifactView(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One stored artifact version (a row of the ``artifacts`` table).

    Attributes:
        id: the artifact id.
        name: the artifact's name.
        version: 1, 2, 3... per name, in the order the versions were first stored.
        run_id: the run that stored it.
        step_id: the invocation id of the step that stored it.
        content_hash: the hash of its bytes.
        uri: where its bytes are.
        materializer: the materializer that wrote it.
        type_name: the Python type it was written from.
        size: its size in bytes.
        created_at: when it was stored.
        ref: the same, as the :class:`events.ArtifactRef` that loads it.
    """

    id: str
    name: str
    version: int
    run_id: str
    step_id: str
    content_hash: str
    uri: str
    materializer: str
    type_name: str
    size: int
    created_at: float
    ref: ArtifactRef


class StoredStep(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A ``step_runs.view`` BLOB: a step view without its run id, id, name and spec.

    A msgpack array (no field names): ``spec_seq``, the seq of the ``step.declared`` that
    declared the step (0 when its run's ``run.created`` did), then :class:`StepView`'s fields
    from ``status`` on, in their order. :func:`encode_step` writes it straight from a view.

    ``outputs`` names an artifact that is also in ``artifacts`` by its id only (every output
    of a step the log recorded is): each ref is stored once, which keeps the row about a
    third smaller. Rows written before that, with whole refs, read the same.
    """

    spec_seq: int
    status: ExecutionStatus
    attempt: int
    queued_at: float | None
    start_time: float | None
    end_time: float | None
    duration: float | None
    outputs: dict[str, list[str | ArtifactRef]]
    cache_key: str | None
    original_step_run_id: str | None
    error: str | None
    error_type: str | None
    retry_due_at: float | None
    logs_uri: str | None
    metadata: dict[str, Any]
    artifacts: dict[str, ArtifactRef]
    last_seq: int

    def view(self, run_id: str, spec: StepSpec) -> StepView:
        """The step view this row stores, given the step's run and spec."""
        outputs: dict[str, list[ArtifactRef]] = {}
        if self.outputs:
            arts = self.artifacts
            try:
                outputs = {
                    name: [arts[ref] if isinstance(ref, str) else ref for ref in refs]
                    for name, refs in self.outputs.items()
                }
            except KeyError as exc:
                raise msgspec.ValidationError(
                    f"step {spec.id!r} of run {run_id!r}: output artifact {exc} is not among "
                    "the step's artifacts"
                ) from None
        return StepView(
            run_id=run_id,
            id=spec.id,
            name=spec.name,
            spec=spec,
            status=self.status,
            attempt=self.attempt,
            queued_at=self.queued_at,
            start_time=self.start_time,
            end_time=self.end_time,
            duration=self.duration,
            outputs=outputs,
            cache_key=self.cache_key,
            original_step_run_id=self.original_step_run_id,
            error=self.error,
            error_type=self.error_type,
            retry_due_at=self.retry_due_at,
            logs_uri=self.logs_uri,
            metadata=self.metadata,
            artifacts=self.artifacts,
            last_seq=self.last_seq,
        )


# StepView's fields that never change after the step is declared come first: a stored step is
# the spec's seq followed by the rest, in order (tests pin the two field lists together).
STEP_FIXED_FIELDS = ("run_id", "id", "name", "spec")
_STORED_FROM = len(STEP_FIXED_FIELDS)
_OUTPUTS_AT = list(StepView.__struct_fields__).index("outputs")

# One encoder and one decoder per stored type, created once (msgspec's performance advice).
_encoder = msgspec.msgpack.Encoder()
_run_decoder = msgspec.msgpack.Decoder(RunView)
_stored_step_decoder = msgspec.msgpack.Decoder(StoredStep)
_astuple = msgspec.structs.astuple


def encode_view(view: RunView) -> bytes:
    """The msgpack bytes stored in a ``runs.view`` column."""
    return _encoder.encode(view)


STATUS_VALUE: dict[ExecutionStatus, str] = {status: status.value for status in ExecutionStatus}
"""Each status's value, for ``status`` columns (a dict lookup; ``.value`` is a slow property)."""


def encode_step(view: StepView, spec_seq: int) -> bytes:
    """The bytes stored in a ``step_runs.view`` column: a :class:`StoredStep`.

    Encoded from a tuple (a msgpack array, as ``array_like`` structs are) rather than by
    building a :class:`StoredStep`: this runs for every changed step of every batch.
    """
    fields = _astuple(view)
    outputs = view.outputs
    if not outputs:
        return _encoder.encode((spec_seq, *fields[_STORED_FROM:]))
    arts = view.artifacts
    ids = {name: [_output_id(ref, arts) for ref in refs] for name, refs in outputs.items()}
    return _encoder.encode(
        (spec_seq, *fields[_STORED_FROM:_OUTPUTS_AT], ids, *fields[_OUTPUTS_AT + 1 :])
    )


def _output_id(ref: ArtifactRef, artifacts: dict[str, ArtifactRef]) -> str | ArtifactRef:
    """``ref``'s id when ``artifacts`` holds that very ref (see :class:`StoredStep`)."""
    known = artifacts.get(ref.id)
    return ref.id if known is ref or known == ref else ref


def decode_run(blob: bytes) -> RunView:
    """Decode a ``runs.view`` BLOB."""
    return _run_decoder.decode(blob)


def decode_step(blob: bytes) -> StoredStep:
    """Decode a ``step_runs.view`` BLOB (:meth:`StoredStep.view` makes it a view)."""
    return _stored_step_decoder.decode(blob)
