"""Step caching end to end: hits, invalidation, policies, expiry, lost artifacts, single flight."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

from engine import (
    CachePolicy,
    Client,
    Engine,
    ExecutionStatus,
    PipelineRunConfiguration,
    PipelineRunFailedError,
    pipeline,
    step,
)
from engine._caching import Flight
from engine._retry import FakeClock
from engine.errors import InvalidParameterError
from tests.pipelines import cached
from tests.pipelines.versions import load_version

DAY = 86_400.0


@pytest.fixture(autouse=True)
def _reset_counters() -> Iterator[None]:
    cached.EXECUTIONS.clear()
    cached.SALT = "one"
    yield
    cached.EXECUTIONS.clear()
    cached.SALT = "one"


def of_type(run: Any, kind: str, step_id: str | None = None) -> list[Any]:
    return [
        e
        for e in run.events()
        if e.type == kind and (step_id is None or getattr(e, "step", None) == step_id)
    ]


def statuses(run: Any) -> dict[str, ExecutionStatus]:
    return {sid: s.status for sid, s in run.steps.items()}


@pytest.fixture
def files_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Store every output in a file (small ones are inline by default): for tests about files."""
    monkeypatch.setenv("EVENFLOW_INLINE_MAX", "0")


def artifact_files(home: Path) -> set[Path]:
    root = home / "artifacts"
    return {p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts}


# -- a chain whose steps count their executions ---------------------------------------------


@step
def produce(value: int = 3) -> int:
    cached.EXECUTIONS["produce"] += 1
    return value


@step
def absolute(x: int) -> int:
    cached.EXECUTIONS["absolute"] += 1
    return abs(x)


@step
def square(x: int) -> int:
    cached.EXECUTIONS["square"] += 1
    return x * x


@pipeline
def squares(value: int = 3) -> int:
    return square(absolute(produce(value=value)))


@pytest.mark.parametrize("inline_max", ["0", "512"], ids=["files", "inline"])
def test_second_identical_run_is_all_cache_hits_reusing_the_same_artifacts(
    evenflow_home: Path, monkeypatch: pytest.MonkeyPatch, inline_max: str
) -> None:
    monkeypatch.setenv("EVENFLOW_INLINE_MAX", inline_max)
    first = squares(value=4)
    assert set(statuses(first).values()) == {ExecutionStatus.COMPLETED}
    files = artifact_files(evenflow_home)
    assert len(files) == (2 if inline_max == "0" else 0)  # 4, 4 and 16: two contents
    keys = {e.step: e.cache_key for e in of_type(first, "step.succeeded")}
    assert all(keys.values()), keys

    second = squares(value=4)
    assert second.status is ExecutionStatus.COMPLETED
    assert set(statuses(second).values()) == {ExecutionStatus.CACHED}
    assert cached.EXECUTIONS == {"produce": 1, "absolute": 1, "square": 1}
    assert second.steps["square"].output.load() == 16

    hits = {e.step: e for e in of_type(second, "step.cached")}
    assert list(hits) == ["produce", "absolute", "square"]
    for sid, event in hits.items():
        original = first.steps[sid]
        assert event.cache_key == keys[sid]
        assert event.source_run == first.id
        assert event.source_step == sid
        (name,) = original.outputs
        assert event.outputs[name].id == original.outputs[name][0].id
        assert event.outputs[name].content_hash == original.outputs[name][0].content_hash
        view = second.steps[sid]
        assert view.status is ExecutionStatus.CACHED
        assert view.cache_key == keys[sid]
        assert view.original_step_run_id == f"{first.id}/{sid}" == original.id
        assert view.outputs[name][0].id == original.outputs[name][0].id
    # nothing ran, nothing was stored again, no file was copied
    assert of_type(second, "step.started") == []
    assert of_type(second, "artifact.stored") == []
    assert artifact_files(evenflow_home) == files


