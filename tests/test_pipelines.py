"""Static pipelines end to end: DAG, concurrency, outputs, failures, bad input."""

from __future__ import annotations

import time
from typing import Annotated, Any

import anyio
import pytest

from engine import (
    Client,
    ExecutionStatus,
    PipelineRunFailedError,
    get_step_context,
    pipeline,
    step,
)
from engine.errors import (
    InvalidParameterError,
    PipelineDefinitionError,
    StepOutputError,
)
from tests.pipelines import basic


def test_chain_runs_and_returns_the_finished_run() -> None:
    run = basic.chain(start=5)
    assert run.status is ExecutionStatus.COMPLETED
    assert list(run.steps) == ["make_number", "add_one", "add_one_2"]
    assert run.steps["add_one_2"].output.load() == 7
    assert run.steps["make_number"].outputs["output"][0].load() == 5
    assert [a.load() for a in run.outputs] == [7]
    assert all(s.status is ExecutionStatus.COMPLETED for s in run.steps.values())
    assert run.steps["add_one"].start_time is not None
    assert run.steps["add_one"].end_time >= run.steps["add_one"].start_time


def test_fan_in_list_input_receives_loaded_values() -> None:
    run = basic.fan(n=4)
    assert run.steps["total"].output.load() == 8
    assert set(run.steps) == {
        "make_number",
        "add_one",
        "add_one_2",
        "add_one_3",
        "add_one_4",
        "total",
    }


def test_multi_output_step_names_each_output() -> None:
    run = basic.halves()
    split = run.steps["split"]
    assert split.outputs["half"][0].load() == 3
    assert split.outputs["rest"][0].load() == 4
    assert run.steps["total"].output.load() == 7
    with pytest.raises(StepOutputError, match="2 outputs"):
        _ = split.output


def test_run_events_are_the_log_in_seq_order() -> None:
    run = basic.chain()
    events = run.events()
    types = [e.type for e in events]
    assert types[0] == "run.created"
    assert types[-1] == "run.succeeded"
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    succeeded = [e for e in events if e.type == "step.succeeded"]
    assert [e.step for e in succeeded] == ["make_number", "add_one", "add_one_2"]
    assert all(e.stream == run.id for e in events)
    # causal order: a step is ready only after everything it waits for succeeded
    pos = {(e.type, getattr(e, "step", None)): i for i, e in enumerate(events)}
    assert pos[("step.succeeded", "make_number")] < pos[("step.ready", "add_one")]
    assert pos[("step.succeeded", "add_one")] < pos[("step.ready", "add_one_2")]


def test_after_orders_steps_without_data() -> None:
    order: list[str] = []

    @step
    def first() -> None:
        time.sleep(0.05)
        order.append("first")

    @step
    def second() -> None:
        order.append("second")

    @pipeline
    def ordered() -> None:
        first(id="a")
        second(after="a")

    run = ordered()
    assert order == ["first", "second"]
    assert run.steps["second"].spec.after == ["a"]


def test_sync_steps_run_concurrently() -> None:
    started = time.perf_counter()
    run = basic.sleepers_sync(n=20)
    elapsed = time.perf_counter() - started
    assert run.status is ExecutionStatus.COMPLETED
    assert run.steps["count"].output.load() == 20
    assert elapsed < 4.0


def test_async_steps_run_concurrently() -> None:
    started = time.perf_counter()
    run = basic.sleepers_async(n=20)
    assert time.perf_counter() - started < 4.0
    assert run.steps["count"].output.load() == 20


