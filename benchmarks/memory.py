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
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import statistics
import tempfile
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


def _trim() -> None:
    """Hand freed heap pages back to the OS (glibc), so RSS shows what is in use, not what the
    allocator keeps cached after a run's short-lived objects are gone."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: RSS includes the allocator's cache
        pass


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
    gc.collect()
    _trim()
    before = rss_mb()
    rss: list[float] = []
    walls: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="evenflow-bench-") as tmp,
        environ(EVENFLOW_HOME=tmp, EVENFLOW_DURABILITY="normal"),
    ):
        for i in range(runs):
            with stopwatch() as sw:
                done = pipe()
            check_run(f"MEM run {i + 1}", spec, done)
            del done
            gc.collect()
            _trim()
            walls.append(sw.seconds)
            rss.append(rss_mb())
        db_mb = os.path.getsize(Path(tmp) / "evenflow.db") / 2**20
    footprint = rss[0] - before
    slope = _slope(rss[len(rss) // 2 :])
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
        "per_step_us_first_last": [
            round(walls[0] / spec.steps * 1e6, 1),
            round(walls[-1] / spec.steps * 1e6, 1),
        ],
        "database_mb": round(db_mb, 1),
        "met": {"no_growth": slope <= max(footprint, 1.0) * GROWTH_LIMIT},
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
