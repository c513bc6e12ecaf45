"""Every event evenflow records, in one module.

Each event is a frozen, tagged ``msgspec.Struct``. The tag (``"step.succeeded"``) is the event's
type as stored in the ``type`` column and shown to users; a tag is never renamed or reused. New
fields are only ever added at the end with a default, so old payloads keep decoding. An event's
stream (the run id for run events, ``schedule:<id>`` for schedules, ...), its per-stream version,
its global ``seq`` and its commit time live in the :class:`Recorded` envelope, not in the payload.

The union :data:`Event` lists every known type; a payload whose tag is not in it decodes to
:class:`UnknownEvent` (written by a newer evenflow), never to a crash.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "InputRef",
    "StepSpec",
    "ArtifactRef",
    "RunCreated",
    "RunStarted",
    "RunSucceeded",
    "RunFailed",
    "RunCancelled",
    "RunCancelRequested",
    "RunCrashed",
    "RunResumed",
    "StepDeclared",
    "StepReady",
    "StepStarted",
    "StepSucceeded",
    "StepFailed",
    "StepRetryScheduled",
    "StepCached",
    "StepSkipped",
    "StepCancelled",
    "StepLogs",
    "ArtifactStored",
    "MetadataLogged",
    "HookStarted",
    "HookSucceeded",
    "HookFailed",
    "ScheduleCreated",
    "ScheduleTriggered",
    "SchedulePaused",
    "ScheduleResumed",
    "ScheduleDeleted",
    "ModelVersionCreated",
    "ModelStageSet",
    "ModelArtifactLinked",
    "RunsDeleted",
    "UnknownEvent",
    "Recorded",
    "Event",
    "AnyEvent",
    "EVENT_TYPES",
    "TAGS",
    "tag_of",
]


class _Base(
    msgspec.Struct, frozen=True, tag_field="type", kw_only=True, omit_defaults=True, gc=False
):
    """Common base: frozen, tagged by ``type``, keyword-only, defaults omitted on the wire.

    Events, and the shapes they carry (:class:`InputRef`, :class:`StepSpec`,
    :class:`ArtifactRef`), are not tracked by the garbage collector: a run makes several per
    step and keeps many of them alive, and tracked, they made every collection walk them (W2
    spent about 8% of its time in the collector). They hold scalars and encodable data only,
    which cannot refer back to them, so they are never part of a reference cycle.
    """


# ---------------------------------------------------------------------------------------------
# Shapes carried inside events
# ---------------------------------------------------------------------------------------------


class InputRef(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """One upstream output feeding a step input: ``(invocation id, output name)``."""

    step: str
    output: str = "output"


class StepSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A step invocation as compiled into a run's DAG.

    ``inputs`` maps an argument name to one upstream output or, for fan-in, a list of them.
    ``parameters`` holds the constant arguments (canonically encodable values).
    """

    id: str
    name: str
    source: str = ""
    code_hash: str = ""
    inputs: dict[str, InputRef | list[InputRef]] = {}
    parameters: dict[str, Any] = {}
    after: list[str] = []
    outputs: list[str] = msgspec.field(default_factory=lambda: ["output"])
    is_async: bool = False
    enable_cache: bool | None = None
    config: dict[str, Any] = {}


class ArtifactRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Where a stored output lives: content-addressed, so equal bytes share one file."""

    id: str
    name: str
    content_hash: str
    uri: str
    materializer: str
    type_name: str
    size: int = 0


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


class RunCreated(_Base, frozen=True, tag="run.created"):
    """A run was compiled and registered. ``steps`` is the static DAG (empty if dynamic)."""

    pipeline: str
    run_name: str
    steps: list[StepSpec] = []
    parameters: dict[str, Any] = {}
    code: str = ""
    # The directory a ``module:name`` code was imported from (its top package's parent), for a
    # module that only the recording process's path could find, as a script's own modules.
    code_root: str = ""
    tags: list[str] = []
    config: dict[str, Any] = {}
    dynamic: bool = False
    execution_mode: str = "continue_on_failure"
    schedule_id: str | None = None
    tick: float | None = None


class RunStarted(_Base, frozen=True, tag="run.started"):
    owner: str = ""
    pid: int = 0
    host: str = ""


class RunSucceeded(_Base, frozen=True, tag="run.succeeded"):
    outputs: list[InputRef] = []


class RunFailed(_Base, frozen=True, tag="run.failed"):
    error: str = ""
    failed_step: str | None = None


class RunCancelled(_Base, frozen=True, tag="run.cancelled"):
    reason: str = ""


class RunCancelRequested(_Base, frozen=True, tag="run.cancel_requested"):
    requested_by: str = ""


class RunCrashed(_Base, frozen=True, tag="run.crashed"):
    owner: str = ""
    reason: str = ""


class RunResumed(_Base, frozen=True, tag="run.resumed"):
    owner: str = ""
    pid: int = 0
    host: str = ""


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------


class StepDeclared(_Base, frozen=True, tag="step.declared"):
    """A dynamic run's body declared a step at run time."""

    spec: StepSpec


