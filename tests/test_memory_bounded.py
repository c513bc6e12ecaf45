"""Many runs in one process keep memory bounded: a finished run leaves nothing behind.

No timing and no RSS is asserted (both depend on the machine and the allocator): what is
checked is what would make them grow, counted exactly. A run's loop must be freed as soon as
the run returns, by reference counting, not left in a reference cycle until the garbage
collector's next full pass (with 10,000 steps that cycle held some 40,000 objects). Descriptors
and threads opened for a run must be closed with it.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import pipeline, step
from engine._run import RunLoop
from engine._run_plan import _Node
from engine.enums import ExecutionStatus


@step(enable_cache=False)
async def source() -> int:
    return 1


@step(enable_cache=False)
async def noop(x: int, i: int) -> int:
    return x + i


@step(enable_cache=False)
async def join(xs: list[int]) -> int:
    return len(xs)


@pipeline(name="fan_out", enable_cache=False)
def fan_out() -> None:
    s = source()
    join([noop(s, i=i) for i in range(20)])


@pytest.fixture
def no_gc() -> Iterator[None]:
    """The cyclic garbage collector off for the test: what a run leaves in cycles stays."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def _alive(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


def test_a_finished_run_is_freed_without_the_garbage_collector(no_gc: None) -> None:
    assert _alive(RunLoop) == 0
    run = fan_out()
    assert run.status is ExecutionStatus.COMPLETED
    del run
    # gc.get_objects() also lists unreachable objects that only a collection would free.
    assert _alive(RunLoop) == 0
    assert _alive(_Node) == 0


def _settled(known: set[threading.Thread]) -> set[threading.Thread]:
    """The live threads once those started since ``known`` have had a moment to end (a run's
    worker threads are told to stop when it returns, and exit just after)."""
    for thread in set(threading.enumerate()) - known:
        thread.join(timeout=5)
    gc.collect()
    return set(threading.enumerate())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/fd")
def test_runs_do_not_accumulate_descriptors_or_threads(evenflow_home: Path) -> None:
    threads = _settled(set(threading.enumerate()))
    fan_out()
    threads = _settled(threads)
    fds = sorted(os.listdir("/proc/self/fd"))
    for _ in range(4):
        assert fan_out().status is ExecutionStatus.COMPLETED
    assert _settled(threads) <= threads
    assert sorted(os.listdir("/proc/self/fd")) == fds
