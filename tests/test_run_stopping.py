"""How a run stops: what fail_fast cancels, what a stopped run no longer waits for, and the
hooks and events that a cancelled (or merely slow to finish) run still gets. Each test was a
bug found in review."""

from __future__ import annotations

import functools
import time
from typing import Any

import anyio
import pytest

from engine import ExecutionStatus, StepRetryConfig, _run, pipeline, step
from engine._engine import Engine
from engine.client import Client


@step(enable_cache=False)
async def boom() -> int:
    raise RuntimeError("boom")


def test_fail_fast_cancels_a_sibling_that_no_worker_had_picked_up_yet() -> None:
    ran: list[str] = []

    @step(enable_cache=False)
    async def sibling() -> int:
        ran.append("sibling")
        await anyio.sleep(1.5)
        return 1

    @pipeline(execution_mode="fail_fast")
    def fast() -> None:
        boom()  # declared first: the first worker takes it and fails before the second starts
        sibling()

    started = time.perf_counter()
    run = fast.with_options(raise_on_failure=False)()
    elapsed = time.perf_counter() - started
    assert run.status is ExecutionStatus.FAILED
    # Observed: "sibling" was launched before boom failed but no worker had taken it yet
    # (node.scope was None), so fail_fast could not cancel it and it ran to completion.
    assert run.steps["sibling"].status is ExecutionStatus.CANCELLED, ran
    assert elapsed < 1.0


def test_a_stopped_run_does_not_wait_out_a_retry_timer_scheduled_just_before_the_stop() -> None:
    attempts: list[int] = []

    @step(enable_cache=False, retry=StepRetryConfig(max_retries=1, delay=3, backoff=1))
    async def flaky() -> int:
        attempts.append(1)
        raise RuntimeError("flaky")

    @pipeline(execution_mode="stop_on_failure")
    def stopping() -> None:
        flaky()  # fails first: its retry is decided, its timer starts after the commit
        boom()  # fails while that commit is in flight: the run stops

    started = time.perf_counter()
    run = stopping.with_options(raise_on_failure=False)()
    elapsed = time.perf_counter() - started
    assert run.status is ExecutionStatus.FAILED
    assert attempts == [1]
    assert run.steps["flaky"].status is ExecutionStatus.CANCELLED
    assert elapsed < 1.5, f"the stopped run waited {elapsed:.1f} s for a retry it never runs"


def test_a_slow_on_success_hook_of_a_run_that_was_not_cancelled_still_gets_on_cleanup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # _CLEANUP_DEADLINE (30 s) is meant for a *cancelled* run; shrunk here so the test is fast.
    monkeypatch.setattr(_run, "_CLEANUP_DEADLINE", 0.2)
    calls: list[str] = []

    async def notify() -> None:  # e.g. posting a report: takes longer than the deadline
        await anyio.sleep(0.5)
        calls.append("on_success")

    def cleanup() -> None:
        calls.append("on_cleanup")

    @step(enable_cache=False)
    def fine() -> int:
        return 1

    @pipeline(on_success=notify, on_cleanup=cleanup)
    def hooked_run() -> None:
        fine()

    run = hooked_run()
    assert run.status is ExecutionStatus.COMPLETED
    hooks = [(e.type, e.hook) for e in run.events() if e.type.startswith("hook.")]
    assert calls == ["on_success", "on_cleanup"], hooks
    assert ("hook.succeeded", "on_success") in hooks


def test_a_run_cancelled_while_its_first_events_commit_still_ends_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @step(enable_cache=False)
    def one() -> int:
        return 1

    @pipeline
    def short() -> None:
        one()

    scopes: list[anyio.CancelScope] = []
    original = _run.RunLoop._created

    def created(self: Any) -> Any:
        scopes[0].cancel()  # Ctrl-C / task.cancel() arrives while run.created is committed
        return original(self)

    monkeypatch.setattr(_run.RunLoop, "_created", created)

    async def main() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await short.run_async()

    anyio.run(main)
    (run,) = Client().list_pipeline_runs(pipeline="short")
    types = [e.type for e in Client().get_pipeline_run(run.id).events()]
    assert types[0] == "run.created"
    assert types[-1] == "run.cancelled", types


