"""Memory across runs: W2 (async) run ``R`` times in one process, against one home (MEM).

    python -m benchmarks.memory [--json] [--runs R] [--steps N]

Every run is a fresh W2 run (caching off, so each one executes its ``N + 2`` steps) and is
checked like W2. After each run the garbage collector runs and the resident set size is read
(``/proc/self/statm``; elsewhere the peak). The first run pays one-off costs (imports, the
cache of compiled code); from then on the resident set should stay flat however many past runs
the home holds: ``growth_per_run_mb`` is the least-squares slope of RSS over the second half of
the runs (the bounded caches, SQLite's page cache of 2 MB per connection and the process-wide
memory of recent cache entries, fill up during the first runs; a leak keeps growing), and
``growth_bytes_per_step`` that slope per step of one run. Wall time per run is reported too (it
should not grow either). Target: growth below 2% of one run's own footprint per run (the
first run's RSS increase), i.e. memory per finished step does not grow with past runs.

Before each reading, the process is settled as a long-lived process would be between runs:
garbage collected, CPython's type attribute cache cleared, glibc's free heap pages trimmed. The
cache matters: it keeps (up to 4,096) attribute names built at run time alive, such as the
``"repr_PipelineRunView"`` that asyncio's runner makes when it restores the SIGINT handler, and
one such string allocated as a run ends sits in a 1 MiB pymalloc arena the run's objects had
just emptied, which then can never be returned to the OS. Without clearing it, RSS after a run
creeps up to the arena high-water mark of the first run (below its peak RSS) and stays there.
``python_blocks_after_run`` (``sys.getallocatedblocks()``) counts the objects Python holds,
whatever the allocators keep: a Python-level leak shows there first.

RSS after a run still moves in 1 MiB steps (a pymalloc arena freed or not) in a sawtooth of a
couple of MB, which a slope over five runs cannot tell from growth of 0.2 MB/run. So the target
is on memory in use, which has no such steps: the slope over the second half of the runs of
Python's live blocks (at most one block per 100 steps of a run, per run) and of glibc's bytes in
use (``mallinfo2``: ``uordblks + hblkhd``, which holds SQLite's and msgspec's memory; at most 2%
of the first run's RSS footprint, per run). The RSS figures are reported beside them.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import resource
import statistics
import sys
import tempfile
from array import array
from pathlib import Path
from typing import Any

from ._common import emit, environ, environment, parser, peak_rss_mb, stopwatch
from .overhead import Sizes, check_run, pipelines, quiet, warm_up

GROWTH_LIMIT = 0.02  # of the first run's footprint, per run (room for allocator noise)


def rss_mb() -> float:
    """The current resident set size in MiB (the peak where ``/proc`` is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return peak_rss_mb()
    return pages * resource.getpagesize() / 2**20


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, loaded once (None elsewhere). Once: every ``ctypes.CDLL`` makes
    new classes, whose small objects would pin the very arenas this benchmark watches."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: RSS includes the allocator's cache
        return None


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


@functools.cache
def _mallinfo2() -> Any:
    """glibc's ``mallinfo2`` (2.33+), loaded once, or None."""
    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn


def malloc_in_use_mb() -> float:
    """The bytes glibc's malloc has handed out and not had back, in MiB (0.0 elsewhere)."""
    fn = _mallinfo2()
    if fn is None:
        return 0.0
    info = fn()
    return float(info.uordblks + info.hblkhd) / 2**20


def _settle() -> None:
    """Free what a finished run left, so RSS shows what is in use, not what the interpreter's
    and the allocator's caches keep after a run's short-lived objects are gone (see the module
    docstring): collect garbage, clear the type attribute cache, trim glibc's heap."""
    gc.collect()
    sys._clear_type_cache()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _slope(ys: list[float]) -> float:
    if len(ys) < 2:
        return 0.0
    xs = range(len(ys))
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def run(runs: int, steps: int) -> dict[str, Any]:
    """Run W2 ``runs`` times in one temporary home; the result dict."""
    quiet()
    warm_up()
    spec = pipelines(Sizes(fan=steps))["W2_async"]
    pipe = spec.pipeline.with_options(enable_cache=False)
    _settle()
    before = rss_mb()
    # Readings go into arrays allocated up front: a list of floats would keep two new objects
    # per run alive, and show as growth in the block count it measures.
    rss, walls, blocks = array("d", [0.0]) * runs, array("d", [0.0]) * runs, array("q", [0]) * runs
    malloc = array("d", [0.0]) * runs
    with (
        tempfile.TemporaryDirectory(prefix="evenflow-bench-") as tmp,
        environ(EVENFLOW_HOME=tmp, EVENFLOW_DURABILITY="normal"),
    ):
        for i in range(runs):
            with stopwatch() as sw:
                done = pipe()
            check_run(f"MEM run {i + 1}", spec, done)
            del done
            _settle()
            blocks[i] = sys.getallocatedblocks()
            malloc[i] = malloc_in_use_mb()
            rss[i] = rss_mb()
            walls[i] = sw.seconds
        db_mb = os.path.getsize(Path(tmp) / "evenflow.db") / 2**20
    footprint = rss[0] - before
    half = len(rss) // 2
    slope = _slope(list(rss[half:]))
    block_slope = _slope([float(b) for b in blocks[half:]])
    malloc_slope = _slope(list(malloc[half:]))
    met = {
        "python_blocks_flat": block_slope <= spec.steps / 100,
        "malloc_in_use_flat": malloc_slope <= max(footprint, 1.0) * GROWTH_LIMIT,
    }
    return {
        "benchmark": "memory",
        "runs": runs,
        "steps_per_run": spec.steps,
        "rss_before_mb": round(before, 1),
        "rss_after_run_mb": [round(x, 1) for x in rss],
        "wall_per_run_s": [round(x, 3) for x in walls],
        "first_run_footprint_mb": round(footprint, 1),
        "growth_per_run_mb": round(slope, 3),
        "growth_bytes_per_step": round(slope * 2**20 / spec.steps, 1),
        "python_blocks_after_run": list(blocks),
        "growth_blocks_per_run": round(block_slope, 1),
        "malloc_in_use_after_run_mb": [round(x, 2) for x in malloc],
        "malloc_growth_per_run_mb": round(malloc_slope, 4),
        "per_step_us_first_last": [
            round(walls[0] / spec.steps * 1e6, 1),
            round(walls[-1] / spec.steps * 1e6, 1),
        ],
        "database_mb": round(db_mb, 1),
        "rss_flat": slope <= max(footprint, 1.0) * GROWTH_LIMIT,  # reported, not a target
        "met": met,
        "peak_rss_mb": peak_rss_mb(),
        "environment": environment(),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0] if __doc__ else "memory benchmark")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--steps", type=int, default=10_000, help="independent steps per run")
    args = p.parse_args()
    emit(run(args.runs, args.steps), as_json=args.json)


if __name__ == "__main__":
    main()