def test_cached_step_view_reads_back_from_the_client() -> None:
    first = squares(value=2)
    second = squares(value=2)
    view = Client().get_pipeline_run(second.id).steps["square"]
    assert view.status is ExecutionStatus.CACHED
    assert view.original_step_run_id == f"{first.id}/square"
    assert view.output.load() == 4


def test_parameter_change_invalidates_the_step_and_what_depends_on_it() -> None:
    squares(value=3)
    run = squares(value=5)
    assert statuses(run) == {
        "produce": ExecutionStatus.COMPLETED,
        "absolute": ExecutionStatus.COMPLETED,
        "square": ExecutionStatus.COMPLETED,
    }
    assert run.steps["square"].output.load() == 25
    again = squares(value=3)
    assert set(statuses(again).values()) == {ExecutionStatus.CACHED}


def test_upstream_artifact_content_decides_the_downstream_key() -> None:
    squares(value=-2)
    # produce's parameter changed, but absolute's output has the same content: square is a hit
    run = squares(value=2)
    assert run.steps["produce"].status is ExecutionStatus.COMPLETED
    assert run.steps["absolute"].status is ExecutionStatus.COMPLETED
    assert run.steps["square"].status is ExecutionStatus.CACHED
    assert cached.EXECUTIONS["square"] == 1
    # a different upstream content misses
    run = squares(value=7)
    assert run.steps["square"].status is ExecutionStatus.COMPLETED
    assert run.steps["square"].output.load() == 49


def test_failed_step_leaves_no_cache_entry() -> None:
    state = {"fail": True}

    @step
    def fragile(v: int = 1) -> int:
        cached.EXECUTIONS["fragile"] += 1
        if state["fail"]:
            raise ValueError("not yet")
        return v

    @pipeline
    def fragile_flow() -> None:
        fragile()

    with pytest.raises(PipelineRunFailedError):
        fragile_flow()
    state["fail"] = False
    assert fragile_flow().steps["fragile"].status is ExecutionStatus.COMPLETED
    assert fragile_flow().steps["fragile"].status is ExecutionStatus.CACHED
    assert cached.EXECUTIONS["fragile"] == 2


# -- code changes -----------------------------------------------------------------------------

FLOW_V1 = """
    from engine import pipeline, step

    def helper(x):
        return x + 1

    @step
    def compute(x: int = 1) -> int:
        return helper(x)

    @pipeline
    def flow() -> int:
        return compute()
"""


@pytest.fixture
def fresh_module() -> Iterator[str]:
    name = f"qa_cache_flow_{time.monotonic_ns()}"
    yield name
    sys.modules.pop(name, None)


def run_flow(module: ModuleType) -> Any:
    return module.flow()


def test_same_code_imported_again_is_a_hit(tmp_path: Path, fresh_module: str) -> None:
    first = run_flow(load_version(tmp_path, "v1", fresh_module, FLOW_V1))
    again = run_flow(load_version(tmp_path, "v1-copy", fresh_module, FLOW_V1))
    assert again.steps["compute"].status is ExecutionStatus.CACHED
    assert again.steps["compute"].original_step_run_id == f"{first.id}/compute"


def test_decorator_change_alone_keeps_the_key(tmp_path: Path, fresh_module: str) -> None:
    run_flow(load_version(tmp_path, "v1", fresh_module, FLOW_V1))
    v2 = FLOW_V1.replace("    @step\n", "    @step(\n        enable_cache=True,\n    )\n")
    assert v2 != FLOW_V1
    again = run_flow(load_version(tmp_path, "v2", fresh_module, v2))
    assert again.steps["compute"].status is ExecutionStatus.CACHED


def test_step_body_change_invalidates(tmp_path: Path, fresh_module: str) -> None:
    run_flow(load_version(tmp_path, "v1", fresh_module, FLOW_V1))
    v2 = FLOW_V1.replace("return helper(x)", "return helper(x) * 10")
    run = run_flow(load_version(tmp_path, "v2", fresh_module, v2))
    assert run.steps["compute"].status is ExecutionStatus.COMPLETED
    assert run.steps["compute"].output.load() == 20


