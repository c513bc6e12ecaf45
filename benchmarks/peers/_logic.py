"""The step logic every engine runs, and the runners' shared helpers. Standard library only:
this module is imported by each peer's own python.

Workloads (sizes from :func:`sizes`): W1 a chain of ``chain`` no-op steps; W2 a source,
``fan`` independent no-op steps and a join; W3 twenty steps sleeping 0.5 s and a join, with sync
and with async steps; W4 W1 again with every step served from the engine's cache. ``CALLS``
counts how many times a step body ran, so a runner can show that a cached run ran none.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

W3_STEPS = 20
W3_SLEEP_S = 0.5
CALLS = [0]


def source() -> int:
    CALLS[0] += 1
    return 1


def noop(x: int) -> int:
    CALLS[0] += 1
    return x


def join(xs: list[int]) -> int:
    CALLS[0] += 1
    return len(xs)


def sleep_sync(i: int) -> int:
    time.sleep(W3_SLEEP_S)
    return i


async def sleep_async(i: int) -> int:
    await asyncio.sleep(W3_SLEEP_S)
    return i


def sizes(argv: list[str]) -> tuple[int, int]:
    """``(chain, fan)`` from the runner's arguments: ``--quick`` or ``CHAIN FAN``."""
    if "--quick" in argv:
        return 50, 50
    numbers = [int(a) for a in argv if a.isdigit()]
    return (numbers[0], numbers[1]) if len(numbers) == 2 else (1000, 1000)


def expect(name: str, got: Any, want: Any) -> None:
    """Raise unless a workload's result is right: no time is reported for a wrong one."""
    if got != want:
        raise AssertionError(f"{name}: got {got!r}, expected {want!r}")


def timed(
    results: dict[str, Any], name: str, steps: int, body: Callable[[], Any], want: Any
) -> None:
    """Run ``body`` (one pipeline run), check its result, and record wall and per-step time.
    An exception is recorded as this workload's error (the runner goes on with the next)."""
    CALLS[0] = 0
    try:
        start = time.perf_counter()
        got = body()
        wall = time.perf_counter() - start
        expect(name, got, want)
    except Exception as exc:  # reported in the output, never hidden
        results[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        traceback.print_exc(file=sys.stderr)
        return
    results[name] = {
        "steps": steps,
        "wall_s": round(wall, 4),
        "per_step_us": round(wall / steps * 1e6, 1),
        "bodies_run": CALLS[0],
    }


def emit(engine: str, version: str, results: dict[str, Any], notes: dict[str, str]) -> None:
    """Print the runner's one JSON object (the last line of its output)."""
    out = {"engine": engine, "version": version, "workloads": results, "notes": notes}
    print("\n" + json.dumps(out), flush=True)