class StepReady(_Base, frozen=True, tag="step.ready"):
    step: str


class StepStarted(_Base, frozen=True, tag="step.started"):
    step: str
    attempt: int = 1


class StepSucceeded(_Base, frozen=True, tag="step.succeeded"):
    """The step finished; ``outputs`` maps output name to artifact id (``artifact.stored`` before
    it in the same commit carries each artifact's details). ``cache_key`` is set when the result
    may serve later cache hits."""

    step: str
    attempt: int = 1
    outputs: dict[str, str] = {}
    duration: float = 0.0
    cache_key: str = ""


class StepFailed(_Base, frozen=True, tag="step.failed"):
    step: str
    attempt: int = 1
    error_type: str = ""
    error: str = ""
    traceback: str = ""
    final: bool = True


class StepRetryScheduled(_Base, frozen=True, tag="step.retry_scheduled"):
    step: str
    attempt: int
    due_at: float


class StepCached(_Base, frozen=True, tag="step.cached"):
    """A cache hit: the step's outputs are the source step run's artifacts, reused as they are."""

    step: str
    cache_key: str
    source_run: str
    source_step: str
    outputs: dict[str, ArtifactRef] = {}


class StepSkipped(_Base, frozen=True, tag="step.skipped"):
    step: str
    reason: str = ""


class StepCancelled(_Base, frozen=True, tag="step.cancelled"):
    step: str


class StepLogs(_Base, frozen=True, tag="step.logs"):
    step: str
    uri: str
    size: int = 0


class ArtifactStored(_Base, frozen=True, tag="artifact.stored"):
    step: str
    artifact: ArtifactRef


class MetadataLogged(_Base, frozen=True, tag="metadata.logged"):
    step: str | None = None
    metadata: dict[str, Any] = {}


# ---------------------------------------------------------------------------------------------
# Hooks
# ---------------------------------------------------------------------------------------------


class HookStarted(_Base, frozen=True, tag="hook.started"):
    hook: str
    name: str = ""
    step: str | None = None


class HookSucceeded(_Base, frozen=True, tag="hook.succeeded"):
    hook: str
    name: str = ""
    step: str | None = None


class HookFailed(_Base, frozen=True, tag="hook.failed"):
    hook: str
    name: str = ""
    step: str | None = None
    error: str = ""


# ---------------------------------------------------------------------------------------------
# Schedules (stream ``schedule:<id>``)
# ---------------------------------------------------------------------------------------------


class ScheduleCreated(_Base, frozen=True, tag="schedule.created"):
    schedule_id: str
    name: str
    pipeline: str
    cron_expression: str | None = None
    interval_second: float | None = None
    run_once_start_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    catchup: bool = False
    timezone: str = ""
    parameters: dict[str, Any] = {}
    config: dict[str, Any] = {}
    code: str = ""  # how to import the pipeline again (``module:qualname`` or a file path)
    code_root: str = ""  # where ``module`` was imported from (see RunCreated.code_root)
    created_at: float | None = None  # the registering clock's time (the interval anchor)


class ScheduleTriggered(_Base, frozen=True, tag="schedule.triggered"):
    schedule_id: str
    tick: float
    run_id: str = ""


class SchedulePaused(_Base, frozen=True, tag="schedule.paused"):
    schedule_id: str