def test_helper_function_change_invalidates(tmp_path: Path, fresh_module: str) -> None:
    first = run_flow(load_version(tmp_path, "v1", fresh_module, FLOW_V1))
    assert first.steps["compute"].output.load() == 2
    v2 = FLOW_V1.replace("return x + 1", "return x + 2")
    run = run_flow(load_version(tmp_path, "v2", fresh_module, v2))
    assert run.steps["compute"].status is ExecutionStatus.COMPLETED
    assert run.steps["compute"].output.load() == 3
    # and back to v1's code: the old entry is reused
    back = run_flow(load_version(tmp_path, "v3", fresh_module, FLOW_V1))
    assert back.steps["compute"].status is ExecutionStatus.CACHED
    assert back.steps["compute"].original_step_run_id == f"{first.id}/compute"


def test_closure_variable_change_invalidates() -> None:
    # (no counter in the step: a global or closure value it references is part of its key)
    def make(factor: int) -> Any:
        @step
        def scale(x: int = 2) -> int:
            return x * factor

        @pipeline(name="scaled")
        def scaled() -> int:
            return scale()

        return scaled

    assert make(2)().steps["scale"].status is ExecutionStatus.COMPLETED
    assert make(2)().steps["scale"].status is ExecutionStatus.CACHED
    run = make(3)()
    assert run.steps["scale"].status is ExecutionStatus.COMPLETED
    assert run.steps["scale"].output.load() == 6
    assert make(2)().steps["scale"].status is ExecutionStatus.CACHED


# -- enable_cache ---------------------------------------------------------------------------


@step
def counted(v: int = 1) -> int:
    cached.EXECUTIONS["counted"] += 1
    return v


@step(enable_cache=False)
def never_cached(v: int = 1) -> int:
    cached.EXECUTIONS["never_cached"] += 1
    return v


@step(enable_cache=True)
def always_cached(v: int = 1) -> int:
    cached.EXECUTIONS["always_cached"] += 1
    return v


@pipeline
def mixed() -> None:
    counted()
    never_cached()


def test_caching_is_on_by_default_and_a_step_can_turn_it_off() -> None:
    mixed()
    run = mixed()
    assert run.steps["counted"].status is ExecutionStatus.CACHED
    assert run.steps["never_cached"].status is ExecutionStatus.COMPLETED
    assert of_type(run, "step.cached", "never_cached") == []
    assert cached.EXECUTIONS == {"counted": 1, "never_cached": 2}


def test_with_options_enable_cache_false_turns_caching_off_for_the_run() -> None:
    mixed()
    run = mixed.with_options(enable_cache=False)()
    assert statuses(run) == {
        "counted": ExecutionStatus.COMPLETED,
        "never_cached": ExecutionStatus.COMPLETED,
    }
    assert of_type(run, "step.cached") == []
    # the pipeline itself is unchanged
    assert mixed().steps["counted"].status is ExecutionStatus.CACHED


def test_run_configuration_enable_cache_false_turns_caching_off_for_the_run() -> None:
    mixed()
    run = mixed.with_options(**PipelineRunConfiguration(enable_cache=False))()
    assert run.steps["counted"].status is ExecutionStatus.COMPLETED
    assert cached.EXECUTIONS["counted"] == 2


def test_pipeline_decorator_enable_cache_false_disables_steps_without_their_own_value() -> None:
    @pipeline(enable_cache=False)
    def uncached() -> None:
        counted()

    uncached()
    assert uncached().steps["counted"].status is ExecutionStatus.COMPLETED
    assert cached.EXECUTIONS["counted"] == 2


def test_step_enable_cache_wins_over_the_pipeline_decorator() -> None:
    @pipeline(enable_cache=False)
    def uncached() -> None:
        always_cached()

    uncached()
    run = uncached()
    assert run.steps["always_cached"].status is ExecutionStatus.CACHED
    assert cached.EXECUTIONS["always_cached"] == 1


