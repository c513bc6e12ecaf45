"""ZenML's artifact helpers: ``ArtifactConfig`` names an output, ``load_artifact`` loads one.

``Annotated[int, ArtifactConfig(name="answer")]`` names a step's output ``answer`` (as
``Annotated[int, "answer"]`` does); each run of the step stores a new version of it.
``load_artifact("answer")`` loads the newest version from the home's log, from anywhere (a
script, a notebook, another step), and ``load_artifact("answer", version=2)`` an older one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ArtifactConfig:
    """An output's artifact name, given in its annotation: ``Annotated[T, ArtifactConfig(name=
    "model")]``. (ZenML's other options, versions and tags among them, are not supported: the
    log numbers versions itself.)"""

    name: str | None = None


def load_artifact(name: str, version: int | None = None) -> Any:
    """The value of the artifact ``name``: its newest version, or ``version``.

    Raises:
        ArtifactError: no artifact of that name (or version) is in the home, or it cannot be
            loaded.
    """
    from .client import Client

    return Client().get_artifact_version(name, version).load()