class ScheduleResumed(_Base, frozen=True, tag="schedule.resumed"):
    schedule_id: str


class ScheduleDeleted(_Base, frozen=True, tag="schedule.deleted"):
    schedule_id: str


# ---------------------------------------------------------------------------------------------
# Models (stream ``model:<name>``)
# ---------------------------------------------------------------------------------------------


class ModelVersionCreated(_Base, frozen=True, tag="model.version_created"):
    model: str
    version: str
    number: int
    tags: list[str] = []
    run_id: str | None = None


class ModelStageSet(_Base, frozen=True, tag="model.stage_set"):
    model: str
    version: str
    stage: str


class ModelArtifactLinked(_Base, frozen=True, tag="model.artifact_linked"):
    model: str
    version: str
    artifact_id: str
    name: str = ""


# ---------------------------------------------------------------------------------------------
# Retention (stream ``retention``): an audited deletion record.
# ---------------------------------------------------------------------------------------------


class RunsDeleted(_Base, frozen=True, tag="runs.deleted"):
    """Finished runs were deleted (see ``docs/adr/0004-retention.md``). The runs' own events stay
    in the log; the projections drop the runs, their step runs and cache entries, and the
    artifact rows listed in ``artifacts``.

    ``artifacts``: the ids of the artifact versions removed (those no kept run or model version
    references); ``uris``: the content files removed with them (no remaining artifact shares
    their content); ``bytes_freed``: their size on disk when the deletion was decided;
    ``reason``: why (the command or the caller's words); ``actor``: who (``user@host pid N``).
    """

    run_ids: list[str]
    artifacts: list[str] = []
    reason: str = ""
    uris: list[str] = []
    bytes_freed: int = 0
    actor: str = ""


class UnknownEvent(msgspec.Struct, frozen=True):
    """A payload whose tag this version of evenflow does not know (written by a newer one)."""

    type: str
    data: dict[str, Any] = {}


Event = (
    RunCreated
    | RunStarted
    | RunSucceeded
    | RunFailed
    | RunCancelled
    | RunCancelRequested
    | RunCrashed
    | RunResumed
    | StepDeclared
    | StepReady
    | StepStarted
    | StepSucceeded
    | StepFailed
    | StepRetryScheduled
    | StepCached
    | StepSkipped
    | StepCancelled
    | StepLogs
    | ArtifactStored
    | MetadataLogged
    | HookStarted
    | HookSucceeded
    | HookFailed
    | ScheduleCreated
    | ScheduleTriggered
    | SchedulePaused
    | ScheduleResumed
    | ScheduleDeleted
    | ModelVersionCreated
    | ModelStageSet
    | ModelArtifactLinked
    | RunsDeleted
)
"""Every known event type."""

AnyEvent = Event | UnknownEvent

EVENT_TYPES: tuple[type[_Base], ...] = Event.__args__
"""Every known event class, in declaration order."""


def _tag(cls: type[_Base]) -> str:
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


TAGS: dict[str, type[_Base]] = {_tag(cls): cls for cls in EVENT_TYPES}
"""Tag string -> event class."""

# ``__struct_config__`` builds a new object on every access: look tags up by class instead.
_TAG_OF_CLASS: dict[type, str] = {cls: tag for tag, cls in TAGS.items()}


def tag_of(event: AnyEvent) -> str:
    """The stable type string of an event (``"step.succeeded"``)."""
    tag = _TAG_OF_CLASS.get(type(event))
    if tag is not None:
        return tag
    if isinstance(event, UnknownEvent):
        return event.type
    raise TypeError(f"{type(event).__name__} is not an evenflow event")


class Recorded(msgspec.Struct, frozen=True, gc=False):
    """A committed event with its envelope: global ``seq``, ``stream``, per-stream ``version``,
    commit time ``recorded_at`` (UTC epoch seconds), the decoded ``event`` and its chain ``hash``.

    Not tracked by the garbage collector (one is built per committed event; an envelope only
    holds its event and scalars, so it is never part of a reference cycle).
    """

    seq: int
    stream: str
    version: int
    type: str
    recorded_at: float
    event: AnyEvent
    hash: bytes = b""