# -- cache policies -------------------------------------------------------------------------


def test_ignored_fields_and_inputs_do_not_change_the_key() -> None:
    @step(cache_policy=CachePolicy(ignore_fields=["seed"]))
    def train(data: int, seed: int = 0) -> int:
        cached.EXECUTIONS["train"] += 1
        return data + seed

    @step(cache_policy=CachePolicy(ignored_inputs=["data"]))
    def report(data: int, title: str = "t") -> str:
        cached.EXECUTIONS["report"] += 1
        return f"{title}:{data}"

    @pipeline
    def training(seed: int = 0, value: int = 1, title: str = "t") -> None:
        data = produce(value=value)
        train(data, seed=seed)
        report(data, title=title)

    training(seed=1, value=1)
    run = training(seed=2, value=5)
    assert run.steps["train"].status is ExecutionStatus.COMPLETED  # data changed
    assert run.steps["report"].status is ExecutionStatus.CACHED  # only data changed
    run = training(seed=3, value=5)
    assert run.steps["train"].status is ExecutionStatus.CACHED  # only seed changed
    run = training(seed=3, value=5, title="other")
    assert run.steps["report"].status is ExecutionStatus.COMPLETED


def test_include_step_parameters_false() -> None:
    @step(cache_policy=CachePolicy(include_step_parameters=False))
    def loose(v: int = 1) -> int:
        return v

    @pipeline
    def loose_flow(v: int = 1) -> None:
        loose(v=v)

    loose_flow(v=1)
    run = loose_flow(v=2)
    assert run.steps["loose"].status is ExecutionStatus.CACHED
    assert run.steps["loose"].output.load() == 1


def test_include_step_code_false_ignores_code_changes() -> None:
    def make(factor: int, policy: CachePolicy | None) -> Any:
        @step(cache_policy=policy)
        def scale(x: int = 2) -> int:
            return x * factor

        @pipeline(name="scaled_code")
        def scaled() -> int:
            return scale()

        return scaled

    no_code = CachePolicy(include_step_code=False)
    make(2, no_code)()
    assert make(3, no_code)().steps["scale"].status is ExecutionStatus.CACHED
    assert make(3, None)().steps["scale"].status is ExecutionStatus.COMPLETED


def test_artifact_ids_instead_of_values() -> None:
    @step(enable_cache=False)
    def fresh(v: int = 1) -> int:
        return v

    @step
    def by_value(x: int) -> int:
        return x

    @step(cache_policy=CachePolicy(include_artifact_values=False, include_artifact_ids=True))
    def by_id(x: int) -> int:
        return x

    @pipeline
    def ids_flow() -> None:
        data = fresh()
        by_value(data)
        by_id(data)

    ids_flow()
    run = ids_flow()  # `fresh` re-ran: same content, new artifact id
    assert run.steps["by_value"].status is ExecutionStatus.CACHED
    assert run.steps["by_id"].status is ExecutionStatus.COMPLETED


def test_cache_func_result_joins_the_key() -> None:
    @step(cache_policy=CachePolicy(cache_func="tests.pipelines.cached:salt"))
    def salted(v: int = 1) -> int:
        cached.EXECUTIONS["salted"] += 1
        return v

    @pipeline
    def salty() -> None:
        salted()

    salty()
    assert salty().steps["salted"].status is ExecutionStatus.CACHED
    cached.SALT = "two"
    assert salty().steps["salted"].status is ExecutionStatus.COMPLETED
    assert cached.EXECUTIONS["salted"] == 2


def test_pipeline_level_cache_policy_applies_to_steps() -> None:
    @pipeline(cache_policy=CachePolicy(ignore_fields=["v"]))
    def ignoring(v: int = 1) -> None:
        counted(v=v)

    ignoring(v=1)
    assert ignoring(v=2).steps["counted"].status is ExecutionStatus.CACHED


