"""``ArtifactConfig`` names a step's output, ``load_artifact`` loads it by name (and version)."""

from __future__ import annotations

from typing import Annotated

import pytest

from engine import ArtifactConfig, load_artifact, pipeline, step
from engine.errors import ArtifactError


@step(enable_cache=False)
def answer(base: int) -> Annotated[int, ArtifactConfig(name="answer")]:
    return base + 40


@step(enable_cache=False)
def reader() -> int:
    return int(load_artifact("answer", version=1)) + 1  # from inside a step, too


@pipeline
def answers(base: int = 2) -> None:
    answer(base)


@pipeline
def reads() -> None:
    reader()


def test_an_artifact_config_names_the_output_and_load_artifact_reads_its_versions() -> None:
    first = answers(base=2)
    assert first.steps["answer"].outputs["answer"][0].load() == 42
    answers(base=3)
    assert load_artifact("answer") == 43  # the newest version
    assert load_artifact("answer", version=1) == 42
    assert reads().steps["reader"].output.load() == 43


def test_load_artifact_says_what_is_missing() -> None:
    answers(base=2)
    with pytest.raises(ArtifactError, match="no artifact named 'nothing'"):
        load_artifact("nothing")
    with pytest.raises(ArtifactError, match="version 7"):
        load_artifact("answer", version=7)


def test_artifact_config_takes_only_the_options_evenflow_honours() -> None:
    with pytest.raises(TypeError):
        ArtifactConfig(name="x", version="v2")  # type: ignore[call-arg]