@pytest.mark.anyio
async def test_run_async_from_two_concurrent_tasks() -> None:
    results: dict[int, Any] = {}

    async def go(i: int) -> None:
        results[i] = await basic.chain.run_async(start=i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(go, 1)
        tg.start_soon(go, 10)
    assert results[1].steps["add_one_2"].output.load() == 3
    assert results[10].steps["add_one_2"].output.load() == 12
    assert results[1].id != results[10].id


def test_calling_a_pipeline_inside_a_loop_points_to_run_async() -> None:
    async def main() -> None:
        with pytest.raises(PipelineDefinitionError, match="run_async"):
            basic.chain()

    anyio.run(main)


def test_failure_raises_with_run_and_cause_continue_mode() -> None:
    with pytest.raises(PipelineRunFailedError) as info:
        basic.failing_continue()
    run = info.value.run
    assert isinstance(info.value.__cause__, ValueError)
    assert run.status is ExecutionStatus.FAILED
    assert run.steps["boom"].status is ExecutionStatus.FAILED
    assert "boom on 1" in (run.steps["boom"].error or "")
    assert run.steps["add_one"].status is ExecutionStatus.SKIPPED
    assert run.steps["independent"].status is ExecutionStatus.COMPLETED


def test_raise_on_failure_false_returns_the_failed_run() -> None:
    run = basic.failing_continue.with_options(raise_on_failure=False)()
    assert run.status is ExecutionStatus.FAILED
    assert run.failed_step == "boom"


@step
def slow_ok() -> int:
    time.sleep(0.3)
    return 1


@step
async def slow_async_ok() -> int:
    await anyio.sleep(2)
    return 1


@step
def quick_fail() -> int:
    raise RuntimeError("quick")


@step
def after_ok(x: int) -> int:
    return x


def _modes_pipeline(mode: str) -> Any:
    @pipeline(execution_mode=mode, max_concurrency=2)
    def modes() -> None:
        slow = slow_ok()
        quick_fail()
        after_ok(slow)

    return modes


def test_stop_on_failure_lets_running_steps_finish_and_starts_nothing_new() -> None:
    run = _modes_pipeline("stop_on_failure").with_options(raise_on_failure=False)()
    assert run.steps["quick_fail"].status is ExecutionStatus.FAILED
    assert run.steps["slow_ok"].status is ExecutionStatus.COMPLETED
    assert run.steps["after_ok"].status is ExecutionStatus.SKIPPED


def test_continue_on_failure_runs_independent_work() -> None:
    run = _modes_pipeline("continue_on_failure").with_options(raise_on_failure=False)()
    assert run.steps["after_ok"].status is ExecutionStatus.COMPLETED
    assert run.status is ExecutionStatus.FAILED


def test_fail_fast_cancels_running_steps() -> None:
    @pipeline(execution_mode="fail_fast")
    def fast() -> None:
        slow_async_ok()
        quick_fail()

    started = time.perf_counter()
    run = fast.with_options(raise_on_failure=False)()
    assert time.perf_counter() - started < 1.5
    assert run.steps["slow_async_ok"].status is ExecutionStatus.CANCELLED
    assert run.status is ExecutionStatus.FAILED


def test_cancelling_run_async_records_cancelled() -> None:
    @pipeline
    def long() -> None:
        slow_async_ok()

    async def main() -> str:
        with anyio.move_on_after(0.3):
            await long.run_async()
        runs = Client().list_pipeline_runs(pipeline="long")
        return runs[0].id

    run_id = anyio.run(main)
    run = Client().get_pipeline_run(run_id)
    assert run.status is ExecutionStatus.CANCELLED
    assert run.steps["slow_async_ok"].status is ExecutionStatus.CANCELLED
    assert [e.type for e in run.events()][-1] == "run.cancelled"


def test_step_context_inside_a_step() -> None:
    seen: dict[str, Any] = {}

    @step
    def who() -> str:
        ctx = get_step_context()
        seen["name"] = ctx.step_name
        seen["run"] = ctx.pipeline_run.name
        return ctx.invocation_id

    @pipeline
    def ctx_pipeline() -> None:
        who()

    run = ctx_pipeline.with_options(run_name="ctx-{date}")()
    assert seen["name"] == "who"
    assert seen["run"] == run.name
    assert run.name.startswith("ctx-2")


def test_step_outside_pipeline_just_runs() -> None:
    assert basic.add_one(41) == 42


def test_with_options_name_and_repeated_calls() -> None:
    @pipeline
    def named() -> None:
        n = basic.make_number.with_options(name="source")(value=2)
        basic.add_one(n)
        basic.add_one(n)

    run = named()
    assert list(run.steps) == ["source", "add_one", "add_one_2"]
    assert run.steps["source"].name == "source"


def test_run_names_are_unique() -> None:
    first = basic.chain.with_options(run_name="same")()
    second = basic.chain.with_options(run_name="same")()
    assert first.name == "same"
    assert second.name == "same_2"


# -- bad input: compile-time errors append nothing --------------------------------------------


def _no_runs() -> bool:
    return Client().list_pipeline_runs() == []


def test_unencodable_parameter_is_named() -> None:
    @pipeline
    def p(fn: Any = None) -> None:
        basic.make_number()

    with pytest.raises(InvalidParameterError, match="'fn'"):
        p(fn=lambda: 1)
    assert _no_runs()


def test_unencodable_step_parameter_is_named() -> None:
    @step
    def takes(handle: Any) -> None:
        pass

    @pipeline
    def p() -> None:
        with open(__file__) as fh:
            takes(handle=fh)

    with pytest.raises(InvalidParameterError, match="'handle'"):
        p()
    assert _no_runs()


def test_missing_step_input() -> None:
    @pipeline
    def p() -> None:
        basic.add_one()

    with pytest.raises(PipelineDefinitionError, match=r"add_one.*missing"):
        p()
    assert _no_runs()


def test_var_args_rejected_at_definition() -> None:
    with pytest.raises(PipelineDefinitionError, match=r"\*args"):

        @step
        def bad(*args: int) -> None:
            pass

    with pytest.raises(PipelineDefinitionError, match=r"\*\*kwargs"):

        @step
        def bad2(**kwargs: int) -> None:
            pass


def test_duplicate_id() -> None:
    @pipeline
    def p() -> None:
        basic.make_number(id="x")
        basic.make_number(id="x")

    with pytest.raises(PipelineDefinitionError, match="duplicate step id 'x'"):
        p()
    assert _no_runs()


def test_unknown_after_target() -> None:
    @pipeline
    def p() -> None:
        basic.make_number(after="nope")

    with pytest.raises(PipelineDefinitionError, match="after='nope'"):
        p()
    assert _no_runs()


def test_step_called_outside_pipeline_with_placeholder() -> None:
    holder: list[Any] = []

    @pipeline
    def p() -> None:
        holder.append(basic.make_number())

    p()
    with pytest.raises(PipelineDefinitionError, match="outside any pipeline"):
        basic.add_one(holder[0])


def test_wrong_output_count_fails_the_step() -> None:
    @step
    def two() -> tuple[Annotated[int, "a"], Annotated[int, "b"]]:
        return 1  # type: ignore[return-value]

    @pipeline
    def p() -> None:
        two()

    with pytest.raises(PipelineRunFailedError) as info:
        p()
    assert isinstance(info.value.__cause__, StepOutputError)
    assert "two" in str(info.value.__cause__)
    assert info.value.run.steps["two"].status is ExecutionStatus.FAILED


def test_wrong_output_type_fails_the_step() -> None:
    @step
    def typed() -> int:
        return "nope"  # type: ignore[return-value]

    @pipeline
    def p() -> None:
        typed()

    with pytest.raises(PipelineRunFailedError) as info:
        p()
    assert isinstance(info.value.__cause__, StepOutputError)
    assert "output" in str(info.value.__cause__)


def test_unknown_step_option() -> None:
    with pytest.raises(PipelineDefinitionError, match="unknown step option"):
        step(colour="red")


def test_unknown_pipeline_option() -> None:
    with pytest.raises(PipelineDefinitionError, match="unknown option"):
        pipeline(colour="red")