def test_environment_and_secret_names_are_part_of_the_key() -> None:
    client = Client()
    client.create_secret("qa_cache_a", {"QA_CACHE_TOKEN": "value-a"})
    client.create_secret("qa_cache_b", {"QA_CACHE_TOKEN": "value-b"})

    @pipeline
    def with_env(mode: str = "a") -> None:
        counted()

    with_env.with_options(environment={"QA_CACHE_MODE": "a"})()
    run = with_env.with_options(environment={"QA_CACHE_MODE": "a"})()
    assert run.steps["counted"].status is ExecutionStatus.CACHED
    run = with_env.with_options(environment={"QA_CACHE_MODE": "b"})()
    assert run.steps["counted"].status is ExecutionStatus.COMPLETED
    with_env.with_options(secrets=["qa_cache_a"])()
    run = with_env.with_options(secrets=["qa_cache_b"])()
    assert run.steps["counted"].status is ExecutionStatus.COMPLETED
    run = with_env.with_options(secrets=["qa_cache_b"])()
    assert run.steps["counted"].status is ExecutionStatus.CACHED


# -- expiry (injected clock) ------------------------------------------------------------------


@pytest.mark.anyio
async def test_max_age_days_expires_entries_on_the_injected_clock() -> None:
    @step(cache_policy=CachePolicy(max_age_days=1))
    def daily(v: int = 1) -> int:
        cached.EXECUTIONS["daily"] += 1
        return v

    @pipeline
    def daily_flow() -> None:
        daily()

    clock = FakeClock()
    async with Engine.open(clock=clock) as engine:
        first = await daily_flow.run_async(engine=engine)
        clock.advance(0.5 * DAY)
        hit = await daily_flow.run_async(engine=engine)
        clock.advance(0.6 * DAY)  # 1.1 days after the entry was made
        expired = await daily_flow.run_async(engine=engine)
        clock.advance(0.5 * DAY)  # the new entry is 0.5 days old
        renewed = await daily_flow.run_async(engine=engine)
    assert hit.steps["daily"].status is ExecutionStatus.CACHED
    assert expired.steps["daily"].status is ExecutionStatus.COMPLETED
    assert renewed.steps["daily"].status is ExecutionStatus.CACHED
    assert renewed.steps["daily"].original_step_run_id == f"{expired.id}/daily"
    assert first.steps["daily"].status is ExecutionStatus.COMPLETED
    assert cached.EXECUTIONS["daily"] == 2


@pytest.mark.anyio
async def test_pipeline_expires_after_seconds() -> None:
    @pipeline(cache_policy=CachePolicy(expires_after=60))
    def minute() -> None:
        counted()

    clock = FakeClock()
    async with Engine.open(clock=clock) as engine:
        await minute.run_async(engine=engine)
        clock.advance(60)  # up to and including the age limit: still valid
        at_limit = await minute.run_async(engine=engine)
        clock.advance(1)
        past = await minute.run_async(engine=engine)
    assert at_limit.steps["counted"].status is ExecutionStatus.CACHED
    assert past.steps["counted"].status is ExecutionStatus.COMPLETED


# -- lost artifacts -----------------------------------------------------------------------------


@pytest.mark.usefixtures("files_only")
def test_cache_entry_whose_artifact_file_is_gone_is_a_miss(evenflow_home: Path) -> None:
    first = squares(value=6)
    uri = first.steps["square"].output.uri
    (evenflow_home / "artifacts" / uri).unlink()
    run = squares(value=6)
    assert run.status is ExecutionStatus.COMPLETED
    assert run.steps["produce"].status is ExecutionStatus.CACHED
    assert run.steps["absolute"].status is ExecutionStatus.CACHED
    assert run.steps["square"].status is ExecutionStatus.COMPLETED
    assert run.steps["square"].output.load() == 36
    assert cached.EXECUTIONS["square"] == 2
    assert (evenflow_home / "artifacts" / uri).exists()
    assert squares(value=6).steps["square"].status is ExecutionStatus.CACHED


