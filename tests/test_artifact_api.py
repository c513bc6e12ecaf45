"""``ArtifactConfig`` names a step's output, ``save_artifact`` stores a version of an artifact,
``load_artifact`` loads one."""

from __future__ import annotations

from typing import Annotated

import pytest

from engine import ArtifactConfig, ExternalArtifact, load_artifact, pipeline, save_artifact, step
from engine.errors import ArtifactError, InvalidParameterError


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


@step(enable_cache=False)
def saves_extra(n: int) -> int:
    save_artifact({"rows": n}, "report")  # a side artifact, beside the step's output
    return n


@step(enable_cache=False)
async def saves_extra_async(n: int) -> int:
    save_artifact([n, n], "pairs")
    return n


@pipeline
def side_artifacts(n: int = 5) -> None:
    saves_extra(n)
    saves_extra_async(n)


def test_save_artifact_in_a_step_records_a_version_with_the_steps_outcome() -> None:
    run = side_artifacts(n=5)
    assert load_artifact("report") == {"rows": 5}
    assert load_artifact("pairs") == [5, 5]
    side_artifacts(n=6)
    assert load_artifact("report") == {"rows": 6}
    assert load_artifact("report", version=1) == {"rows": 5}
    stored = [e for e in run.events() if e.type == "artifact.stored"]
    assert {(e.step, e.artifact.name) for e in stored} >= {
        ("saves_extra", "report"),
        ("saves_extra_async", "pairs"),
    }


def test_save_artifact_outside_a_run_is_recorded_at_once_and_survives_a_rebuild() -> None:
    from engine import Client

    first = save_artifact("v1", "dataset")
    second = save_artifact("v2", "dataset")
    assert first.id != second.id
    assert load_artifact("dataset") == "v2"
    assert load_artifact("dataset", version=1) == "v1"
    Client().rebuild_projections()  # the log's "artifacts" stream folds into the same rows
    assert load_artifact("dataset") == "v2"
    assert load_artifact("dataset", version=1) == "v1"


def test_save_artifact_from_async_code_outside_a_run() -> None:
    import anyio

    async def main() -> str:
        return str(save_artifact(3.5, "threshold").id)

    saved = anyio.run(main)
    assert saved
    assert load_artifact("threshold") == 3.5


def test_save_artifact_needs_a_name() -> None:
    with pytest.raises(ArtifactError, match="needs a name"):
        save_artifact(1, "")


# -- ExternalArtifact -------------------------------------------------------------------------


class Table:
    """A value msgspec cannot encode (stored by the pickle fallback), as a data frame is."""

    def __init__(self, rows: list[tuple[str, int]]) -> None:
        self.rows = rows

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Table) and other.rows == self.rows

    __hash__ = None  # type: ignore[assignment]


received: list[Table] = []


@step
def total(data: Table, scale: int = 1) -> int:
    received.append(data)
    return sum(n for _, n in data.rows) * scale


@pipeline
def totals(rows: list[tuple[str, int]]) -> None:
    total(data=ExternalArtifact(value=Table(rows)))  # a value made (or loaded) in the body


def test_an_external_artifact_reaches_the_step_and_its_content_keys_the_cache() -> None:
    received.clear()
    table = Table([("a", 1), ("b", 2)])
    run = totals(rows=[("a", 1), ("b", 2)])
    assert received == [table]
    assert run.steps["total"].output.load() == 3
    # The log holds the content hash, not the value; the value is an artifact version.
    recorded = run.events()[0].steps[0].parameters["data"]
    assert set(recorded) == {"external_artifact"}
    assert load_artifact("data") == table
    again = totals(rows=[("a", 1), ("b", 2)])  # equal content, another object
    assert again.steps["total"].status.value == "cached"
    changed = totals(rows=[("a", 1), ("b", 5)])
    assert changed.steps["total"].status.value == "completed"
    assert changed.steps["total"].output.load() == 6
    assert len(received) == 2


def test_an_external_artifact_that_cannot_be_stored_fails_at_compile() -> None:
    import threading

    @pipeline
    def lock_in() -> None:
        total(data=ExternalArtifact(value=threading.Lock()))

    with pytest.raises(InvalidParameterError, match="input 'data' is an ExternalArtifact"):
        lock_in()
