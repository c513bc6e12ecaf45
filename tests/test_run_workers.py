"""The run loop's pool of workers grows as steps wait for one, up to max_concurrency: a run
whose steps all come from the cache starts none, a chain one or two."""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from engine import ExecutionStatus, _run, pipeline, step


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many workers each run started (one entry per RunLoop)."""
    started: dict[int, int] = {}
    original = _run.RunLoop._worker

    async def counted(self: Any, recv: Any) -> None:
        started[id(self)] = started.get(id(self), 0) + 1
        await original(self, recv)

    monkeypatch.setattr(_run.RunLoop, "_worker", counted)
    counts: list[int] = []
    original_execute = _run.RunLoop.execute

    async def execute(self: Any) -> Any:
        try:
            return await original_execute(self)
        finally:
            counts.append(started.pop(id(self), 0))

    monkeypatch.setattr(_run.RunLoop, "execute", execute)
    return counts


@step
async def inc(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x + 1


def test_a_chain_starts_at_most_two_workers_and_a_cached_rerun_none(workers: list[int]) -> None:
    @pipeline
    def chain() -> None:
        x = inc(0)
        for _ in range(19):
            x = inc(x)

    first = chain()
    assert first.steps["inc_20"].output.load() == 20
    again = chain()
    assert again.steps["inc_20"].output.load() == 20
    assert all(s.status is ExecutionStatus.CACHED for s in again.steps.values())
    assert len(workers) == 2
    assert 1 <= workers[0] <= 2
    assert workers[1] == 0


def test_a_fan_out_starts_max_concurrency_workers_and_runs_no_more_steps_at_once(
    workers: list[int],
) -> None:
    running = peak = 0

    @step(enable_cache=False)
    async def busy(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        return i

    @step(enable_cache=False)
    def total(xs: list[int]) -> int:
        return sum(xs)

    @pipeline(max_concurrency=3)
    def fan() -> None:
        total([busy(i) for i in range(12)])

    run = fan()
    assert run.steps["total"].output.load() == sum(range(12))
    assert peak == 3
    assert workers == [3]


def test_a_slow_step_hook_does_not_hold_the_next_step() -> None:
    """Step hooks run beside the workers: with room for one step at a time, the second step
    runs when the first ends (its start is committed then), not once the first one's slow
    on_success hook returns."""
    hook_done: list[float] = []
    second_ran: list[float] = []

    def slow_hook() -> None:
        time.sleep(0.8)
        hook_done.append(time.monotonic())

    @step(enable_cache=False, on_success=slow_hook)
    async def first() -> int:
        return 1

    @step(enable_cache=False)
    async def second() -> int:
        second_ran.append(time.monotonic())
        return 2

    @pipeline(max_concurrency=1)
    def one_at_a_time() -> None:
        first()
        second()

    run = one_at_a_time()
    assert len(hook_done) == len(second_ran) == 1  # the hook ran, and the run waited for it
    assert second_ran[0] < hook_done[0]
    assert [(e.type, e.hook) for e in run.events() if e.type.startswith("hook.")] == [
        ("hook.started", "on_success"),
        ("hook.succeeded", "on_success"),
    ]