@pytest.mark.usefixtures("files_only")
def test_lost_upstream_file_reruns_upstream_and_downstream_still_hits(
    evenflow_home: Path,
) -> None:
    first = squares(value=9)
    (evenflow_home / "artifacts" / first.steps["produce"].output.uri).unlink()
    run = squares(value=9)
    assert run.steps["produce"].status is ExecutionStatus.COMPLETED
    assert run.steps["absolute"].status is ExecutionStatus.CACHED
    assert run.steps["square"].status is ExecutionStatus.CACHED
    assert run.steps["square"].output.load() == 81


# -- single flight ------------------------------------------------------------------------------


@step
async def expensive(v: int = 5) -> int:
    cached.EXECUTIONS["expensive"] += 1
    await anyio.sleep(0.2)
    return v


@step
def plus_one(x: int) -> int:
    cached.EXECUTIONS["plus_one"] += 1
    return x + 1


@pipeline
def shared_work() -> int:
    return plus_one(expensive())


@pytest.mark.anyio
@pytest.mark.parametrize("shared_engine", [True, False], ids=["one-engine", "two-engines"])
async def test_concurrent_runs_compute_a_key_once(shared_engine: bool) -> None:
    runs: list[Any] = []

    async with Engine.open() as engine:

        async def go() -> None:
            runs.append(await shared_work.run_async(engine=engine if shared_engine else None))

        async with anyio.create_task_group() as tg:
            tg.start_soon(go)
            tg.start_soon(go)

    assert cached.EXECUTIONS["expensive"] == 1
    assert cached.EXECUTIONS["plus_one"] == 1
    by_status = sorted(runs, key=lambda r: r.steps["expensive"].status.value)
    computed, waited = by_status[1], by_status[0]
    assert computed.steps["expensive"].status is ExecutionStatus.COMPLETED
    assert waited.steps["expensive"].status is ExecutionStatus.CACHED
    (hit,) = of_type(waited, "step.cached", "expensive")
    assert hit.source_run == computed.id
    assert hit.source_step == "expensive"
    assert waited.steps["plus_one"].status is ExecutionStatus.CACHED
    assert waited.steps["plus_one"].output.load() == 6


@pytest.mark.anyio
async def test_waiting_run_recomputes_when_the_owner_fails() -> None:
    state = {"fail": True}

    @step
    async def contested(v: int = 1) -> int:
        cached.EXECUTIONS["contested"] += 1
        await anyio.sleep(0.1)
        if state.pop("fail", False):
            raise ValueError("owner failed")
        return v

    @pipeline
    def contest() -> None:
        contested()

    runs: list[Any] = []
    async with Engine.open() as engine:

        async def go() -> None:
            runs.append(await contest.with_options(raise_on_failure=False).run_async(engine=engine))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(go)
                tg.start_soon(go)
    outcomes = sorted(r.steps["contested"].status.value for r in runs)
    assert outcomes == ["completed", "failed"]
    assert cached.EXECUTIONS["contested"] == 2