@pytest.mark.anyio
async def test_a_stopped_run_does_not_wait_for_another_runs_computation_of_a_skipped_step() -> None:
    gates: dict[str, anyio.Event] = {
        "running": anyio.Event(),
        "release": anyio.Event(),
        "waiter_done": anyio.Event(),
    }

    @step
    async def shared(v: int = 1) -> int:
        gates["running"].set()
        await gates["release"].wait()
        return v

    @pipeline
    def owner() -> None:
        shared()

    @pipeline(execution_mode="stop_on_failure")
    def waiter() -> None:
        shared()  # the owner run computes this key: this run waits for it
        boom()  # fails: the run stops, the waiting step is skipped

    done: dict[str, float] = {}
    async with Engine.open() as engine:

        async def run_waiter() -> None:
            started = time.perf_counter()
            run = await waiter.with_options(raise_on_failure=False).run_async(engine=engine)
            done["waiter"] = time.perf_counter() - started
            done["status"] = run.steps["shared"].status.value
            gates["waiter_done"].set()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(owner.run_async, engine=engine))
                await gates["running"].wait()  # the owner run holds the key now
                tg.start_soon(run_waiter)
                with anyio.move_on_after(1.0):
                    await gates["waiter_done"].wait()
                finished_alone = "waiter" in done
                gates["release"].set()  # only now can the owner's step finish
    assert done["status"] == "skipped"
    assert finished_alone, (
        f"the stopped run took {done['waiter']:.1f} s: it ended only once another run's "
        "step (whose result it no longer needed) finished"
    )


def test_a_cancelled_runs_hook_cut_short_by_the_deadline_is_recorded_and_cleanup_still_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_run, "_CLEANUP_DEADLINE", 0.2)
    calls: list[str] = []

    async def slow_failure_hook() -> None:
        await anyio.sleep(5)
        calls.append("on_failure finished")  # never: the deadline cuts it short

    def cleanup() -> None:
        calls.append("on_cleanup")

    @step(enable_cache=False)
    async def forever() -> int:
        await anyio.sleep(30)
        return 1

    @pipeline(on_failure=slow_failure_hook, on_cleanup=cleanup)
    def cancelled_run() -> None:
        forever()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(cancelled_run.run_async))
            await anyio.sleep(0.3)
            tg.cancel_scope.cancel()

    started = time.perf_counter()
    anyio.run(main)
    assert time.perf_counter() - started < 3
    (run,) = Client().list_pipeline_runs(pipeline="cancelled_run")
    events = Client().get_pipeline_run(run.id).events()
    hooks = [(e.type, e.hook) for e in events if e.type.startswith("hook.")]
    assert calls == ["on_cleanup"]
    assert hooks == [
        ("hook.started", "on_failure"),
        ("hook.failed", "on_failure"),
        ("hook.started", "on_cleanup"),
        ("hook.succeeded", "on_cleanup"),
    ]
    types = [e.type for e in events]
    assert types.index("run.cancelled") < types.index("hook.started")  # outcome, then hooks


def test_under_fail_fast_a_failing_dynamic_body_cancels_the_steps_it_started() -> None:
    @step(enable_cache=False)
    async def slow() -> int:
        await anyio.sleep(5)
        return 1

    @pipeline(dynamic=True, execution_mode="fail_fast")
    def body_fails() -> None:
        slow.submit()
        time.sleep(0.2)  # the step is running by now (a sync body runs on a thread)
        raise ValueError("the body gives up")

    started = time.perf_counter()
    run = body_fails.with_options(raise_on_failure=False)()
    assert time.perf_counter() - started < 3
    assert run.status is ExecutionStatus.FAILED
    assert run.steps["slow"].status is ExecutionStatus.CANCELLED


def test_sys_exit_in_a_step_or_hook_fails_it_and_leaves_the_engine_running() -> None:
    """``sys.exit()`` inside a step (a script turned into a step often has one) is that step's
    failure, recorded as such: it neither kills the process nor leaves the run unrecorded."""
    import sys

    hooks: list[str] = []

    def exiting_hook() -> None:
        hooks.append("on_success")
        sys.exit(5)

    @step(enable_cache=False)
    def quits() -> int:
        sys.exit(3)

    @step(enable_cache=False)
    async def aquits() -> int:
        raise SystemExit(4)

    @step(enable_cache=False, on_success=exiting_hook)
    def fine() -> int:
        return 1

    @pipeline
    def exits() -> None:
        quits()
        aquits()
        fine()

    run = exits.with_options(raise_on_failure=False)()
    assert run.status is ExecutionStatus.FAILED
    statuses = {name: s.status for name, s in run.steps.items()}
    assert statuses == {
        "quits": ExecutionStatus.FAILED,
        "aquits": ExecutionStatus.FAILED,
        "fine": ExecutionStatus.COMPLETED,  # its hook's exit changes nothing
    }
    failures = {e.step: e.error_type for e in run.events() if e.type == "step.failed"}
    assert failures == {"quits": "SystemExit", "aquits": "SystemExit"}
    assert hooks == ["on_success"]
    assert ("hook.failed", "on_success") in [
        (e.type, e.hook) for e in run.events() if e.type.startswith("hook.")
    ]
