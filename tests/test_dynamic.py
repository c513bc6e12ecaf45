"""Dynamic pipelines: the body runs for real, declares steps as it goes; the log keeps the DAG."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from engine import (
    Client,
    ExecutionStatus,
    PipelineRunFailedError,
    StepFailedError,
    pipeline,
    step,
    unmapped,
)
from engine.errors import EngineError, PipelineDefinitionError
from examples.seed_dynamic import dynamic_training_pipeline


@step
def number(n: int) -> int:
    return n


@step
def double(x: int) -> int:
    return 2 * x


@step
def add(x: int, y: int) -> int:
    return x + y


@step
def total(values: list[int]) -> int:
    return sum(values)


@step
async def slow_square(x: int) -> int:
    await anyio.sleep(0.01)
    return x * x


@step
def fragile(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad")
    return x


def test_seed_dynamic_example_and_a_cached_second_run() -> None:
    first = dynamic_training_pipeline(model_types=["linear", "tree", "forest"])
    assert first.status is ExecutionStatus.COMPLETED
    assert list(first.steps) == [
        "load_data",
        "train_linear",
        "train_tree",
        "train_forest",
        "select_best",
    ]
    assert first.steps["select_best"].output.load()["model_type_id"] == 6.0
    assert [a.load()["model_type_id"] for a in first.outputs] == [6.0]
    second = dynamic_training_pipeline(model_types=["linear", "tree", "forest"])
    assert {s.status for s in second.steps.values()} == {ExecutionStatus.CACHED}
    assert second.steps["train_tree"].original_step_run_id == f"{first.id}/train_tree"


def test_the_body_branches_on_loaded_values() -> None:
    @pipeline(dynamic=True)
    def branching(n: int) -> None:
        value = double(number(n)).load()
        if value > 10:
            add(value, 1, id="big")
        else:
            total([number(value), number(1)], id="small")

    big = branching(n=6)
    small = branching(n=2)
    assert "big" in big.steps
    assert "small" not in big.steps
    assert big.steps["big"].output.load() == 13
    assert "small" in small.steps
    assert small.steps["small"].output.load() == 5


def test_map_over_a_thousand_items_with_reduce() -> None:
    @pipeline(dynamic=True, max_concurrency=64)
    def mapped(n: int) -> int:
        squares = slow_square.map(range(n))
        return total(squares)

    started = time.perf_counter()
    run = mapped(n=1000)
    elapsed = time.perf_counter() - started
    assert run.steps["total"].output.load() == sum(x * x for x in range(1000))
    assert len(run.steps) == 1001
    assert elapsed < 30  # 1,000 x 10 ms sequentially would be 10 s; concurrency makes it fast


def test_map_with_unmapped_and_a_handle() -> None:
    @pipeline(dynamic=True)
    def mapped() -> int:
        base = number(10)
        sums = add.map(x=[1, 2, 3], y=unmapped(base))
        return total(sums)

    run = mapped()
    assert run.steps["total"].output.load() == 36


def test_async_body_awaits_handles() -> None:
    @pipeline(dynamic=True)
    async def async_body(n: int) -> int:
        doubled = await double(number(n))
        handles = [double(number(i, id=f"n{i}")) for i in range(doubled)]
        return total(handles)

    run = async_body(n=2)
    assert run.steps["total"].output.load() == 2 * sum(range(4))


def test_submit_returns_a_future() -> None:
    seen: dict[str, Any] = {}

    @pipeline(dynamic=True)
    def submitting() -> None:
        future = double.submit(number(4))
        seen["value"] = future.result()

    submitting()
    assert seen["value"] == 8


def test_a_failed_mapped_step_surfaces_in_the_body_and_fails_the_run() -> None:
    caught: list[str] = []

    @pipeline(dynamic=True)
    def failing() -> None:
        handles = fragile.map([1, 2, 3, 4])
        try:
            for handle in handles:
                handle.load()
        except StepFailedError as exc:
            caught.append(str(exc))
        number(99, id="after_failure")

    with pytest.raises(PipelineRunFailedError) as info:
        failing()
    run = info.value.run
    assert caught
    assert "three is bad" in caught[0]
    assert run.steps["fragile_3"].status is ExecutionStatus.FAILED
    # stop_on_failure (the dynamic default): nothing new starts after the failure
    assert run.steps["after_failure"].status is ExecutionStatus.SKIPPED


def test_a_failing_body_fails_the_run() -> None:
    @pipeline(dynamic=True)
    def broken_body() -> None:
        number(1)
        raise RuntimeError("body broke")

    with pytest.raises(PipelineRunFailedError) as info:
        broken_body()
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.run.status is ExecutionStatus.FAILED


def test_the_dag_read_back_from_the_log_equals_what_ran() -> None:
    @pipeline(dynamic=True)
    def shaped() -> int:
        a = number(1)
        b = double(a)
        return total([a, b])

    run = shaped()
    declared = [e for e in run.events() if e.type == "step.declared"]
    assert [e.spec.id for e in declared] == ["number", "double", "total"]
    view = Client().get_pipeline_run(run.id)
    assert view.steps["total"].spec.inputs["values"] == declared[2].spec.inputs["values"]
    assert [r.step for r in view.steps["total"].spec.inputs["values"]] == ["number", "double"]
    # the run view never re-executes the body: the spec comes from the log
    assert view.steps["double"].spec.inputs["x"].step == "number"


def test_loading_a_handle_outside_its_run() -> None:
    kept: list[Any] = []

    @pipeline(dynamic=True)
    def keeps() -> None:
        kept.append(number(5))

    keeps()
    with pytest.raises(EngineError, match="outside its run"):
        kept[0].load()


def test_max_dynamic_steps() -> None:
    @pipeline(dynamic=True, max_dynamic_steps=3)
    def too_many() -> None:
        for i in range(5):
            number(i)

    with pytest.raises(PipelineRunFailedError) as info:
        too_many()
    assert isinstance(info.value.__cause__, PipelineDefinitionError)
    assert "max_dynamic_steps=3" in str(info.value.__cause__)


def test_duplicate_explicit_id_in_a_dynamic_body() -> None:
    @pipeline(dynamic=True)
    def dup() -> None:
        number(1, id="x")
        number(2, id="x")

    with pytest.raises(PipelineRunFailedError) as info:
        dup()
    assert "duplicate step id 'x'" in str(info.value.__cause__)