@pytest.mark.anyio
async def test_single_flight_waiter_is_woken_when_the_owner_run_needs_the_key_twice() -> None:
    gates: dict[str, anyio.Event] = {}

    @step
    async def held(v: int = 1) -> int:
        cached.EXECUTIONS["held"] += 1
        gates["running"].set()
        await gates["release"].wait()
        return v

    @step
    async def barrier() -> None:
        await gates["go"].wait()

    @pipeline
    def twice() -> None:
        held(id="first")
        held(id="second", after=barrier())

    @pipeline
    def once() -> None:
        held(id="only")

    gates.update(running=anyio.Event(), release=anyio.Event(), go=anyio.Event())
    runs: dict[str, Any] = {}
    async with Engine.open() as engine:

        async def go(p: Any, key: str) -> None:
            runs[key] = await p.run_async(engine=engine)

        with anyio.fail_after(1.5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(go, twice, "twice")
                await gates["running"].wait()  # `first` owns the key
                tg.start_soon(go, once, "once")
                await anyio.sleep(0.1)  # `only` waits for the key
                gates["go"].set()
                await anyio.sleep(0.1)  # `second` looks the key up while `first` runs
                gates["release"].set()
    assert runs["once"].steps["only"].status is ExecutionStatus.CACHED
    assert cached.EXECUTIONS["held"] == 1


def test_runs_on_several_threads_compute_a_key_once() -> None:
    """A pipeline called from four threads at once (each runs its own event loop): one thread
    computes the step, the others wait for it on their own loops and reuse its output. Before,
    the second loop to wait failed ("bound to a different event loop")."""
    start = threading.Barrier(4)
    runs: list[Any] = []
    errors: list[BaseException] = []

    def go() -> None:
        start.wait()
        try:
            runs.append(shared_work())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(runs) == 4
    assert cached.EXECUTIONS["expensive"] == 1
    statuses = sorted(r.steps["expensive"].status.value for r in runs)
    assert statuses == ["cached", "cached", "cached", "completed"]
    assert [r.steps["plus_one"].output.load() for r in runs] == [6] * 4


def test_a_flight_wakes_waiters_on_other_threads_loops_and_later_ones_at_once() -> None:
    flight = Flight()
    waiting = threading.Barrier(3)
    woken: list[float] = []

    def waiter() -> None:
        async def main() -> None:
            task = asyncio.ensure_future(flight.wait())
            await asyncio.sleep(0)  # registered as a waiter
            waiting.wait()
            await asyncio.wait_for(task, 5)
            woken.append(time.monotonic())

        asyncio.run(main())

    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for thread in threads:
        thread.start()
    waiting.wait()
    flight.set()  # from a thread with no loop at all
    for thread in threads:
        thread.join(10)
    assert len(woken) == 2
    asyncio.run(asyncio.wait_for(flight.wait(), 1))  # already set: returns at once


def test_a_cancelled_waiter_does_not_stop_a_flight_waking_the_others() -> None:
    flight = Flight()

    async def main() -> bool:
        cancelled = asyncio.ensure_future(flight.wait())
        kept = asyncio.ensure_future(flight.wait())
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        flight.set()
        await asyncio.wait_for(kept, 1)
        return cancelled.cancelled()

    assert asyncio.run(main())


# -- keys that cannot be computed -----------------------------------------------------------------


def test_unencodable_step_input_is_a_clear_error_before_the_run() -> None:
    @step
    def consume(handle: Any) -> int:
        return 1

    @pipeline
    def bad_input() -> None:
        consume(handle=lambda: 1)

    with pytest.raises(InvalidParameterError) as excinfo:
        bad_input()
    message = str(excinfo.value)
    assert "'consume'" in message
    assert "'handle'" in message
    assert Client().list_pipeline_runs() == []


def test_unencodable_pipeline_parameter_is_a_clear_error_before_the_run() -> None:
    @pipeline
    def bad_param(blob: Any = None) -> None:
        counted()

    with pytest.raises(InvalidParameterError, match="'blob'"):
        bad_param(blob=object())
    assert Client().list_pipeline_runs() == []


def test_cache_func_that_cannot_be_keyed_fails_the_step_naming_it() -> None:
    @step(cache_policy=CachePolicy(cache_func="tests.pipelines.cached:unencodable"))
    def unkeyable(v: int = 1) -> int:
        cached.EXECUTIONS["unkeyable"] += 1
        return v

    @pipeline
    def unkeyable_flow() -> None:
        unkeyable()

    with pytest.raises(PipelineRunFailedError) as excinfo:
        unkeyable_flow()
    run = excinfo.value.run
    assert run.steps["unkeyable"].status is ExecutionStatus.FAILED
    assert "'unkeyable'" in run.steps["unkeyable"].error
    assert "cache_func" in run.steps["unkeyable"].error
    assert type(excinfo.value.__cause__).__name__ == "CacheKeyError"
    assert cached.EXECUTIONS["unkeyable"] == 0  # never run with a partial key
    assert of_type(run, "step.succeeded") == []
