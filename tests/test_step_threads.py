"""The threads sync steps run in (``engine._threads.StepThreads``): what anyio's
``to_thread.run_sync`` gave (results, errors, the caller's context, abandoning on cancel), plus
idle threads reused and every outcome delivered when many finish at once."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Iterator

import anyio
import pytest

from engine._threads import StepThreads

pytestmark = pytest.mark.anyio

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


@pytest.fixture
def threads() -> Iterator[StepThreads]:
    pool = StepThreads()
    yield pool
    pool.close()


def _ended(pool: StepThreads, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while pool.threads and time.monotonic() < deadline:
        time.sleep(0.01)
    return pool.threads == 0


async def test_a_call_returns_its_result_and_raises_its_error(threads: StepThreads) -> None:
    assert await threads.run(lambda a, b: a + b, 2, 3) == 5

    def fail() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        await threads.run(fail)

    def stop() -> None:
        raise StopIteration

    with pytest.raises(RuntimeError, match="raised StopIteration") as caught:
        await threads.run(stop)
    assert isinstance(caught.value.__cause__, StopIteration)


async def test_a_call_runs_in_a_copy_of_the_callers_context(threads: StepThreads) -> None:
    WHO.set("step a")

    def seen_and_changed() -> str:
        before = WHO.get()
        WHO.set("changed in the thread")
        return before

    assert await threads.run(seen_and_changed) == "step a"
    assert WHO.get() == "step a"


async def test_calls_in_sequence_reuse_one_thread(threads: StepThreads) -> None:
    names = {await threads.run(lambda: threading.get_ident()) for _ in range(50)}
    assert len(names) == 1
    assert threads.threads == 1


async def test_calls_run_at_once_and_every_outcome_arrives(threads: StepThreads) -> None:
    """Twenty 0.5 s sleeps take about 0.5 s (a generous bound), and 500 short calls finishing
    together are all delivered, each to its own caller."""
    began = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(threads.run, time.sleep, 0.5)
    assert time.monotonic() - began < 4
    results: dict[int, int] = {}

    async def one(i: int) -> None:
        results[i] = await threads.run(lambda: i * i)

    async with anyio.create_task_group() as tg:
        for i in range(500):
            tg.start_soon(one, i)
    assert results == {i: i * i for i in range(500)}
    started = threads.threads
    assert await threads.run(lambda: 1) == 1
    assert threads.threads == started  # an idle thread took it


async def test_a_cancelled_caller_abandons_the_call(threads: StepThreads) -> None:
    finished = threading.Event()

    def slow() -> str:
        time.sleep(0.4)
        finished.set()
        return "dropped"

    began = time.monotonic()
    with anyio.move_on_after(0.05) as scope:
        await threads.run(slow)
    assert scope.cancelled_caught
    assert time.monotonic() - began < 0.3  # did not wait for the thread
    assert not finished.is_set()
    # The abandoned thread is busy: the next call gets another one, at once.
    assert await threads.run(lambda: "next") == "next"
    assert threads.threads == 2
    await anyio.to_thread.run_sync(finished.wait, 5)
    await anyio.sleep(0.05)  # its outcome is delivered (and dropped) without an error


async def test_closed_threads_end_and_take_no_more_calls() -> None:
    pool = StepThreads()
    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(pool.run, time.sleep, 0.05)
    assert pool.threads == 4
    pool.close()
    pool.close()  # twice is harmless
    assert await anyio.to_thread.run_sync(_ended, pool)
    with pytest.raises(RuntimeError, match="closed"):
        await pool.run(lambda: None)


def test_a_call_that_outlives_its_loop_ends_quietly() -> None:
    pool = StepThreads()
    errors: list[BaseException] = []
    hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)  # type: ignore[assignment]
    release = threading.Event()
    try:

        async def abandon() -> None:
            with anyio.move_on_after(0.05):
                await pool.run(release.wait, 5)

        asyncio.run(abandon())  # the loop is closed once this returns
        pool.close()
        release.set()
        assert _ended(pool)
    finally:
        threading.excepthook = hook
    assert errors == []


async def test_a_thread_that_cannot_start_leaves_no_call_behind(
    threads: StepThreads, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refuse)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            await threads.run(ran.append, "orphan")
    assert threads.threads == 0
    # The next thread finds the orphan call first, skips it (its caller is gone), runs this one.
    assert await threads.run(lambda: "next") == "next"
    assert ran == []
    # The books still balance: two calls at once get two threads.
    began = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(threads.run, time.sleep, 0.5)
        tg.start_soon(threads.run, time.sleep, 0.5)
    assert time.monotonic() - began < 0.9  # not one after the other (1 s)
    assert threads.threads == 2
