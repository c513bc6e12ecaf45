"""The model control plane, as events: versions, stages and linked artifacts of a ``Model``.

Each model has its own stream, ``model:<name>``. A successful run whose pipeline has a ``Model``
appends, in one commit: ``model.version_created`` (when the version is new), one
``model.artifact_linked`` per artifact the run produced, and ``model.stage_set`` when the
model's version names a stage. ``Model(version="production")`` links the run to the version
that holds the stage, or, when none does yet, creates a version and gives it the stage (so a
first training run on an empty home works). A number or a name links to that version, creating
it if needed; ``None`` creates the next numbered version.

Views of models are folded from the stream on demand (a model has few events).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from events import (
    AnyEvent,
    ArtifactRef,
    ConcurrencyError,
    ModelArtifactLinked,
    ModelStageSet,
    ModelVersionCreated,
    Recorded,
)

from .errors import EngineError

if TYPE_CHECKING:
    from ._engine import Engine

STAGES = ("production", "staging", "latest", "archived")


@dataclass(slots=True)
class ModelVersionView:
    """One version of a model (``Client().get_model_version(name, version)``)."""

    model: str
    version: str
    number: int
    tags: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    stage: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)  # artifact id -> output name

    @property
    def name(self) -> str:
        return self.version


@dataclass(slots=True)
class ModelState:
    """A model folded from its stream."""

    name: str
    versions: dict[str, ModelVersionView] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)  # stage -> version
    version: int = 0

    def latest(self) -> ModelVersionView | None:
        if not self.versions:
            return None
        return max(self.versions.values(), key=lambda v: v.number)

    def find(self, version: str | int | None) -> ModelVersionView | None:
        """A version by stage, name or number (``None`` and ``"latest"``: the newest)."""
        if version is None or version == "latest":
            return self.latest()
        if isinstance(version, int) or (isinstance(version, str) and version.isdigit()):
            number = int(version)
            return next((v for v in self.versions.values() if v.number == number), None)
        if version in self.stages:
            return self.versions.get(self.stages[version])
        return self.versions.get(version)


def stream_of(name: str) -> str:
    return f"model:{name}"


def fold_model(name: str, records: Iterable[Recorded]) -> ModelState:
    """Fold a model's stream (records of other streams are ignored)."""
    state = ModelState(name)
    stream = stream_of(name)
    for rec in records:
        if rec.stream != stream:
            continue
        state.version = rec.version
        event = rec.event
        if isinstance(event, ModelVersionCreated):
            state.versions[event.version] = ModelVersionView(
                name, event.version, event.number, list(event.tags)
            )
            if event.run_id:
                state.versions[event.version].run_ids.append(event.run_id)
        elif isinstance(event, ModelStageSet):
            for view in state.versions.values():
                if view.stage == event.stage:
                    view.stage = None
            state.stages[event.stage] = event.version
            if event.version in state.versions:
                state.versions[event.version].stage = event.stage
        elif isinstance(event, ModelArtifactLinked) and event.version in state.versions:
            state.versions[event.version].artifacts[event.artifact_id] = event.name
    return state


def _decide(
    state: ModelState, model: Any, run_id: str, artifacts: Iterable[ArtifactRef]
) -> list[AnyEvent]:
    requested = model.version
    stage = requested if isinstance(requested, str) and requested in STAGES else None
    target = state.find(requested) if requested is not None else None
    if stage == "latest":
        stage = None
    events: list[AnyEvent] = []
    if target is None:
        number = (state.latest().number if state.versions else 0) + 1  # type: ignore[union-attr]
        name = str(number) if requested is None or stage is not None else str(requested)
        events.append(
            ModelVersionCreated(
                model=state.name,
                version=name,
                number=number,
                tags=list(model.tags or []),
                run_id=run_id,
            )
        )
        version = name
    else:
        version = target.version
    for ref in artifacts:
        events.append(
            ModelArtifactLinked(
                model=state.name, version=version, artifact_id=ref.id, name=ref.name
            )
        )
    if stage is not None and state.stages.get(stage) != version:
        events.append(ModelStageSet(model=state.name, version=version, stage=stage))
    return events


async def link_run(
    engine: Engine, model: Any, run_id: str, artifacts: Iterable[ArtifactRef]
) -> None:
    """Record that run ``run_id`` produced ``artifacts`` for ``model`` (retries on races)."""
    refs = list(artifacts)
    stream = stream_of(model.name)
    for _ in range(20):
        state = fold_model(model.name, await engine.store.read_stream(stream))
        events = _decide(state, model, run_id, refs)
        try:
            await engine.store.append(stream, events, expected_version=state.version)
            return
        except ConcurrencyError:
            continue  # another run linked the same model meanwhile: fold again
    raise EngineError(f"model {model.name!r}: could not record run {run_id} (too many races)")
