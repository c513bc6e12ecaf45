"""Retries and timeouts end to end: attempts as events, due times on an injected clock, retries
that wait without blocking other steps, exhausted retries, async and sync timeouts."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from engine import (
    Client,
    Engine,
    ExecutionStatus,
    PipelineRunFailedError,
    StepRetryConfig,
    pipeline,
    step,
)
from engine._retry import FakeClock
from engine.errors import StepTimeoutError

START = 1_700_000_000.0


def of_type(run: Any, kind: str, step_id: str | None = None) -> list[Any]:
    return [
        e
        for e in run.events()
        if e.type == kind and (step_id is None or getattr(e, "step", None) == step_id)
    ]


def seq_of(run: Any, kind: str, step_id: str | None = None, **fields: Any) -> int:
    """The seq of the one event matching ``kind``, ``step`` and ``fields``."""
    found = [
        e
        for e in of_type(run, kind, step_id)
        if all(getattr(e, name, None) == value for name, value in fields.items())
    ]
    assert len(found) == 1, (kind, step_id, fields, found)
    return int(found[0].seq)


async def run_in_background(
    clock: FakeClock,
    start: Callable[[Engine], Awaitable[Any]],
    drive: Callable[[Engine], Awaitable[None]],
) -> Any:
    """Run ``start(engine)`` in a task while ``drive(engine)`` moves the clock."""
    result: dict[str, Any] = {}
    async with Engine.open(clock=clock) as engine:

        async def go() -> None:
            result["run"] = await start(engine)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(go)
                await drive(engine)
    return result["run"]


def flaky_step(failures: int, **options: Any) -> tuple[Any, list[int]]:
    """A step failing its first ``failures`` attempts; returns it and its attempt log."""
    attempts: list[int] = []

    @step(enable_cache=False, **options)
    def flaky(v: int = 7) -> int:
        attempts.append(len(attempts) + 1)
        if len(attempts) <= failures:
            raise ValueError(f"attempt {len(attempts)} failed")
        return v

    return flaky, attempts


# -- attempts, events and due times ---------------------------------------------------------


@pytest.mark.anyio
async def test_attempts_events_and_due_times_follow_the_injected_clock() -> None:
    config = StepRetryConfig(max_retries=3, delay=10, backoff=3, max_delay=50)
    flaky, attempts = flaky_step(3, retry=config)

    @pipeline
    def retried() -> int:
        return flaky()

    clock = FakeClock(start=START)
    seen: list[tuple[float, ExecutionStatus]] = []

    async def drive(engine: Engine) -> None:
        for _ in range(3):
            await clock.wait_for_sleepers(1)
            deadline = clock.next_deadline()
            assert deadline is not None
            (current,) = Client().list_pipeline_runs(size=1)
            seen.append((deadline - clock.now(), current.steps["flaky"].status))
            clock.advance(deadline - clock.now() - 0.5)  # not yet due: nothing happens
            await anyio.sleep(0.05)
            assert len(attempts) == len(seen)
            clock.advance_to(deadline)

    run = await run_in_background(clock, lambda e: retried.run_async(engine=e), drive)

    assert run.status is ExecutionStatus.COMPLETED
    assert run.steps["flaky"].output.load() == 7
    assert run.steps["flaky"].attempt == 4
    assert attempts == [1, 2, 3, 4]
    # backoff 10, 30, then capped by max_delay at 50; the step showed `retrying` meanwhile
    assert seen == [
        (10.0, ExecutionStatus.RETRYING),
        (30.0, ExecutionStatus.RETRYING),
        (50.0, ExecutionStatus.RETRYING),
    ]
    failed = of_type(run, "step.failed", "flaky")
    assert [e.attempt for e in failed] == [1, 2, 3]
    assert [e.final for e in failed] == [False, False, False]
    assert [e.error for e in failed] == [f"attempt {n} failed" for n in (1, 2, 3)]
    assert all(e.error_type == "ValueError" for e in failed)
    scheduled = of_type(run, "step.retry_scheduled", "flaky")
    assert [e.attempt for e in scheduled] == [2, 3, 4]
    assert [e.due_at for e in scheduled] == [START + 10, START + 40, START + 90]
    started = of_type(run, "step.started", "flaky")
    assert [e.attempt for e in started] == [1, 2, 3, 4]
    # each failure is followed by its schedule, then by the next attempt
    for n in (1, 2, 3):
        f = seq_of(run, "step.failed", "flaky", attempt=n)
        s = seq_of(run, "step.retry_scheduled", "flaky", attempt=n + 1)
        nxt = seq_of(run, "step.started", "flaky", attempt=n + 1)
        assert f < s < nxt
    assert seq_of(run, "step.succeeded", "flaky", attempt=4) > started[-1].seq


@pytest.mark.anyio
async def test_jitter_keeps_due_times_within_bounds() -> None:
    flaky, _ = flaky_step(2, retry=StepRetryConfig(max_retries=2, delay=100, jitter=0.5))

    @pipeline
    def jittered() -> None:
        flaky()

    clock = FakeClock(start=START)
    failed_at: list[float] = []

    async def drive(engine: Engine) -> None:
        for _ in range(2):
            await clock.wait_for_sleepers(1)
            failed_at.append(clock.now())
            deadline = clock.next_deadline()
            assert deadline is not None
            clock.advance_to(deadline)

    run = await run_in_background(clock, lambda e: jittered.run_async(engine=e), drive)
    scheduled = of_type(run, "step.retry_scheduled", "flaky")
    for event, at in zip(scheduled, failed_at, strict=True):
        assert 50 <= event.due_at - at <= 150


@pytest.mark.anyio
async def test_a_waiting_retry_does_not_block_other_steps() -> None:
    flaky, attempts = flaky_step(1, retry=StepRetryConfig(max_retries=1, delay=3600))
    finished = anyio.Event()

    @step(enable_cache=False)
    def independent(v: int = 1) -> int:
        return v

    @step(enable_cache=False)
    async def downstream(x: int) -> int:
        finished.set()
        return x + 1

    @pipeline(max_concurrency=1)
    def busy() -> None:
        flaky()
        downstream(independent())

    clock = FakeClock(start=START)

    async def drive(engine: Engine) -> None:
        await clock.wait_for_sleepers(1)
        # the retry is an hour away; with one worker the other steps still run meanwhile
        with anyio.fail_after(5):
            await finished.wait()
        assert attempts == [1]
        clock.advance(3600)

    run = await run_in_background(clock, lambda e: busy.run_async(engine=e), drive)
    assert run.status is ExecutionStatus.COMPLETED
    assert seq_of(run, "step.succeeded", "downstream") < seq_of(
        run, "step.started", "flaky", attempt=2
    )
    assert seq_of(run, "step.retry_scheduled", "flaky") < seq_of(run, "step.started", "independent")


# -- exhausted retries ---------------------------------------------------------------------------


def test_exhausted_retries_fail_the_step_and_fire_on_failure_once_after_the_last_attempt() -> None:
    calls: list[tuple[str, str]] = []

    def step_failure(exception: BaseException) -> None:
        calls.append(("step", str(exception)))

    def run_failure(exception: BaseException) -> None:
        calls.append(("pipeline", str(exception)))

    flaky, attempts = flaky_step(99, retry=StepRetryConfig(max_retries=2), on_failure=step_failure)

    @pipeline(on_failure=run_failure)
    def hopeless() -> None:
        flaky()

    with pytest.raises(PipelineRunFailedError) as excinfo:
        hopeless()
    run = excinfo.value.run
    assert attempts == [1, 2, 3]
    assert str(excinfo.value.__cause__) == "attempt 3 failed"
    assert run.status is ExecutionStatus.FAILED
    step_view = run.steps["flaky"]
    assert step_view.status is ExecutionStatus.FAILED
    assert step_view.attempt == 3
    failed = of_type(run, "step.failed", "flaky")
    assert [(e.attempt, e.final) for e in failed] == [(1, False), (2, False), (3, True)]
    assert [e.attempt for e in of_type(run, "step.retry_scheduled", "flaky")] == [2, 3]
    assert calls == [("step", "attempt 3 failed"), ("pipeline", "attempt 3 failed")]
    hooks = [e for e in of_type(run, "hook.started") if e.hook == "on_failure"]
    assert [e.step for e in hooks] == ["flaky", None]
    assert hooks[0].seq > failed[-1].seq
    assert hooks[1].seq > seq_of(run, "run.failed")


def test_pipeline_retry_applies_to_steps_and_a_step_retry_replaces_it() -> None:
    inherits, inherits_attempts = flaky_step(1)
    own, own_attempts = flaky_step(1, retry=StepRetryConfig(max_retries=0))

    @pipeline(retry=StepRetryConfig(max_retries=1))
    def configured() -> None:
        inherits(id="inherits")
        own(id="own")

    run = configured.with_options(raise_on_failure=False)()
    assert run.steps["inherits"].status is ExecutionStatus.COMPLETED
    assert inherits_attempts == [1, 2]
    assert run.steps["own"].status is ExecutionStatus.FAILED
    assert own_attempts == [1]
    assert [e.attempt for e in of_type(run, "step.retry_scheduled", "own")] == []


# -- timeouts ------------------------------------------------------------------------------------


def test_async_step_past_its_timeout_is_cancelled_and_may_be_retried() -> None:
    cancelled: list[bool] = []
    attempts: list[int] = []

    @step(enable_cache=False, timeout=0.1, retry=StepRetryConfig(max_retries=1))
    async def sluggish() -> int:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            try:
                await anyio.sleep(5)
            except anyio.get_cancelled_exc_class():
                cancelled.append(True)
                raise
        return 42

    @pipeline
    def timed() -> int:
        return sluggish()

    started = time.perf_counter()
    run = timed()
    assert time.perf_counter() - started < 2
    assert run.status is ExecutionStatus.COMPLETED
    assert run.steps["sluggish"].output.load() == 42
    assert cancelled == [True]
    (failed,) = of_type(run, "step.failed", "sluggish")
    assert failed.error_type == "StepTimeoutError"
    assert failed.attempt == 1
    assert not failed.final
    assert "sluggish" in failed.error
    assert "0.1" in failed.error


def test_async_timeout_without_retry_fails_the_run_with_step_timeout_error() -> None:
    @step(enable_cache=False, timeout=0.05)
    async def stuck() -> None:
        await anyio.sleep(5)

    @pipeline
    def stuck_flow() -> None:
        stuck()

    with pytest.raises(PipelineRunFailedError) as excinfo:
        stuck_flow()
    assert isinstance(excinfo.value.__cause__, StepTimeoutError)
    assert excinfo.value.run.steps["stuck"].error_type == "StepTimeoutError"


def test_sync_step_past_its_timeout_is_abandoned_and_may_be_retried() -> None:
    release = threading.Event()
    attempts: list[int] = []

    @step(enable_cache=False, timeout=0.1, retry=StepRetryConfig(max_retries=1))
    def blocking() -> int:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            release.wait(2)  # far past the timeout; let go at the end of the test
        return 5

    @pipeline
    def timed_sync() -> int:
        return blocking()

    started = time.perf_counter()
    try:
        run = timed_sync()
        elapsed = time.perf_counter() - started
    finally:
        release.set()
    assert elapsed < 1.5  # did not wait for the abandoned thread
    assert run.status is ExecutionStatus.COMPLETED
    assert run.steps["blocking"].output.load() == 5
    (failed,) = of_type(run, "step.failed", "blocking")
    assert failed.error_type == "StepTimeoutError"
    assert "abandoned" in failed.error
    assert [e.attempt for e in of_type(run, "step.started", "blocking")] == [1, 2]


def test_sync_timeout_without_retry_fails_and_other_steps_finish() -> None:
    release = threading.Event()

    @step(enable_cache=False, timeout=0.05)
    def hangs() -> int:
        release.wait(2)
        return 1

    @step(enable_cache=False)
    def fine() -> int:
        return 2

    @pipeline
    def partly() -> None:
        hangs()
        fine()

    try:
        run = partly.with_options(raise_on_failure=False)()
    finally:
        release.set()
    assert run.status is ExecutionStatus.FAILED
    assert run.steps["hangs"].status is ExecutionStatus.FAILED
    assert run.steps["hangs"].error_type == "StepTimeoutError"
    assert run.steps["fine"].status is ExecutionStatus.COMPLETED
