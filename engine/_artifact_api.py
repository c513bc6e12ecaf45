"""ZenML's artifact helpers: ``ArtifactConfig`` names an output, ``save_artifact`` stores a
value as an artifact version, ``load_artifact`` loads one.

``Annotated[int, ArtifactConfig(name="answer")]`` names a step's output ``answer`` (as
``Annotated[int, "answer"]`` does); each run of the step stores a new version of it.
``save_artifact(value, "answer")`` stores one more version: inside a step (or a hook) it is
recorded with the step's outcome, as the step's artifact; anywhere else it is appended at once
to the log's ``artifacts`` stream. ``load_artifact("answer")`` loads the newest version from
anywhere (a script, a notebook, another step), and ``load_artifact("answer", version=2)`` an
older one. (``ExternalArtifact`` is in ``_external``.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass
from typing import Any, cast

from events import ArtifactRef, ArtifactStored
from projections import ARTIFACTS_STREAM

from .errors import ArtifactError


@dataclass(frozen=True)
class ArtifactConfig:
    """An output's artifact name, given in its annotation: ``Annotated[T, ArtifactConfig(name=
    "model")]``. (ZenML's other options, versions and tags among them, are not supported: the
    log numbers versions itself.)"""

    name: str | None = None


def save_artifact(data: Any, name: str, *, materializer: Any = None) -> ArtifactRef:
    """Store ``data`` as a new version of the artifact ``name``; returns its reference (its
    ``id``; the version number is given when the log records it, see ``load_artifact``).

    Inside a step or a hook, the version is recorded with the step's outcome (or the run's);
    elsewhere it is recorded before this returns. ``materializer``: as a step's
    ``output_materializers`` (by default chosen from the value's type).

    Raises:
        ArtifactError: ``data`` cannot be stored.
    """
    from ._context import _RUN, _STEP

    if not name:
        raise ArtifactError("save_artifact() needs a name for the artifact")
    step = _STEP.get()
    run = step.run if step is not None else _RUN.get()
    if run is not None and run.artifacts is not None:
        ref = run.artifacts.save(data, name=name, materializer=materializer)
        run.pending_artifacts.append((step.invocation_id if step is not None else "", ref))
        return cast(ArtifactRef, ref)
    return _save_outside_a_run(data, name, materializer)


def _save_outside_a_run(data: Any, name: str, materializer: Any) -> ArtifactRef:
    import anyio

    from ._engine import Engine

    async def save() -> ArtifactRef:
        async with Engine.open() as engine:
            ref = engine.artifacts.save(data, name=name, materializer=materializer)
            await engine.store.append(ARTIFACTS_STREAM, [ArtifactStored(step="", artifact=ref)])
            return ref

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no event loop in this thread: run one here
        return anyio.run(save, backend="asyncio")
    # Called from async code outside a run: its loop cannot be re-entered, so a thread runs one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, save).result()


def load_artifact(name: str, version: int | None = None) -> Any:
    """The value of the artifact ``name``: its newest version, or ``version``.

    Raises:
        ArtifactError: no artifact of that name (or version) is in the home, or it cannot be
            loaded.
    """
    from .client import Client

    return Client().get_artifact_version(name, version).load()
